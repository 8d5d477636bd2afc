"""Evaluate a fitted video detector on a labelled test set (`oddity eval`, the benchmark).

Figures (`oddity.metrics.video`) are given for the detector's scores as they are (its causal
smoothing included, range F1 at its calibrated threshold), and beside them, labelled, for the
raw unsmoothed scores and for per-clip min-max normalised scores (which many papers use; it
needs each test clip in full before scoring it, so it is never the headline figure).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oddity.metrics.video import normalise_per_clip, video_metrics
from oddity.video.data import Clip, evaluation_clips
from oddity.video.detector import VideoDetector
from oddity.video.results import ClipPrediction

VARIANTS = {
    "scores": "detector scores (causal smoothing as configured), threshold as calibrated",
    "unsmoothed": "raw frame scores, no temporal smoothing",
    "per_clip_normalised": "smoothed scores min-max normalised per test clip (needs whole clips)",
}


@dataclass
class VideoEvaluation:
    """Metrics per variant (see VARIANTS), speed (wall-clock seconds, and CPU seconds of this
    process over all its threads, which other processes on the machine disturb less), and the
    predictions they were computed on."""

    metrics: dict[str, dict]
    frames: int
    seconds: float
    cpu_seconds: float
    clips: list[Clip] = field(repr=False)
    predictions: list[ClipPrediction] = field(repr=False)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        """The fields as JSON-serialisable data.

        Returns
        -------
        dict
            Field name to value.
        """
        return {"metrics": self.metrics, "frames": self.frames, "score_seconds": round(self.seconds, 2),
                "frames_per_second": round(self.frames_per_second, 2),
                "cpu_ms_per_frame": round(1000 * self.cpu_seconds / max(self.frames, 1), 1)}


def evaluate(detector: VideoDetector, root: str | Path, verbose: bool = True) -> VideoEvaluation:
    """Score every test clip of the dataset at `root` and compute the metrics (module doc).

    Parameters
    ----------
    detector : VideoDetector
        A fitted detector.
    root : str or pathlib.Path
        A labelled dataset.
    verbose : bool, default True
        Show progress bars.

    Returns
    -------
    VideoEvaluation
        Predictions and metrics.

    Raises
    ------
    DataError
        If the dataset cannot be read.
    NotFittedError
        If the detector is not fitted.
    """
    clips = evaluation_clips(root)
    start, cpu_start = time.perf_counter(), time.process_time()
    predictions = detector.predict(clips, verbose=verbose)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    labels = [clip.labels for clip in clips]
    threshold = predictions[0].threshold
    metrics = {
        "scores": video_metrics(labels, [p.scores for p in predictions], threshold).to_dict(),
        "unsmoothed": video_metrics(labels, [p.raw_scores for p in predictions]).to_dict(),
        "per_clip_normalised": video_metrics(labels, normalise_per_clip([p.scores for p in predictions])).to_dict(),
    }
    frames = int(sum(len(p) for p in predictions))
    return VideoEvaluation(metrics, frames, seconds, cpu_seconds, clips, predictions)


def metric_lines(evaluation: VideoEvaluation) -> list[str]:
    """Human-readable lines: one per variant, then the scoring speed.

    Parameters
    ----------
    evaluation : VideoEvaluation
        An evaluation.

    Returns
    -------
    list of str
        The lines.
    """
    lines = []
    for variant, values in evaluation.metrics.items():
        text = (f"micro AUROC {values['micro_auroc']:.3f}  macro AUROC {values['macro_auroc']:.3f} "
                f"({values['macro_clips']} clips)  AUPR {values['aupr']:.3f}  EER {values['eer']:.3f}")
        if "range_f1" in values:
            text += (f"  range F1 {values['range_f1']:.3f} (P {values['range_precision']:.3f}, "
                     f"R {values['range_recall']:.3f})")
        lines.append(f"{variant:<20} {text}")
    lines.append(f"scored {evaluation.frames} frames in {evaluation.seconds:.1f} s "
                 f"({evaluation.frames_per_second:.1f} frames/s end to end; "
                 f"{1000 * evaluation.cpu_seconds / max(evaluation.frames, 1):.0f} CPU ms per frame)")
    return lines


def top_frames(evaluation: VideoEvaluation, count: int) -> list[tuple[int, int]]:
    """(clip index, frame index) of the `count` highest-scoring frames, at most one per clip
    while clips last, so that the pictures show different scenes.

    Parameters
    ----------
    evaluation : VideoEvaluation
        An evaluation.
    count : int
        Frames wanted.

    Returns
    -------
    list of tuple of int
        (clip index, frame index), highest score first.
    """
    best = [(float(p.scores.max()), c, int(np.argmax(p.scores))) for c, p in enumerate(evaluation.predictions)]
    best.sort(reverse=True)
    return [(c, f) for _, c, f in best[:count]]
