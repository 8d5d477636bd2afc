"""Threshold calibration from normal data, one rule for every modality, with its uncertainty.

Given scores of *normal* items the model did not learn from and a target false-positive rate
alpha, the threshold is the k-th smallest score with k = ceil((n + 1) * (1 - alpha)): the
split-conformal quantile. If the normal scores and future normal scores are exchangeable, a new
normal item then exceeds the threshold with probability at most alpha (Vovk et al., 2005;
Angelopoulos & Bates, "A Gentle Introduction to Conformal Prediction", 2021). With too few
items for the requested alpha (k > n) the threshold is the largest score.

How sure: the false-positive rate of one calibrated threshold is itself random (it depends on
which n normal items calibrated it). With k' = min(k, n) it follows Beta(n + 1 - k', k'), so the
threshold records its expected rate (n + 1 - k') / (n + 1) as `achievable_fpr` (at most alpha
when n is large enough, 1 / (n + 1) when it is not) and the central `INTERVAL` range of that
Beta as `fpr_interval`; a realised rate on m new normal items follows the matching
beta-binomial law (`check_realised_fpr`). Where the scores are not exchangeable with new ones
("in-sample": the model saw them; "leave-one-view-out"; model or batch thresholds) no interval
is claimed.

Which normal items: `held_out_count` is the one rule for holding items out of fitting; with
none to spare, thresholds are calibrated on the fitted items themselves ("in-sample",
optimistic). Cross-fitting ("cross-conformal", after Vovk's cross-conformal predictors and
Barber et al.'s CV+, "Predictive inference with the jackknife+", Ann. Statist. 2021) uses all
n items: `fold_indices` splits them into `CROSS_FOLDS` folds, a model fitted on the other folds
scores each fold, and the threshold from those n out-of-fold scores is applied to the model
fitted on all items. Out-of-fold models learn from (K - 1) / K of the data and score normal
items a little higher than the full model does, so the rate is, if anything, lower than stated;
the guarantee is approximate (CV+ bounds it by about 2 alpha in the worst case).
"Leave-one-image-out" is the jackknife case (one item per fold) for a model that can drop an
item's contribution without refitting (`oddity.image.detector`): the same approximation.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from oddity.core.errors import ConfigError, DataError

MIN_CALIBRATION = 10  # a small set still holds out this many items (at most a quarter of them)
CROSS_FOLDS = 5
INTERVAL = 0.9  # central probability of `Threshold.fpr_interval`
# Methods whose calibration scores are exchangeable with new normal scores (up to the
# cross-fitting approximation), so that the Beta law of the false-positive rate applies.
EXCHANGEABLE = ("conformal", "cross-conformal", "leave-one-shot-out", "leave-one-image-out")
# How `Threshold.describe` names the items of each method's calibration.
CALIBRATION_ITEMS = {"conformal": "held-out", "cross-conformal": "out-of-fold", "in-sample": "fitted",
                     "leave-one-image-out": "left-out"}


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
        The expected false-positive rate on new normal data (at least ``1 / (n_calibration + 1)``).
    n_calibration : int
        How many normal scores calibrated it.
    method : str
        ``"conformal"`` (held-out normal data), ``"cross-conformal"`` (out-of-fold scores),
        ``"in-sample"`` (the fitted data itself: optimistic), ``"manual"``, or the name of
        another calibration policy.
    fpr_interval : tuple of float or None
        The central `INTERVAL` range of the false-positive rate (None where the method gives
        no such law; see the module docstring).
    """

    value: float
    target_fpr: float
    achievable_fpr: float
    n_calibration: int
    method: str = "conformal"
    fpr_interval: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.fpr_interval is not None:  # JSON gives a list; keep equality with the original
            object.__setattr__(self, "fpr_interval", tuple(float(v) for v in self.fpr_interval))
        for name in ("target_fpr", "achievable_fpr"):  # standard JSON writes an undefined rate as null
            if getattr(self, name) is None:
                object.__setattr__(self, name, float("nan"))

    def to_dict(self) -> dict:
        """The fields as a JSON-serialisable dict.

        Returns
        -------
        dict
            Field name to value, an undefined (NaN) rate as None so that the dict is standard
            JSON; ``Threshold(**d)`` rebuilds the threshold.
        """
        fields = asdict(self)
        for name in ("target_fpr", "achievable_fpr"):
            if math.isnan(fields[name]):
                fields[name] = None
        return fields

    def describe(self, items: str = "images") -> str:
        """One line for people: value, method, target and expected rate, interval, items.

        Parameters
        ----------
        items : str, default "images"
            What the rates count, in words.

        Returns
        -------
        str
            The line.
        """
        if self.method == "manual":
            return f"{self.value:.6g} (set by hand)"
        interval = (f", {INTERVAL:.0%} interval {self.fpr_interval[0]:.3g}-{self.fpr_interval[1]:.3g}"
                    if self.fpr_interval else "")
        kind = CALIBRATION_ITEMS.get(self.method, "calibration")
        count = f", {self.n_calibration} {kind} {items}" if self.n_calibration else ""
        if self.method == "in-sample":
            item = items[:-1] if self.n_calibration == 1 and items.endswith("s") else items
            return (f"{self.value:.6g} (in-sample: calibrated on the {self.n_calibration} training "
                    f"{item} themselves, none held out; optimistic, its false-positive rate is unknown)")
        expected = f"expected {self.achievable_fpr:.3g}{interval}"
        return f"{self.value:.6g} ({self.method}, target FPR {self.target_fpr:g}, {expected}{count})"


