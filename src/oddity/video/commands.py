"""Video commands on files: fit on normal clips, predict clips, evaluate (the verbs of
`oddity.video.cli` call these; they import torch, pandas and OpenCV, the CLI module does not).

`predict` writes into the output folder, through a staging folder (nothing half-written on
interruption): scores.csv (clip, frame, name, score, raw_score, anomalous), ranges.csv (clip,
first, last, frames, peak_score; frames 0-based and inclusive), and per clip
annotated/<clip>.mp4 (heat map over the anomalous frames, see `oddity.video.plots`) and
timeline/<clip>.png (the score timeline).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

import oddity
from oddity.core.persistence import atomic_write, staged_directory
from oddity.plots import save_figure
from oddity.video.data import Clip
from oddity.video.detector import VideoDetector, as_clips
from oddity.video.evaluate import evaluate as evaluate_set
from oddity.video.evaluate import metric_lines
from oddity.video.plots import annotated_frame, map_range, timeline_figure
from oddity.video.results import ClipPrediction
from oddity.video.writers import write_video

DEFAULT_FPS = 10.0  # frame folders carry no frame rate; the annotated video plays at this one


def fit_clips(detector_name: str, data: str, out: str, params: dict[str, Any], verbose: bool) -> VideoDetector:
    """Fit a video detector on normal clips, save it and print its threshold.

    Parameters
    ----------
    detector_name : str
        Registered detector name.
    data : str
        A dataset folder (its training/ split is used) or a folder of normal clips.
    out : str
        Model folder to write.
    params : dict
        Detector parameters.
    verbose : bool
        Show progress.

    Returns
    -------
    VideoDetector
        The fitted detector.

    Raises
    ------
    DataError
        If no clips are found at `data`.
    """
    detector = oddity.create(detector_name, **params)
    assert isinstance(detector, VideoDetector)
    clips = as_clips(data, for_fit=True)
    start = time.perf_counter()
    detector.fit(clips, verbose=verbose)
    seconds = time.perf_counter() - start
    detector.save(out)
    threshold = detector.threshold_
    assert threshold is not None
    print(f"fitted {detector_name} on {len(clips)} clips from {data} in {seconds:.1f} s")
    print(f"frame threshold: {threshold.value:.6g} ({threshold.method}, target FPR per frame "
          f"{threshold.target_fpr:g}, {threshold.n_calibration} held-out frames)")
    print(f"model saved to {out}")
    return detector


def write_prediction(out: str | Path, clips: list[Clip], predictions: list[ClipPrediction],
                     verbose: bool) -> None:
    """Write the prediction folder described in the module docstring (staged, then moved).

    Parameters
    ----------
    out : str or Path
        The prediction folder.
    clips : list of Clip
        The scored clips, in the order of `predictions`.
    predictions : list of ClipPrediction
        One prediction per clip.
    verbose : bool
        Show progress while annotating frames.
    """
    scores = pd.concat([p.to_frame().assign(clip=p.clip) for p in predictions], ignore_index=True)
    scores = scores[["clip", *[c for c in scores.columns if c != "clip"]]]
    ranges = pd.concat([p.ranges_frame() for p in predictions], ignore_index=True)
    with staged_directory(out) as stage:
        scores.to_csv(stage / "scores.csv", index=False)
        ranges.to_csv(stage / "ranges.csv", index=False)
        (stage / "timeline").mkdir()
        (stage / "annotated").mkdir()
        for clip, prediction in zip(clips, predictions):
            save_figure(timeline_figure(prediction, clip.labels, f"{clip.id} ({clip.source.name})"),
                        stage / "timeline" / f"{clip.id}.png")
            value_range = map_range(prediction) if prediction.maps is not None else (0.0, 1.0)
            frames = (annotated_frame(frame, prediction, i, value_range)
                      for i, frame in enumerate(tqdm(clip.frames(), total=len(prediction), leave=False,
                                                     desc=f"annotate {clip.id}", unit="frame",
                                                     disable=not verbose))
                      if i < len(prediction))
            write_video(stage / "annotated" / f"{clip.id}.mp4", frames, clip.fps or DEFAULT_FPS)


def predict_clips(detector: VideoDetector, inputs: list[str], out: str, verbose: bool) -> None:
    """Score video files, frame folders or folders of clips and write the prediction folder.

    Parameters
    ----------
    detector : VideoDetector
        A fitted video detector.
    inputs : list of str
        Video files, frame folders or folders of clips.
    out : str
        The prediction folder (see `write_prediction`).
    verbose : bool
        Show progress.

    Raises
    ------
    DataError
        If no clips are found in `inputs`.
    """
    clips = as_clips(inputs, for_fit=False)
    predictions = detector.predict(clips, verbose=verbose)
    write_prediction(out, clips, predictions, verbose)
    for prediction in predictions:
        flagged = int(prediction.labels.sum())
        print(f"{prediction.clip}: {len(prediction)} frames, {flagged} anomalous in "
              f"{len(prediction.ranges)} ranges")
    print(f"threshold {predictions[0].threshold:.6g}; written to {out}: scores.csv, ranges.csv, "
          "annotated/, timeline/")


def evaluate_set_file(detector: VideoDetector, data: str, json_path: str | None, verbose: bool) -> None:
    """Score the labelled test clips of the dataset `data` and print the frame metrics.

    Parameters
    ----------
    detector : VideoDetector
        A fitted video detector.
    data : str
        A labelled dataset folder.
    json_path : str or None
        Also write the metrics to this JSON file (atomically).
    verbose : bool
        Show progress.
    """
    evaluation = evaluate_set(detector, data, verbose=verbose)
    print(f"{detector.name} on {data}:")
    for line in metric_lines(evaluation):
        print(f"  {line}")
    if json_path:
        text = json.dumps(evaluation.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"metrics written to {json_path}")
