"""Range-based precision and recall for time series.

Tatbul, Lee, Zdonik, Alam and Gottschlich, "Precision and Recall for Time Series", NeurIPS
2018, https://papers.nips.cc/paper/7462-precision-and-recall-for-time-series.pdf.

Real ranges R_i and predicted ranges P_j are runs of 1s. Recall averages over real ranges
alpha * Existence(R_i) + (1 - alpha) * gamma(R_i) * omega(R_i, overlap), precision averages
over predicted ranges gamma(P_j) * omega(P_j, overlap) (no existence term). omega is the
positional-bias-weighted share of the range covered by the other side: bias "flat" (every
step alike), "front", "back" or "middle" (weights rising towards that part). The cardinality
factor gamma is 1 ("one"), or 1/x when the range overlaps x > 1 ranges of the other side
("reciprocal"). Both ends of a range are inclusive.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from oddity.core.errors import MetricError
from oddity.metrics.classification import as_binary
from oddity.metrics.series import DetectionF1, events

BIASES = ("flat", "front", "back", "middle")
CARDINALITIES = ("one", "reciprocal")


def bias_weights(length: int, bias: str) -> np.ndarray:
    """Positional weight of each step 1..`length` of a range.

    Parameters
    ----------
    length : int
        Steps of the range.
    bias : str
        Positional bias ("flat", "front", "middle" or "back").

    Returns
    -------
    numpy.ndarray
        (length,) weights.
    """
    position = np.arange(1, length + 1, dtype=np.float64)
    if bias == "flat":
        return np.ones(length)
    if bias == "front":
        return length - position + 1
    if bias == "back":
        return position
    return np.minimum(position, length - position + 1)  # middle


def _side(covered: np.ndarray, other: np.ndarray, bias: str, cardinality: str,
          alpha: float) -> float:
    """Mean reward over the ranges of `covered` for their overlap with the `other` side."""
    starts, ends = events(covered)
    if starts.size == 0:
        return 0.0
    other_start = np.flatnonzero(np.diff(np.concatenate(([0], other.astype(np.int8)))) == 1)
    rewards = []
    for start, end in zip(starts, ends):
        inside = other[start:end + 1]
        weights = bias_weights(end - start + 1, bias)
        omega = float(weights[inside].sum() / weights.sum())
        # Ranges of the other side overlapping this one: those starting inside it, plus one
        # already running at its start.
        count = int(((other_start > start) & (other_start <= end)).sum() + inside[0])
        gamma = 1.0 / count if cardinality == "reciprocal" and count > 1 else 1.0
        rewards.append(alpha * float(inside.any()) + (1 - alpha) * gamma * omega)
    return float(np.mean(rewards))


def range_precision_recall(labels: ArrayLike, predictions: ArrayLike, alpha: float = 0.0,
                           bias: str = "flat", cardinality: str = "one") -> DetectionF1:
    """Range-based precision, recall and their F1 (Tatbul et al. 2018).

    Parameters
    ----------
    labels : array-like of 0/1, shape (T,)
        1 at anomalous steps.
    predictions : array-like of 0/1, shape (T,)
        1 at predicted steps.
    alpha : float
        Weight of the existence reward in recall, in [0, 1].
    bias : str
        Positional bias of both measures: "flat", "front", "back" or "middle".
    cardinality : str
        "one", or "reciprocal" to divide a range's reward by the number of ranges it overlaps.

    Returns
    -------
    DetectionF1
        f1, precision and recall (threshold None).

    Raises
    ------
    MetricError
        On non-binary or mismatched inputs, labels without an anomaly, or a bad option.
    """
    if not 0.0 <= alpha <= 1.0:
        raise MetricError(f"`alpha` must lie in [0, 1]; got {alpha}.")
    if bias not in BIASES:
        raise MetricError(f"`bias` must be one of {BIASES}; got {bias!r}.")
    if cardinality not in CARDINALITIES:
        raise MetricError(f"`cardinality` must be one of {CARDINALITIES}; got {cardinality!r}.")
    y = as_binary(labels, "labels")
    predicted = as_binary(predictions, "predictions")
    if y.ndim != 1 or y.shape != predicted.shape:
        raise MetricError(f"`labels` and `predictions` must be 1-D of one length; got shapes "
                          f"{y.shape} and {predicted.shape}.")
    if not y.any():
        raise MetricError("`labels` has no anomalous step; range-based recall needs one.")
    recall = _side(y, predicted, bias, cardinality, alpha)
    precision = _side(predicted, y, bias, cardinality, 0.0)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return DetectionF1(f1, precision, recall)
