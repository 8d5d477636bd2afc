"""Range-AUC and VUS (volume under the surface) for ROC and PR curves.

Paparrizos, Boniol, Palpanas, Tsay, Elmore and Franklin, "Volume Under the Surface: A New
Accuracy Evaluation Measure for Time-Series Anomaly Detection", PVLDB 15(11), 2022,
https://doi.org/10.14778/3551793.3551830; the measure of the TSB-UAD and TSB-AD benchmarks.

For a buffer size l, every anomaly gets slopes of l // 2 steps on both sides with continuous
labels sqrt(1 - d / l) (d = distance to the anomaly; overlapping slopes add, clipped to 1).
At each of 250 thresholds sampled uniformly from the sorted scores: TP = sum of the continuous
labels of predicted steps, P = mean of the binary and the continuous label sums, recall =
min(TP / P, 1) times the fraction of labelled ranges hit (the existence reward), FPR =
min((predicted - TP) / (T - P), 1), precision = TP / predicted. Range-AUC is the trapezoid
area under the ROC (ending at (1, 1)) or PR curve (starting at precision 1, recall 0); VUS
averages it over l = 0 .. max_buffer. Conventions follow the reference code as ported to
`aeon.benchmarking.metrics.anomaly_detection` (checked against aeon 1.6.0 in the tests).

Deviation: the default `max_buffer` is 100 steps (aeon uses 500), which bounds the cost on
long series; pass `max_buffer=500` to match aeon's default.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from oddity.core.errors import MetricError
from oddity.metrics.classification import labels_and_scores
from oddity.metrics.series import events

NUM_THRESHOLDS = 250  # as the reference


@dataclass(frozen=True)
class RangeAUC:
    """Range-based areas under the ROC and PR curves (one buffer size, or their VUS mean)."""

    roc: float
    pr: float


def extended_labels(labels: np.ndarray, buffer: int) -> np.ndarray:
    """Continuous labels: `labels` with sqrt slopes of `buffer // 2` steps on both sides of
    every anomaly (the reference's convention; buffers <= 1 leave the labels binary).

    Parameters
    ----------
    labels : numpy.ndarray
        (T,) 0/1 labels.
    buffer : int
        Width of the slopes (both sides together).

    Returns
    -------
    numpy.ndarray
        (T,) float labels in [0, 1].
    """
    extended = labels.astype(np.float64)
    if buffer <= 1:
        return extended
    slope = buffer // 2
    steps = labels.size
    for start, end in zip(*events(labels > 0)):
        after = np.arange(end, min(end + slope, steps))
        extended[after] += np.sqrt(1 - (after - end) / buffer)
        before = np.arange(max(start - slope, 0), start)
        extended[before] += np.sqrt(1 - (start - before) / buffer)
    return np.clip(extended, 0.0, 1.0)


def _thresholds(scores: np.ndarray) -> np.ndarray:
    ordered = np.sort(scores)[::-1]
    return ordered[np.linspace(0, ordered.size - 1, NUM_THRESHOLDS, dtype=np.int64)]


@dataclass(frozen=True)
class _Predictions:
    """Predictions (K, T) at the sampled thresholds, with what every buffer size reuses."""

    labels: np.ndarray
    predicted: np.ndarray
    counts: np.ndarray  # predicted steps per threshold
    cumulative: np.ndarray  # (K, T + 1) running count of predicted steps
    tp_binary: np.ndarray  # predicted anomalous steps per threshold


def _range_auc(p: _Predictions, buffer: int) -> RangeAUC:
    """Range-AUC of the predictions for one buffer size."""
    y, counts, cumulative = p.labels, p.counts, p.cumulative
    extended = extended_labels(y, buffer)
    starts, ends = events(extended > 0)
    slope = np.flatnonzero(extended != y)  # only the slopes add to the binary TP
    tp = p.tp_binary + p.predicted[:, slope] @ (extended[slope] - y[slope])
    positives = (y.sum() + extended.sum()) / 2
    hits = cumulative[:, ends + 1] - cumulative[:, starts]  # predicted steps in each range
    existence = (hits > 0).mean(axis=1)
    recall = np.minimum(tp / positives, 1.0) * existence
    fpr = np.minimum((counts - tp) / (y.size - positives), 1.0)
    precision = tp / counts
    recall_curve = np.concatenate(([0.0], recall, [1.0]))
    fpr_curve = np.concatenate(([0.0], fpr, [1.0]))
    precision_curve = np.concatenate(([1.0], precision))
    roc = np.sum(np.diff(fpr_curve) * (recall_curve[1:] + recall_curve[:-1]) / 2)
    pr = np.sum(np.diff(recall_curve[:-1]) * (precision_curve[1:] + precision_curve[:-1]) / 2)
    return RangeAUC(roc=float(roc), pr=float(pr))


def _prepare(labels: ArrayLike, scores: ArrayLike) -> _Predictions:
    y, s = labels_and_scores(labels, scores)
    if np.unique(s).size == 1:
        raise MetricError("`scores` are constant; range-AUC and VUS need varying scores.")
    predicted = s[None, :] >= _thresholds(s)[:, None]
    cumulative = np.zeros((predicted.shape[0], s.size + 1))
    np.cumsum(predicted, axis=1, out=cumulative[:, 1:])
    return _Predictions(y.astype(np.float64), predicted.astype(np.float64), cumulative[:, -1],
                        cumulative, predicted[:, y].sum(axis=1).astype(np.float64))


def range_auc(labels: ArrayLike, scores: ArrayLike, buffer: int | None = None) -> RangeAUC:
    """Range-AUC-ROC and range-AUC-PR for one buffer size.

    Parameters
    ----------
    labels : array-like of 0/1, shape (T,)
        1 at anomalous steps.
    scores : array-like, shape (T,)
        Anomaly scores, higher = more anomalous.
    buffer : int or None
        Buffer size in steps; None for the median anomaly length (the reference's default).

    Returns
    -------
    RangeAUC
        The two areas.

    Raises
    ------
    MetricError
        On one-class labels, constant or non-finite scores, or a negative buffer.
    """
    predictions = _prepare(labels, scores)
    if buffer is None:
        starts, ends = events(predictions.labels > 0)
        buffer = int(np.median(ends - starts + 1))
    if buffer < 0:
        raise MetricError(f"`buffer` must be >= 0 steps; got {buffer}.")
    return _range_auc(predictions, buffer)


def vus(labels: ArrayLike, scores: ArrayLike, max_buffer: int = 100) -> RangeAUC:
    """VUS-ROC and VUS-PR: the range-AUCs averaged over buffer sizes 0 .. `max_buffer`.

    Parameters
    ----------
    labels : array-like of 0/1, shape (T,)
        1 at anomalous steps.
    scores : array-like, shape (T,)
        Anomaly scores, higher = more anomalous.
    max_buffer : int
        Largest buffer size in steps (see the module docstring).

    Returns
    -------
    RangeAUC
        VUS-ROC in `roc`, VUS-PR in `pr`.

    Raises
    ------
    MetricError
        On one-class labels, constant or non-finite scores, or a negative `max_buffer`.
    """
    if max_buffer < 0:
        raise MetricError(f"`max_buffer` must be >= 0 steps; got {max_buffer}.")
    predictions = _prepare(labels, scores)
    areas = [_range_auc(predictions, b) for b in range(max_buffer + 1)]
    return RangeAUC(roc=float(np.mean([a.roc for a in areas])),
                    pr=float(np.mean([a.pr for a in areas])))
