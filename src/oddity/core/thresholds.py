"""Threshold calibration from normal data, so no user has to hand-tune a cut-off.

Given scores of held-out *normal* items (never seen during fitting) and a target false-positive
rate alpha, the threshold is the k-th smallest score with k = ceil((n + 1) * (1 - alpha)): the
split-conformal quantile. If the normal scores and future normal scores are exchangeable, a new
normal item then exceeds the threshold with probability at most alpha (Vovk et al., 2005;
Angelopoulos & Bates, "A Gentle Introduction to Conformal Prediction", 2021). With too few
held-out items for the requested alpha (k > n) we take the largest score and report the
achievable rate 1 / (n + 1) instead of pretending.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from oddity.core.errors import ConfigError, DataError


@dataclass(frozen=True)
class Threshold:
    """A calibrated decision threshold and how it was obtained."""

    value: float
    target_fpr: float
    achievable_fpr: float
    n_calibration: int
    method: str = "conformal"

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_threshold(normal_scores: np.ndarray, target_fpr: float = 0.01) -> Threshold:
    """Threshold whose false-positive rate on new normal data is at most `target_fpr`."""
    if not 0.0 < target_fpr < 1.0:
        raise ConfigError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    scores = np.sort(np.asarray(normal_scores, dtype=np.float64).ravel())
    if scores.size == 0:
        raise DataError("cannot calibrate a threshold: no held-out normal scores")
    if not np.all(np.isfinite(scores)):
        raise DataError("cannot calibrate a threshold: held-out normal scores contain NaN or inf")
    n = scores.size
    k = math.ceil((n + 1) * (1.0 - target_fpr))
    achievable = max(target_fpr, 1.0 / (n + 1))
    value = float(scores[min(k, n) - 1])
    return Threshold(value=value, target_fpr=target_fpr, achievable_fpr=achievable, n_calibration=n)


def manual_threshold(value: float) -> Threshold:
    """A user-set threshold (no calibration behind it)."""
    return Threshold(value=float(value), target_fpr=float("nan"), achievable_fpr=float("nan"),
                     n_calibration=0, method="manual")


def batch_threshold(scores: np.ndarray, target_fpr: float = 0.01) -> Threshold:
    """Threshold for a batch of unlabelled scores with no normal data to calibrate on (zero-shot).

    Assumes most items of the batch are normal and their scores roughly Gaussian: the normal
    centre and spread are estimated robustly by the median and the scaled median absolute
    deviation (1.4826 MAD, the Gaussian standard deviation; unaffected by up to half of the
    items being anomalous), and the threshold is the centre plus the one-sided Gaussian quantile
    of `1 - target_fpr` spreads. The false-positive rate holds only as far as the assumption does.
    """
    from scipy.stats import norm

    if not 0.0 < target_fpr < 1.0:
        raise ConfigError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise DataError("cannot set a batch threshold: need at least two finite scores")
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre))) or float(values.std())
    value = centre + float(norm.ppf(1.0 - target_fpr)) * spread
    return Threshold(value=value, target_fpr=target_fpr, achievable_fpr=target_fpr,
                     n_calibration=values.size, method="batch median + MAD")