def held_out_count(n_items: int, fraction: float, min_fit: int = 1, *, small_sets: str = "quarter") -> int:
    """How many of `n_items` normal items to hold out for calibration: `fraction` of them, or
    0 (calibrate in-sample) when `fraction` is 0 or fewer than `min_fit` items would be left.
    When `fraction` gives fewer than MIN_CALIBRATION items, `small_sets` decides: "quarter"
    holds out a quarter of the items up to MIN_CALIBRATION (at least one), so a small image set
    still gets a usable threshold; "in-sample" calibrates in-sample (a few consecutive time
    steps say little about a per-step rate).

    Parameters
    ----------
    n_items : int
        Number of normal items.
    fraction : float
        Share to hold out, in [0, 1).
    min_fit : int, default 1
        Items that must be left to fit on.
    small_sets : {"quarter", "in-sample"}, default "quarter"
        What to do when `fraction` gives fewer than MIN_CALIBRATION items.

    Returns
    -------
    int
        Items to hold out (0: calibrate in-sample).

    Raises
    ------
    ConfigError
        If `fraction` is not in [0, 1) or `small_sets` is unknown.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"calibration_fraction must lie in [0, 1), got {fraction}")
    if small_sets not in ("quarter", "in-sample"):
        raise ConfigError(f"small_sets must be 'quarter' or 'in-sample', got {small_sets!r}")
    if fraction == 0:
        return 0
    count = round(n_items * fraction)
    if count < MIN_CALIBRATION:
        count = max(1, count, min(MIN_CALIBRATION, n_items // 4)) if small_sets == "quarter" else 0
    return count if count and n_items - count >= max(1, min_fit) else 0


def fold_indices(n_items: int, folds: int, seed: int) -> list[np.ndarray]:
    """`folds` disjoint, nearly equal, seeded random index sets covering range(n_items).

    Parameters
    ----------
    n_items : int
        Number of items.
    folds : int
        Number of folds.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    list of numpy.ndarray
        The index sets.
    """
    if not 2 <= folds <= n_items:
        raise ConfigError(f"cross-fitting needs 2 <= folds <= items, got {folds} folds for {n_items} items")
    order = np.random.default_rng(seed).permutation(n_items)
    return [np.sort(part) for part in np.array_split(order, folds)]


def _rank(n: int, target_fpr: float) -> int:
    """k' = min(ceil((n + 1)(1 - alpha)), n): the rank of the threshold among n sorted scores."""
    return min(math.ceil((n + 1) * (1.0 - target_fpr)), n)


def fpr_law(threshold: Threshold) -> stats.rv_continuous | None:
    """The Beta law of the threshold's false-positive rate on new normal data.

    Parameters
    ----------
    threshold : Threshold
        A calibrated threshold.

    Returns
    -------
    scipy.stats.rv_continuous or None
        The frozen distribution, or None where the threshold's method gives none.
    """
    if threshold.method not in EXCHANGEABLE or threshold.n_calibration < 1:
        return None
    n = threshold.n_calibration
    k = _rank(n, threshold.target_fpr)
    return stats.beta(n + 1 - k, k)


