"""Image-level (one score per item) detection metrics: AUROC, AUPR, best F1.

Thin, validated wrappers over scikit-learn (`roc_auc_score`, `average_precision_score`,
`precision_recall_curve`). The input checks here are shared by the pixel and series metrics, so
that every metric raises the same `MetricError` for the same degenerate input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from oddity.core.errors import MetricError


def as_binary(values: ArrayLike, name: str) -> np.ndarray:
    """`values` as a bool array.

    Parameters
    ----------
    values : array_like
        Bool or 0/1 values.
    name : str
        The argument's name, for the message.

    Returns
    -------
    numpy.ndarray
        The values as bool.

    Raises
    ------
    MetricError
        Unless every value is 0/1 (or bool).
    """
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.number) and ((arr == 0) | (arr == 1)).all()):
        raise MetricError(f"`{name}` must be binary (bool or 0/1 values); got other values. "
                          f"Binarise it first, e.g. `{name} > 0`.")
    return arr.astype(bool)


def as_scores(values: ArrayLike, name: str) -> np.ndarray:
    """`values` as a finite float array.

    Parameters
    ----------
    values : array_like
        Numeric scores.
    name : str
        The argument's name, for the message.

    Returns
    -------
    numpy.ndarray
        The values as float64.

    Raises
    ------
    MetricError
        On NaN, infinite or non-numeric values.
    """
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == bool):
        raise MetricError(f"`{name}` must be numeric; got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise MetricError(f"`{name}` contains NaN or infinite values; fix the detector output "
                              "(or replace them) before computing metrics.")
        return arr
    return arr.astype(np.float64)


def labels_and_scores(labels: ArrayLike, scores: ArrayLike,
                      need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of 1-D `labels` (0/1) and `scores` of the same length.

    Parameters
    ----------
    labels : array_like
        (N,) 0/1 or bool, 1 = anomalous.
    scores : array_like
        (N,) scores.
    need_both : bool, default True
        Require both classes among the labels.

    Returns
    -------
    tuple of numpy.ndarray
        (labels as bool, scores as float64).

    Raises
    ------
    MetricError
        If the shapes differ or are not 1-D, the values are invalid, or a class is missing.
    """
    y = as_binary(labels, "labels")
    s = as_scores(scores, "scores")
    if y.ndim != 1 or s.ndim != 1:
        raise MetricError(f"`labels` and `scores` must be 1-D; got shapes {y.shape} and {s.shape}.")
    if y.shape != s.shape:
        raise MetricError(f"`labels` and `scores` differ in length: {y.size} vs {s.size}.")
    if need_both and (y.all() or not y.any()):
        kind = "anomalous" if y.any() else "normal"
        raise MetricError(f"`labels` holds only one class (all {kind}); the metric needs both "
                          "normal (0) and anomalous (1) items.")
    return y, s


def image_auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve of per-item `scores` against binary `labels` (1 = anomalous).

    Parameters
    ----------
    labels : array_like
        (N,) 0/1 or bool, 1 = anomalous.
    scores : array_like
        (N,) scores, higher = more anomalous.

    Returns
    -------
    float
        The AUROC, 0.5 for chance.

    Raises
    ------
    MetricError
        If the labels hold one class only, are not binary, differ in length from the scores,
        or the scores are not finite.

    Examples
    --------
    >>> image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y, s = labels_and_scores(labels, scores)
    return float(roc_auc_score(y, s))


def image_aupr(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (step-wise area under the precision-recall curve), anomalous = positive.

    Parameters
    ----------
    labels : array_like
        (N,) 0/1 or bool, 1 = anomalous.
    scores : array_like
        (N,) scores, higher = more anomalous.

    Returns
    -------
    float
        Average precision.

    Raises
    ------
    MetricError
        If the labels hold one class only, are not binary, differ in length from the scores,
        or the scores are not finite.

    Examples
    --------
    >>> round(image_aupr([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 3)
    0.833
    """
    y, s = labels_and_scores(labels, scores)
    return float(average_precision_score(y, s))


@dataclass(frozen=True)
class F1Max:
    """Best F1 over all thresholds `score >= threshold`, with the precision and recall there.

    Attributes
    ----------
    f1, threshold, precision, recall : float
        The best F1, the lowest threshold reaching it, and the precision and recall there.
    """

    f1: float
    threshold: float
    precision: float
    recall: float


def f1_max(labels: ArrayLike, scores: ArrayLike) -> F1Max:
    """Highest F1 score reachable by thresholding `scores`, and the (lowest) threshold giving it.

    Parameters
    ----------
    labels : array_like
        (N,) 0/1 or bool, 1 = anomalous.
    scores : array_like
        (N,) scores, higher = more anomalous.

    Returns
    -------
    F1Max
        The best F1 with its threshold, precision and recall.

    Raises
    ------
    MetricError
        If the labels hold one class only, are not binary, differ in length from the scores,
        or the scores are not finite.

    Examples
    --------
    >>> f1_max([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    F1Max(f1=0.8, threshold=0.35, precision=0.6666666666666666, recall=1.0)
    """
    return best_f1(*labels_and_scores(labels, scores))


def best_f1(truth: np.ndarray, scores: np.ndarray,
            sample_weight: np.ndarray | None = None) -> F1Max:
    """Best F1 over all thresholds of already validated (optionally weighted) items.

    Parameters
    ----------
    truth : numpy.ndarray
        (N,) bool labels, True = anomalous.
    scores : numpy.ndarray
        (N,) scores.
    sample_weight : numpy.ndarray, optional
        (N,) weights.

    Returns
    -------
    F1Max
        The best F1 with its precision, recall and threshold.
    """
    precision, recall, thresholds = precision_recall_curve(truth, scores,
                                                           sample_weight=sample_weight)
    precision, recall = precision[:-1], recall[:-1]  # the last point (P=1, R=0) has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))
    return F1Max(float(f1[best]), float(thresholds[best]), float(precision[best]),
                 float(recall[best]))
