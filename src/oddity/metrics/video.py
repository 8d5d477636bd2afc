"""Frame-level video metrics over a set of clips: micro and macro AUROC, AUPR, EER, range F1.

Inputs are per clip: a list of 1-D `labels` (0/1 per frame) and a list of `scores` of the
same lengths. The field's standard figure is the *micro* frame AUROC (all test frames of all
clips concatenated); some papers give the *macro* one (mean of per-clip AUROCs, over the clips
that have both normal and anomalous frames) or normalise each clip's scores to [0, 1] first,
which needs the whole clip in advance. `normalise_per_clip` offers that only as an explicit
option, to compare with such papers; it is never applied by default.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from oddity.core.errors import MetricError
from oddity.metrics.classification import image_aupr, image_auroc, labels_and_scores
from oddity.metrics.series import DetectionF1, events, per_event


def _pairs(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(labels) != len(scores) or not labels:
        raise MetricError(f"need one labels array per scores array, and at least one clip; got "
                          f"{len(labels)} and {len(scores)}")
    return [labels_and_scores(y, s, need_both=False) for y, s in zip(labels, scores)]


def _concatenated(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    pairs = _pairs(labels, scores)
    return np.concatenate([y for y, _ in pairs]), np.concatenate([s for _, s in pairs])


def micro_auroc(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> float:
    """Frame AUROC over all frames of all clips concatenated.

    Parameters
    ----------
    labels : sequence of array_like
        Per clip, (T,) 0/1 frame labels (1 = anomalous).
    scores : sequence of array_like
        Per clip, (T,) frame scores.

    Returns
    -------
    float
        The AUROC.

    Raises
    ------
    MetricError
        If a clip's labels and scores differ in length or are invalid.
    """
    return image_auroc(*_concatenated(labels, scores))


def macro_auroc(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> tuple[float, int]:
    """(mean of per-clip frame AUROCs, number of clips it averages): clips whose frames are all
    normal or all anomalous have no AUROC and are left out.

    Parameters
    ----------
    labels : sequence of array_like
        Per clip, (T,) 0/1 frame labels (1 = anomalous).
    scores : sequence of array_like
        Per clip, (T,) frame scores.

    Returns
    -------
    tuple
        (mean AUROC, clips averaged).

    Raises
    ------
    MetricError
        If a clip's labels and scores differ in length or are invalid.
    """
    values = [image_auroc(y, s) for y, s in _pairs(labels, scores) if y.any() and not y.all()]
    if not values:
        raise MetricError("no clip has both normal and anomalous frames: macro AUROC is undefined")
    return float(np.mean(values)), len(values)


def micro_aupr(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> float:
    """Average precision over all frames concatenated, anomalous = positive.

    Parameters
    ----------
    labels : sequence of array_like
        Per clip, (T,) 0/1 frame labels (1 = anomalous).
    scores : sequence of array_like
        Per clip, (T,) frame scores.

    Returns
    -------
    float
        Average precision.

    Raises
    ------
    MetricError
        If a clip's labels and scores differ in length or are invalid.
    """
    return image_aupr(*_concatenated(labels, scores))


def equal_error_rate(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> float:
    """Frame-level equal error rate (all frames concatenated): the rate at which the false-
    positive and false-negative rates meet, interpolated linearly between ROC points.

    Parameters
    ----------
    labels : sequence of array_like
        Per clip, (T,) 0/1 frame labels (1 = anomalous).
    scores : sequence of array_like
        Per clip, (T,) frame scores.

    Returns
    -------
    float
        The EER.

    Raises
    ------
    MetricError
        If a clip's labels and scores differ in length or are invalid.
    """
    y, s = labels_and_scores(*_concatenated(labels, scores))
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1.0 - tpr
    crossing = int(np.argmax(fpr >= fnr))  # first ROC point where FPR has caught up with FNR
    if crossing == 0:
        return float(fpr[0])
    gap_before = fnr[crossing - 1] - fpr[crossing - 1]
    gap_after = fpr[crossing] - fnr[crossing]
    weight = gap_before / (gap_before + gap_after) if gap_before + gap_after > 0 else 0.0
    return float(fpr[crossing - 1] + weight * (fpr[crossing] - fpr[crossing - 1]))


def range_f1(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike], threshold: float) -> DetectionF1:
    """F1 over anomalous ranges at `threshold` (frames with score >= threshold are flagged),
    pooled over clips: recall is the fraction of true ranges (runs of anomalous frames) with
    at least one flagged frame, precision the fraction of flagged ranges that overlap a true one.
    Ranges never run across clips.

    Parameters
    ----------
    labels : sequence of array_like
        Per clip, (T,) 0/1 frame labels (1 = anomalous).
    scores : sequence of array_like
        Per clip, (T,) frame scores.
    threshold : float
        Frames scoring at or above it are flagged.

    Returns
    -------
    DetectionF1
        Precision, recall and F1 over ranges.

    Raises
    ------
    MetricError
        If a clip's labels and scores differ in length or are invalid.
    """
    hit = true_count = correct = flagged_count = 0
    for y, s in _pairs(labels, scores):
        flagged = s >= threshold
        starts, ends = events(y)
        true_count += starts.size
        if starts.size:
            hit += int(per_event(np.logical_or, flagged, starts, ends).sum())
        f_starts, f_ends = events(flagged)
        flagged_count += f_starts.size
        if f_starts.size:
            correct += int(per_event(np.logical_or, y, f_starts, f_ends).sum())
    if true_count == 0:
        raise MetricError("no clip has an anomalous frame: range F1 is undefined")
    recall = hit / true_count
    precision = correct / flagged_count if flagged_count else 0.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return DetectionF1(f1, precision, recall, threshold)


def normalise_per_clip(scores: Sequence[ArrayLike]) -> list[np.ndarray]:
    """Each clip's scores min-max scaled to [0, 1] (a constant clip becomes all zeros). Needs
    every clip in full before scoring it: an evaluation option, not a way to run a detector.

    Parameters
    ----------
    scores : sequence of array_like
        Per clip, (T,) frame scores.

    Returns
    -------
    list of numpy.ndarray
        The scaled scores.
    """
    result = []
    for values in scores:
        s = np.asarray(values, dtype=np.float64)
        span = float(s.max() - s.min()) if s.size else 0.0
        result.append((s - s.min()) / span if span > 0 else np.zeros_like(s))
    return result


@dataclass(frozen=True)
class VideoMetrics:
    """The frame-level figures of one set of clip scores (see the module docstring)."""

    micro_auroc: float
    macro_auroc: float
    macro_clips: int
    aupr: float
    eer: float
    range_f1: DetectionF1 | None

    def to_dict(self) -> dict:
        """The fields as JSON-serialisable data.

        Returns
        -------
        dict
            Field name to value.
        """
        document = {"micro_auroc": self.micro_auroc, "macro_auroc": self.macro_auroc,
                    "macro_clips": self.macro_clips, "aupr": self.aupr, "eer": self.eer}
        if self.range_f1 is not None:
            document.update(range_f1=self.range_f1.f1, range_precision=self.range_f1.precision,
                            range_recall=self.range_f1.recall, threshold=self.range_f1.threshold)
        return document


def video_metrics(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike],
                  threshold: float | None = None) -> VideoMetrics:
    """All the figures above; range F1 only when a (calibrated) `threshold` is given.

    Parameters
    ----------
    labels : sequence of array_like
        Per clip, (T,) 0/1 frame labels (1 = anomalous).
    scores : sequence of array_like
        Per clip, (T,) frame scores.
    threshold : float, optional
        The calibrated frame threshold.

    Returns
    -------
    VideoMetrics
        The figures.

    Raises
    ------
    MetricError
        If a clip's labels and scores differ in length or are invalid.
    """
    macro, clips = macro_auroc(labels, scores)
    return VideoMetrics(micro_auroc(labels, scores), macro, clips, micro_aupr(labels, scores),
                        equal_error_rate(labels, scores),
                        None if threshold is None else range_f1(labels, scores, threshold))
