"""Online calibration for streams: a rolling conformal threshold corrected by adaptive
conformal inference, so that the false-positive rate holds while the data drift.

A one-shot threshold (`oddity.core.thresholds`) is calibrated once on held-out normal scores;
under drift the share of normal steps above it wanders far from the target. Here the
threshold in force at step t is the split-conformal quantile (k = ceil((n + 1)(1 - a_t)),
as in `calibrate_threshold`) of the last `window` scores, and the level a_t follows adaptive
conformal inference (Gibbs and Candes, "Adaptive Conformal Inference Under Distribution
Shift", NeurIPS 2021, https://arxiv.org/abs/2106.00170):
a_{t+1} = a_t + rate * (target - flagged_t); a_t <= 0 flags nothing, a_t >= 1 everything.
With `rate=0` it is a plain rolling conformal quantile. Every step sees only earlier steps.

Every score joins the pool, flagged or not: leaving flagged ones out freezes the threshold
below an upward drift. The price, as in ACI itself: a run of flags (a long anomaly, or one
that becomes the new normal) lowers a_t, so for a while after it only stronger anomalies are
flagged; a level shift is flagged at its onset and then becomes the new normal.

Each step also gets a calibrated level 1 - p_t in [0, 1), p_t = (1 + #{pool >= s_t}) / (n + 1)
the conformal p-value of its score against the pool, comparable across series and detectors.
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from oddity.core.errors import ConfigError, DataError



@dataclass
class OnlineDecisions:
    """Per step: the threshold in force before the step, the decision (score > threshold)
    and the calibrated level 1 - p-value."""

    thresholds: np.ndarray
    flags: np.ndarray
    levels: np.ndarray


class OnlineConformal:
    """Rolling conformal threshold with adaptive conformal inference (module docstring).

    Parameters
    ----------
    normal_scores : array-like
        Scores of held-out normal steps that start the pool (the last `window` are kept).
    target_fpr : float
        Target share of normal steps flagged, in (0, 1).
    window : int
        Number of recent scores the threshold is computed from.
    rate : float
        Adaptation rate (gamma) of the level; 0 for a plain rolling quantile. The default,
        target / 20 at a target of 0.01, is the ratio Gibbs and Candes use (0.005 at 0.1).

    Raises
    ------
    ConfigError
        On a target outside (0, 1), a window below 1 or a negative rate.
    DataError
        When `normal_scores` is empty or not finite.
    """

    def __init__(self, normal_scores: np.ndarray, target_fpr: float, window: int = 1000,
                 rate: float = 0.0005):
        if not 0.0 < target_fpr < 1.0:
            raise ConfigError(f"target_fpr must lie in (0, 1), got {target_fpr}")
        if window < 1:
            raise ConfigError(f"calibration_window must be at least 1 step, got {window}")
        if rate < 0:
            raise ConfigError(f"adaptation_rate must be >= 0, got {rate}")
        scores = np.asarray(normal_scores, dtype=np.float64).ravel()[-window:]
        if scores.size == 0 or not np.isfinite(scores).all():
            raise DataError("online calibration needs finite held-out normal scores; got "
                            f"{scores.size} scores")
        self.target_fpr = target_fpr
        self.window = window
        self.rate = rate
        self.level = target_fpr  # a_t
        self.recent: deque[float] = deque(scores.tolist())
        self.ordered: list[float] = sorted(self.recent)

    def threshold(self) -> float:
        """The threshold in force now.

        Returns
        -------
        float
            A step is flagged when its score is above it.
        """
        if self.level <= 0.0:
            return math.inf
        if self.level >= 1.0:
            return -math.inf
        n = len(self.ordered)
        k = min(math.ceil((n + 1) * (1.0 - self.level)), n)
        return self.ordered[k - 1]

    def update(self, scores: np.ndarray) -> OnlineDecisions:
        """Decide each score in turn, then learn from it.

        Parameters
        ----------
        scores : numpy.ndarray
            (T,) scores of consecutive steps.

        Returns
        -------
        OnlineDecisions
            Flag, threshold and level of each step.
        """
        values = np.asarray(scores, dtype=np.float64).ravel()
        thresholds = np.empty(values.size)
        levels = np.empty(values.size)
        flags = np.zeros(values.size, bool)
        ordered, recent = self.ordered, self.recent
        for i, score in enumerate(values.tolist()):
            n = len(ordered)
            levels[i] = 1.0 - (1 + n - bisect.bisect_left(ordered, score)) / (n + 1)
            threshold = self.threshold()
            thresholds[i] = threshold
            flagged = score > threshold
            flags[i] = flagged
            self.level += self.rate * (self.target_fpr - flagged)
            bisect.insort(ordered, score)
            recent.append(score)
            if len(recent) > self.window:
                del ordered[bisect.bisect_left(ordered, recent.popleft())]
        return OnlineDecisions(thresholds, flags, levels)

    def state(self) -> tuple[np.ndarray, float]:
        """What `from_state` needs to rebuild this calibrator.

        Returns
        -------
        tuple
            (the pool of recent scores, oldest first; the current level a_t).
        """
        return np.array(self.recent, dtype=np.float64), float(self.level)

    @classmethod
    def from_state(cls, pool: np.ndarray, level: float, target_fpr: float, window: int,
                   rate: float) -> OnlineConformal:
        """Rebuild a calibrator saved with `state`.

        Parameters
        ----------
        pool : numpy.ndarray
            The recent scores, oldest first.
        level : float
            The current level a_t.
        target_fpr, window, rate : float, int, float
            As the constructor takes them.

        Returns
        -------
        OnlineConformal
            The calibrator.
        """
        calibrator = cls(pool, target_fpr, window, rate)
        calibrator.level = float(level)
        return calibrator


def fixed_levels(normal_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Calibrated levels 1 - p of `scores` against a fixed pool of normal scores.

    Parameters
    ----------
    normal_scores : numpy.ndarray
        The pool of normal scores.
    scores : numpy.ndarray
        Scores to rate.

    Returns
    -------
    numpy.ndarray
        One level in (0, 1) per score; higher = rarer among the normal scores.
    """
    pool = np.sort(np.asarray(normal_scores, dtype=np.float64).ravel())
    above = pool.size - np.searchsorted(pool, np.asarray(scores, dtype=np.float64), side="left")
    return 1.0 - (1.0 + above) / (pool.size + 1.0)
