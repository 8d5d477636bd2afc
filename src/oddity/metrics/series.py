"""Time-series metrics: point-wise AUROC/AUPR, point-adjusted F1, event F1 and PATE.

Inputs are 1-D: `labels` (0/1 per time step) and `scores` (higher = more anomalous) or binary
predictions. An event is a maximal run of consecutive 1s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from oddity.core.errors import MetricError
from oddity.metrics.classification import (
    as_binary,
    best_f1,
    image_aupr,
    image_auroc,
    labels_and_scores,
)


def point_auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC treating every time step as an independent item.

    Parameters
    ----------
    labels : array_like
        (T,) 0/1 per time step, 1 = inside an anomaly.
    scores : array_like
        (T,) scores, higher = more anomalous.

    Returns
    -------
    float
        The AUROC over time steps.

    Raises
    ------
    MetricError
        As `oddity.metrics.image_auroc`.
    """
    return image_auroc(labels, scores)


def point_aupr(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision treating every time step as an independent item.

    Parameters
    ----------
    labels : array_like
        (T,) 0/1 per time step, 1 = inside an anomaly.
    scores : array_like
        (T,) scores, higher = more anomalous.

    Returns
    -------
    float
        Average precision over time steps.

    Raises
    ------
    MetricError
        As `oddity.metrics.image_aupr`.
    """
    return image_aupr(labels, scores)


def events(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and (inclusive) end index of every run of True in a 1-D bool array.

    Parameters
    ----------
    binary : numpy.ndarray
        (T,) bool values.

    Returns
    -------
    starts, ends : numpy.ndarray
        Index of the first and last step of each run.

    Examples
    --------
    >>> import numpy as np
    >>> starts, ends = events(np.array([0, 1, 1, 0, 1], bool))
    >>> starts.tolist(), ends.tolist()
    ([1, 4], [2, 4])
    """
    steps = np.diff(np.concatenate(([0], binary.astype(np.int8), [0])))
    return np.flatnonzero(steps == 1), np.flatnonzero(steps == -1) - 1


def per_event(ufunc: np.ufunc, values: np.ndarray, starts: np.ndarray,
              ends: np.ndarray) -> np.ndarray:
    """`ufunc` reduced over each span [start, end] along the last axis of `values`.

    Parameters
    ----------
    ufunc : numpy.ufunc
        The reduction, e.g. ``numpy.maximum``.
    values : numpy.ndarray
        Values along time (last axis).
    starts, ends : numpy.ndarray
        Spans (inclusive), as `events` gives them.

    Returns
    -------
    numpy.ndarray
        One reduced value per span (along the last axis).
    """
    padded = np.concatenate((values, values[..., :1]), axis=-1)  # so that end + 1 is an index
    bounds = np.column_stack((starts, ends + 1)).ravel()
    return ufunc.reduceat(padded, bounds, axis=-1)[..., ::2]


def _labels_with_events(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate 1-D labels/scores and require at least one anomalous event."""
    y, s = labels_and_scores(labels, scores, need_both=False)
    if not y.any():
        raise MetricError("`labels` has no anomalous time step; the metric needs at least one "
                          "event.")
    return y, s


def _predictions(values: np.ndarray, threshold: float | None) -> np.ndarray | None:
    """Binary predictions from `values` (`>= threshold`, or `values` itself when they are 0/1);
    None when `values` are scores and no threshold is given."""
    if threshold is not None:
        return values >= threshold
    if values.dtype == bool or ((values == 0) | (values == 1)).all():
        return values.astype(bool)
    return None


@dataclass(frozen=True)
class DetectionF1:
    """F1 with its precision and recall; `threshold` is None when predictions were given.

    Attributes
    ----------
    f1, precision, recall : float
        The F1 and the precision and recall behind it.
    threshold : float or None
        The threshold used or found; None when binary predictions were given.
    """

    f1: float
    precision: float
    recall: float
    threshold: float | None = None


def _f1(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall, 0 when both are 0."""
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def point_adjusted_f1(labels: ArrayLike, scores_or_predictions: ArrayLike,
                      threshold: float | None = None) -> DetectionF1:
    """Point-adjusted F1 (Xu et al., "Unsupervised Anomaly Detection via Variational
    Auto-Encoder for Seasonal KPIs in Web Applications", WWW 2018).

    If any time step of a true event is predicted, every step of the event counts as detected;
    predictions outside events count point-wise. Binary (0/1) input is taken as predictions;
    scores are thresholded at `threshold` (`>=`), or, without one, the best F1 over all
    thresholds is returned with its threshold.

    Parameters
    ----------
    labels : array_like
        (T,) 0/1 per time step, 1 = inside an anomaly.
    scores_or_predictions : array_like
        (T,) scores, or 0/1 predictions.
    threshold : float, optional
        Threshold for scores (``>=``); None searches the best one.

    Returns
    -------
    DetectionF1
        F1, precision, recall and the threshold.

    Raises
    ------
    MetricError
        If the inputs are invalid or the labels hold no event.

    Examples
    --------
    >>> point_adjusted_f1([0, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 0]).f1
    1.0
    """
    y, s = _labels_with_events(labels, scores_or_predictions)
    starts, ends = events(y)
    lengths = ends - starts + 1
    predicted = _predictions(s, threshold)
    if predicted is not None:
        hit = per_event(np.logical_or, predicted, starts, ends)
        tp = int(lengths[hit].sum())
        fp = int(predicted[~y].sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / int(lengths.sum())
        return DetectionF1(_f1(precision, recall), precision, recall, threshold)
    # Best over thresholds: an event is one item scored by its maximum, weighted by its length.
    event_max = per_event(np.maximum, s, starts, ends)
    normal = int((~y).sum())
    best = best_f1(np.concatenate((np.ones(starts.size, bool), np.zeros(normal, bool))),
                   np.concatenate((event_max, s[~y])),
                   np.concatenate((lengths, np.ones(normal, lengths.dtype))))
    return DetectionF1(best.f1, best.precision, best.recall, best.threshold)


def event_f1(labels: ArrayLike, scores_or_predictions: ArrayLike,
             threshold: float | None = None) -> DetectionF1:
    """Event-wise F1: recall is the fraction of true events hit by at least one predicted step,
    precision the fraction of predicted events (runs of predicted steps) that overlap a true
    event. Takes binary predictions, or scores with a `threshold` (`>=`).

    Parameters
    ----------
    labels : array_like
        (T,) 0/1 per time step, 1 = inside an anomaly.
    scores_or_predictions : array_like
        (T,) 0/1 predictions, or scores with a `threshold`.
    threshold : float, optional
        Threshold for scores (``>=``).

    Returns
    -------
    DetectionF1
        F1, precision and recall over events.

    Raises
    ------
    MetricError
        If scores come without a threshold, or the inputs are invalid.

    Examples
    --------
    >>> event_f1([0, 1, 1, 0, 0, 0, 1, 0], [0, 0, 1, 0, 1, 0, 0, 0])
    DetectionF1(f1=0.5, precision=0.5, recall=0.5, threshold=None)
    """
    y, s = _labels_with_events(labels, scores_or_predictions)
    predicted = _predictions(s, threshold)
    if predicted is None:
        raise MetricError("event_f1 needs binary (0/1) predictions or scores with a `threshold`.")
    starts, ends = events(y)
    recall = float(per_event(np.logical_or, predicted, starts, ends).mean())
    pred_starts, pred_ends = events(predicted)
    precision = (float(per_event(np.logical_or, y, pred_starts, pred_ends).mean())
                 if pred_starts.size else 0.0)
    return DetectionF1(_f1(precision, recall), precision, recall, threshold)


def _spans(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated indices first[i]..last[i] (inclusive, empty when last < first), and i."""
    lengths = np.maximum(last - first + 1, 0)
    owner = np.repeat(np.arange(first.size), lengths)
    index = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths - first, lengths)
    return index, owner


def _pate_precision_recall(pred: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                           early: int, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """PATE-weighted precision and recall of each row of `pred` (K, T) for one buffer pair,
    following `apply_weights` of the reference package (`pate` 0.1.1 on PyPI)."""
    steps = pred.shape[1]
    length = ends - starts + 1
    twice_mid = starts + ends
    # Zones: pre-buffer [pre_start, start), event, post-buffer (end, post_end]; buffers stop
    # at the neighbouring event's zones. Everything else is outside.
    post_end = np.minimum(ends + delay, np.append(starts[1:], steps) - 1)
    pre_start = np.maximum(np.maximum(starts - early, np.append(-1, post_end[:-1]) + 1), 0)
    event_idx, event_owner = _spans(starts, ends)
    pre_idx, pre_owner = _spans(pre_start, starts - 1)
    post_idx, post_owner = _spans(ends + 1, post_end)
    outside = np.ones(steps, bool)
    outside[np.concatenate((event_idx, pre_idx, post_idx))] = False
    # Proximity weight of a buffer step: 1 - (sum of distances to the event's steps) / (the
    # same sum from the far end of the buffer); the rest of the step counts as a false positive.
    w_pre = 1 - (twice_mid[pre_owner] - 2 * pre_idx) / (twice_mid - 2 * pre_start)[pre_owner]
    w_post = 1 - (2 * post_idx - twice_mid[post_owner]) / (2 * post_end - twice_mid)[post_owner]

    hits = pred[:, event_idx]
    num = hits.shape[1]
    offsets = np.cumsum(length) - length  # first column of each event in `hits`
    detected = np.logical_or.reduceat(hits, offsets, axis=1)
    # Missed steps of a detected event are false negatives weighted by their distance from
    # the event start plus the length `delta` of the first detected run.
    column = np.arange(num)
    first = np.minimum.reduceat(np.where(hits, column, num), offsets, axis=1)
    next_miss = np.minimum.accumulate(np.where(hits, num, column)[:, ::-1], axis=1)[:, ::-1]
    run_end = np.minimum(np.take_along_axis(next_miss, np.minimum(first, num - 1), axis=1),
                         offsets + length)
    delta = np.where(detected, run_end - first, 0)[:, event_owner]
    rel = column - offsets[event_owner]
    pairs = (length * (length - 1) // 2)[event_owner]
    far = (delta + 1) * (2 * rel - delta) // 2
    w_missed = np.where(rel <= delta, 1.0, 1.0 - far / np.maximum(pairs, 1))
    fn_partial = np.add.reduceat(np.where(hits, 0.0, w_missed), offsets, axis=1)
    fn = np.where(detected, fn_partial, length).sum(axis=1)

    pre = pred[:, pre_idx]
    pre_credited = (pre & detected[:, pre_owner]).astype(np.float64)  # only if event detected
    post = pred[:, post_idx].astype(np.float64)
    tp = hits.sum(axis=1) + post @ w_post + pre_credited @ w_pre
    fp = (pred[:, outside].sum(axis=1) + post @ (1 - w_post) + pre_credited @ (1 - w_pre)
          + pre.sum(axis=1) - pre_credited.sum(axis=1))
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=tp + fn > 0)
    return precision, recall


def _pate_thresholds(y: np.ndarray, s: np.ndarray, num_thresholds: int | None) -> np.ndarray:
    """Descending thresholds: all distinct scores, or as the reference does, the distinct
    scores where the point-wise TP count changes, resampled at `num_thresholds` percentiles."""
    values = np.unique(s)[::-1]
    if num_thresholds is None:
        return values
    positives = np.sort(s[y])
    tps = positives.size - np.searchsorted(positives, values, side="left")
    if tps.size > 2:
        changes = (np.diff(tps[:-1]) != 0) | (np.diff(tps[1:]) != 0)
        values = values[np.concatenate(([True], changes, [True]))]
    return np.percentile(values, np.linspace(100, 0, num_thresholds))


def pate(labels: ArrayLike, scores: ArrayLike, early: int = 100, delay: int = 100,
         binary_scores: bool = False, num_thresholds: int | None = 250) -> float:
    """PATE: proximity-aware area under the precision-recall curve (PATE-F1 for predictions).

    Ghorbani et al., "PATE: Proximity-Aware Time series anomaly Evaluation", KDD 2024; matches
    the authors' `pate` package (PyPI 0.1.1, `PATE(...)` with its defaults). Predictions in a
    buffer of `early` steps before and `delay` steps after an event earn partial credit that
    decays with distance (early ones only if the event itself is detected); missed steps of a
    detected event count as weighted false negatives. For scores, the area under the weighted
    precision-recall curve (starting at P=1, R=0; points where recall falls below an earlier
    value are dropped) is averaged over the buffer pairs {0, early} x {0, delay}. Thresholds:
    `num_thresholds` percentiles of the distinct scores where the point-wise TP count changes
    (the reference's default), or every distinct score if None. With `binary_scores` the
    scores are 0/1 predictions and the mean F1 over the buffer pairs (PATE-F1) is returned.

    Parameters
    ----------
    labels : array_like
        (T,) 0/1 per time step, 1 = inside an anomaly.
    scores : array_like
        (T,) scores, or 0/1 predictions with `binary_scores`.
    early, delay : int, default 100
        Buffer lengths before and after each event, in steps.
    binary_scores : bool, default False
        Take `scores` as predictions and return PATE-F1.
    num_thresholds : int or None, default 250
        Number of thresholds (percentiles of the distinct scores); None uses every score.

    Returns
    -------
    float
        PATE (or PATE-F1), in [0, 1].

    Raises
    ------
    MetricError
        If the inputs are invalid or the buffers are negative.
    """
    if early < 0 or delay < 0:
        raise MetricError(f"`early` and `delay` must be >= 0; got {early} and {delay}.")
    if num_thresholds is not None and num_thresholds < 1:
        raise MetricError(f"`num_thresholds` must be >= 1 or None; got {num_thresholds}.")
    y, s = _labels_with_events(labels, scores)
    starts, ends = events(y)
    pairs = [(e, d) for e in (0, int(early)) for d in (0, int(delay))]
    if binary_scores:
        predicted = as_binary(s, "scores")[None, :]
        f1 = {pair: _f1(*(float(v[0]) for v in _pate_precision_recall(
            predicted, starts, ends, *pair))) for pair in set(pairs)}
        return float(np.mean([f1[pair] for pair in pairs]))
    s = s.astype(np.float64)
    thresholds = _pate_thresholds(y, s, num_thresholds)
    chunk = max(1, 2_000_000 // s.size)
    area = {}
    for pair in set(pairs):
        curves = [_pate_precision_recall(s[None, :] >= thresholds[i:i + chunk, None],
                                         starts, ends, *pair)
                  for i in range(0, thresholds.size, chunk)]
        precision = np.concatenate(([1.0], *(c[0] for c in curves)))
        recall = np.concatenate(([0.0], *(c[1] for c in curves)))
        keep = recall >= np.maximum.accumulate(recall)
        area[pair] = float(np.trapezoid(precision[keep], recall[keep]))
    return float(np.mean([area[pair] for pair in pairs]))