def calibrate_threshold(normal_scores: np.ndarray, target_fpr: float = 0.01,
                        method: str = "conformal") -> Threshold:
    """Threshold whose false-positive rate on new normal data is at most `target_fpr` (when
    `method` says the scores are exchangeable with new ones; see the module docstring).

    Parameters
    ----------
    normal_scores : np.ndarray
        Scores of normal items.
    target_fpr : float
        Wanted false-positive rate, in (0, 1).
    method : str
        How the items relate to the model: "conformal" (held out), "cross-conformal"
        (out-of-fold), "leave-one-shot-out", "in-sample" (fitted on them), ...

    Returns
    -------
    Threshold
        With the expected rate and, for exchangeable methods, its interval.

    Raises
    ------
    ConfigError
        If `target_fpr` is not in (0, 1).
    DataError
        If there are no scores or some are not finite.

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
    k = _rank(n, target_fpr)
    threshold = Threshold(value=float(scores[k - 1]), target_fpr=target_fpr,
                          achievable_fpr=(n + 1 - k) / (n + 1), n_calibration=n, method=method)
    law = fpr_law(threshold)
    if law is None:
        return threshold
    tail = (1.0 - INTERVAL) / 2
    return Threshold(**{**threshold.to_dict(), "fpr_interval": (float(law.ppf(tail)), float(law.ppf(1 - tail)))})


@dataclass(frozen=True)
class RealisedFPR:
    """The false-positive rate a threshold gave on normal test items, beside what it promised.

    `p_too_many` / `p_too_few`: probability of at least / at most `false_positives` under the
    threshold's law (beta-binomial for calibrated thresholds, binomial at the target
    otherwise); `warning` is a sentence when either is below `level`, else None."""

    rate: float
    false_positives: int
    normal_items: int
    target_fpr: float
    expected_fpr: float
    p_too_many: float
    p_too_few: float
    warning: str | None

    def to_dict(self) -> dict:
        """The fields as a JSON-serialisable dict.

        Returns
        -------
        dict
            Field name to value.
        """
        return asdict(self)


def check_realised_fpr(threshold: Threshold, normal_scores: np.ndarray, level: float = 0.05,
                       items: str = "normal test images") -> RealisedFPR:
    """Compare the rate of `normal_scores` above `threshold` with the rate it was calibrated for.

    Parameters
    ----------
    threshold : Threshold
        A calibrated threshold.
    normal_scores : numpy.ndarray
        Scores of normal items not used to calibrate it.
    level : float, default 0.05
        Significance level of the test against the threshold's false-positive-rate law.
    items : str, default "normal test images"
        What the scores are of, in words.

    Returns
    -------
    RealisedFPR
        The realised rate, its expectation and whether they agree at `level`.

    Raises
    ------
    DataError
        If there are no normal scores.
    """
    scores = np.asarray(normal_scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise DataError("no normal items to measure the realised false-positive rate on")
    m, count = scores.size, int((scores > threshold.value).sum())
    law = fpr_law(threshold)
    expected = threshold.achievable_fpr if math.isfinite(threshold.achievable_fpr) else threshold.target_fpr
    if law is not None:
        counts = stats.betabinom(m, *law.args)
    elif math.isfinite(expected):
        counts = stats.binom(m, expected)
    else:  # a threshold set by hand promises nothing
        return RealisedFPR(count / m, count, m, threshold.target_fpr, expected, 1.0, 1.0, None)
    p_many, p_few = float(counts.sf(count - 1)), float(counts.cdf(count))
    warning = None
    if p_many < level:
        warning = (f"{count} of {m} {items} ({count / m:.3g}) lie above the threshold, more than "
                   f"its expected false-positive rate {expected:.3g} explains (p = {p_many:.2g}): "
                   "normal data has drifted from the training images, or the calibration was too small")
    elif p_few < level:
        warning = (f"only {count} of {m} {items} lie above the threshold, fewer than its expected "
                   f"false-positive rate {expected:.3g} predicts (p = {p_few:.2g}): the threshold is "
                   "conservative, so detections are missed")
    return RealisedFPR(count / m, count, m, threshold.target_fpr, expected, p_many, p_few, warning)


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
    if not 0.0 < target_fpr < 1.0:
        raise ConfigError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise DataError("cannot set a batch threshold: need at least two finite scores")
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre))) or float(values.std())
    value = centre + float(stats.norm.ppf(1.0 - target_fpr)) * spread
    return Threshold(value=value, target_fpr=target_fpr, achievable_fpr=target_fpr,
                     n_calibration=values.size, method="batch median + MAD")
