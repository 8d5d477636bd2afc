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
    """A decision threshold and how it was obtained.

    Attributes
    ----------
    value : float
        Scores above it are anomalous.
    target_fpr : float
        The false-positive rate asked for (NaN for a manual threshold).
    achievable_fpr : float
        The rate the calibration data can guarantee: at least ``1 / (n_calibration + 1)``.
    n_calibration : int
        How many normal scores calibrated it.
    method : str
        ``"conformal"`` (held-out normal data), ``"in-sample"`` (the fitted data itself:
        optimistic), ``"manual"``, or the name of another calibration policy.
    """

    value: float
    target_fpr: float
    achievable_fpr: float
    n_calibration: int
    method: str = "conformal"

    def to_dict(self) -> dict:
        """The fields as a JSON-serialisable dict (``Threshold(**d)`` rebuilds it)."""
        return asdict(self)


def calibrate_threshold(normal_scores: np.ndarray, target_fpr: float = 0.01) -> Threshold:
    """Split-conformal threshold: a new normal score exceeds it with probability at most
    `target_fpr`, if it is exchangeable with `normal_scores`.

    Parameters
    ----------
    normal_scores : array_like
        Scores of held-out normal items (not used to fit the model).
    target_fpr : float, default 0.01
        Target false-positive rate, in (0, 1).

    Returns
    -------
    Threshold
        The ``ceil((n + 1) (1 - target_fpr))``-th smallest score (the largest when there are
        too few scores, with ``achievable_fpr = 1 / (n + 1)``).

    Raises
    ------
    ConfigError
        If `target_fpr` is not in (0, 1).
    DataError
        If there are no scores, or some are NaN or infinite.

    Examples
    --------
    >>> import numpy as np
    >>> threshold = calibrate_threshold(np.arange(1, 100), target_fpr=0.05)
    >>> threshold.value, threshold.n_calibration
    (95.0, 99)
    >>> calibrate_threshold([1.0, 2.0, 3.0], target_fpr=0.01).achievable_fpr
    0.25
    """
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
    """A user-set threshold (no calibration behind it).

    Parameters
    ----------
    value : float
        The threshold.

    Returns
    -------
    Threshold
        With method ``"manual"`` and NaN rates.
    """
    return Threshold(value=float(value), target_fpr=float("nan"), achievable_fpr=float("nan"),
                     n_calibration=0, method="manual")


def batch_threshold(scores: np.ndarray, target_fpr: float = 0.01) -> Threshold:
    """Threshold for a batch of unlabelled scores with no normal data to calibrate on (zero-shot).

    Assumes most items of the batch are normal and their scores roughly Gaussian: the normal
    centre and spread are estimated robustly by the median and the scaled median absolute
    deviation (1.4826 MAD, the Gaussian standard deviation; unaffected by up to half of the
    items being anomalous), and the threshold is the centre plus the one-sided Gaussian quantile
    of `1 - target_fpr` spreads. The false-positive rate holds only as far as the assumption does.

    Parameters
    ----------
    scores : array_like
        Scores of the batch being decided on.
    target_fpr : float, default 0.01
        Target false-positive rate, in (0, 1).

    Returns
    -------
    Threshold
        With method ``"batch median + MAD"``.

    Raises
    ------
    ConfigError
        If `target_fpr` is not in (0, 1).
    DataError
        If there are fewer than two scores, or some are not finite.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.random.default_rng(0).normal(size=1000)
    >>> round(batch_threshold(scores, target_fpr=0.05).value, 1)
    1.5
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
