"""The NAB score: the Numenta Anomaly Benchmark's own scoring, threshold optimised per profile.

Lavin and Ahmad, "Evaluating Real-time Anomaly Detection Algorithms - the Numenta Anomaly
Benchmark", IEEE ICMLA 2015, https://arxiv.org/abs/1510.03336; rules as in NAB 1.1's
`nab/sweeper.py`, `nab/optimizer.py` and `nab/runner.py` (normalisation):

- Each anomaly window (a run of labelled steps) counts once. Detected at step i, it earns
  tp * S(-(end - i + 1) / width) / S(-1), S(x) = 2 * sigmoid(-5x) - 1, keeping the best
  (earliest) detection; undetected, it costs -fn.
- A detection outside every window costs fp * S((i - prev_end) / (prev_width - 1)) after a
  window (-fp * 1 when S's argument exceeds 3), and -fp when no window precedes it.
- The first min(floor(0.15 T), 750) steps of a series (its probationary period) are ignored.
- A step is detected when its score is >= the threshold; one threshold for the whole corpus,
  chosen among the distinct scores (or none) to maximise the corpus' raw score, per profile.
- Normalised score = 100 * (raw - null) / (perfect - null): null is the same optimised score
  of a detector that gives every step the same score, perfect is tp times the number of
  windows.

Deviation: a window of one step followed by a detection divides by zero in NAB; here such a
detection counts as far from the window (-fp).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from oddity.core.errors import MetricError
from oddity.metrics.classification import labels_and_scores
from oddity.metrics.series import events

PROBATION_FRACTION = 0.15
PROBATION_CAP = 5000  # NAB: probation = min(floor(0.15 T), 0.15 * 5000)


@dataclass(frozen=True)
class NabProfile:
    """Weights of an application profile (NAB's `config/profiles.json`)."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, NabProfile] = {
    "standard": NabProfile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": NabProfile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": NabProfile(tp=1.0, fp=0.11, fn=2.0),
}


@dataclass(frozen=True)
class NabScore:
    """A profile's NAB result over a corpus.

    `score` is the normalised score (0 = null detector, 100 = perfect); `raw`, `null` and
    `perfect` the unnormalised sums; `threshold` the optimised one (detections are scores
    >= it; None when detecting nothing scores best); `tp`, `fp`, `fn` count detected windows,
    detections outside windows and missed windows (after the probationary period) there.
    """

    profile: str
    score: float
    raw: float
    null: float
    perfect: float
    threshold: float | None
    tp: int
    fp: int
    fn: int


def probationary_length(length: int) -> int:
    """NAB's probationary period of a series of `length` steps: min(floor(0.15 T), 750).

    Parameters
    ----------
    length : int
        Steps T of the series.

    Returns
    -------
    int
        The probationary steps.
    """
    return int(min(math.floor(PROBATION_FRACTION * length), PROBATION_FRACTION * PROBATION_CAP))


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """NAB's S(x) = 2 * sigmoid(-5x) - 1, and -1 for x > 3.

    Parameters
    ----------
    position : numpy.ndarray
        Relative positions x to the end of a window.

    Returns
    -------
    numpy.ndarray
        S(x).
    """
    position = np.asarray(position, dtype=np.float64)
    return np.where(position > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0)


def sweep_weights(labels: np.ndarray, probation: int,
                  profile: NabProfile) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the reward (or cost) of a detection there, and its window number (-1
    outside windows, -2 in the probationary period).

    Parameters
    ----------
    labels : numpy.ndarray
        (T,) bool labels.
    probation : int
        Probationary steps.
    profile : NabProfile
        Rewards and costs.

    Returns
    -------
    tuple of numpy.ndarray
        (weight per step, window number per step).
    """
    steps = labels.size
    starts, ends = events(labels)
    window = np.full(steps, -1)
    weight = np.full(steps, -profile.fp)  # outside, before any window
    max_tp = float(scaled_sigmoid(np.array(-1.0)))
    index = np.arange(steps)
    for k, (start, end) in enumerate(zip(starts, ends)):
        width = end - start + 1
        inside = slice(start, end + 1)
        window[inside] = k
        weight[inside] = scaled_sigmoid(-(end - index[inside] + 1) / width) * profile.tp / max_tp
        after = slice(end + 1, starts[k + 1] if k + 1 < starts.size else steps)
        position = ((index[after] - end) / (width - 1) if width > 1
                    else np.full(index[after].size, np.inf))
        weight[after] = scaled_sigmoid(position) * profile.fp
    window[:probation] = -2
    return weight, window


@dataclass(frozen=True)
class _Sweep:
    """Raw corpus score (and counts) at each candidate threshold, highest threshold first."""

    thresholds: np.ndarray  # +inf (detect nothing), then the distinct scores descending
    raw: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    windows: int  # windows with at least one step after the probationary period

    def at(self, threshold: float) -> int:
        """Position of `threshold`: the lowest candidate that is >= it."""
        return int(np.count_nonzero(self.thresholds >= threshold)) - 1


def _sweep(corpus: list[tuple[np.ndarray, np.ndarray, int]], profile: NabProfile) -> _Sweep:
    """NAB's `calcScoreByThreshold` over the scorable steps of every series at once."""
    scores, weights, windows = [], [], []
    offset = 0
    for y, s, probation in corpus:
        weight, window = sweep_weights(y, probation, profile)
        keep = window != -2
        scores.append(s[keep])
        weights.append(weight[keep])
        windows.append(np.where(window[keep] >= 0, window[keep] + offset, -1))
        offset += int(window.max(initial=-1)) + 1
    s = np.concatenate(scores).astype(np.float64)
    w = np.concatenate(weights)
    win = np.concatenate(windows)
    order = np.argsort(-s, kind="stable")
    s, w, win = s[order], w[order], win[order]
    inside = win >= 0
    scorable_windows = np.unique(win[inside]).size
    # A window's part is max(-fn, best reward among its detected steps): its gain at each
    # step is the rise of the running maximum within the window.
    running = pd.Series(np.where(inside, w, -profile.fn)).groupby(win).cummax().to_numpy()
    previous = pd.Series(running).groupby(win).shift(1, fill_value=-profile.fn).to_numpy()
    gain = np.where(inside, np.maximum(running, -profile.fn) - np.maximum(previous, -profile.fn),
                    w)
    first_hit = inside & (previous == -profile.fn) & (running > -profile.fn)
    raw = -profile.fn * scorable_windows + np.cumsum(gain)
    tp = np.cumsum(first_hit)
    fp = np.cumsum(~inside)
    last_of_tie = np.append(s[1:] != s[:-1], True)  # score >= threshold takes every tie
    return _Sweep(np.concatenate(([np.inf], s[last_of_tie])),
                  np.concatenate(([-profile.fn * scorable_windows], raw[last_of_tie])),
                  np.concatenate(([0], tp[last_of_tie])), np.concatenate(([0], fp[last_of_tie])),
                  scorable_windows)


def _profile(profile: str | NabProfile) -> NabProfile:
    if isinstance(profile, NabProfile):
        return profile
    if profile not in PROFILES:
        raise MetricError(f"unknown NAB profile {profile!r}; choose one of {sorted(PROFILES)} "
                          "or pass a NabProfile.")
    return PROFILES[profile]


def _corpus(series: Sequence[tuple[ArrayLike, ArrayLike]],
            probation: int | None) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Validated (labels, scores, probation) of every series."""
    if probation is not None and probation < 0:
        raise MetricError(f"`probation` must be >= 0 steps or None; got {probation}.")
    if not series:
        raise MetricError("the NAB score needs at least one series of (labels, scores).")
    corpus = []
    for k, (labels, scores) in enumerate(series):
        try:
            y, s = labels_and_scores(labels, scores, need_both=False)
        except MetricError as exc:
            raise MetricError(f"series {k}: {exc}") from None
        corpus.append((y, s, probationary_length(y.size) if probation is None else probation))
    return corpus


def nab_raw_score(series: Sequence[tuple[ArrayLike, ArrayLike]], threshold: float,
                  profile: str | NabProfile = "standard", probation: int | None = None) -> float:
    """NAB's raw (unnormalised) score of a corpus at a given threshold (scores >= it are
    detections); arguments as in `nab_score`.

    Parameters
    ----------
    series : sequence of tuple
        (labels, scores) per series.
    threshold : float
        Scores at or above it are detections.
    profile : str or NabProfile, default "standard"
        Rewards and costs.
    probation : int, optional
        Probationary steps (default: `probationary_length` of each series).

    Returns
    -------
    float
        The raw score.

    Raises
    ------
    MetricError
        As `nab_score`.
    """
    sweep = _sweep(_corpus(series, probation), _profile(profile))
    return float(sweep.raw[sweep.at(threshold)])


def nab_score(series: Sequence[tuple[ArrayLike, ArrayLike]],
              profile: str | NabProfile = "standard", probation: int | None = None,
              threshold: float | None = None) -> NabScore:
    """NAB's normalised score of a detector over a corpus, under one application profile.

    Parameters
    ----------
    series : sequence of (labels, scores)
        One pair per series: 0/1 labels per step (1 inside an anomaly window; windows are
        runs of 1s, so two windows must not touch) and the detector's scores (higher = more
        anomalous), on one scale for the whole corpus, since one threshold serves them all.
    profile : str or NabProfile
        "standard", "reward_low_FP_rate" or "reward_low_FN_rate", or other weights.
    probation : int or None
        Steps ignored at the start of every series; None for NAB's min(floor(0.15 T), 750).
    threshold : float or None
        None to optimise the threshold over the corpus as NAB does; else detections are the
        scores >= this threshold (e.g. 1 for 0/1 decisions made beforehand). The null
        detector is optimised either way, as in NAB's normalisation.

    Returns
    -------
    NabScore
        The normalised score, its raw parts, the threshold (optimised or given) and counts.

    Raises
    ------
    MetricError
        On an unknown profile, malformed labels or scores, or a corpus without windows.
    """
    weights = _profile(profile)
    corpus = _corpus(series, probation)
    if not any(y.any() for y, _, _ in corpus):
        raise MetricError("no series has an anomaly window; the normalised NAB score needs at "
                          "least one (nab_raw_score works without).")
    sweep = _sweep(corpus, weights)
    # The first maximum: the highest such threshold, as NAB.
    best = int(np.argmax(sweep.raw)) if threshold is None else sweep.at(threshold)
    null_corpus = [(y, np.zeros(y.size), probation) for y, _, probation in corpus]
    null = float(_sweep(null_corpus, weights).raw.max())
    windows = sum(events(y)[0].size for y, _, _ in corpus)
    perfect = weights.tp * windows
    raw = float(sweep.raw[best])
    tp = int(sweep.tp[best])
    name = profile if isinstance(profile, str) else "custom"
    return NabScore(profile=name, score=100.0 * (raw - null) / (perfect - null), raw=raw,
                    null=null, perfect=perfect,
                    threshold=(None if best == 0 else float(sweep.thresholds[best]))
                    if threshold is None else threshold,
                    tp=tp, fp=int(sweep.fp[best]), fn=sweep.windows - tp)


def nab_scores(series: Sequence[tuple[ArrayLike, ArrayLike]]) -> dict[str, NabScore]:
    """`nab_score` under each of NAB's three profiles, keyed by profile name.

    Parameters
    ----------
    series : sequence of tuple
        (labels, scores) per series, as `nab_score` takes them.

    Returns
    -------
    dict of str to NabScore
        Profile name to score.

    Raises
    ------
    MetricError
        As `nab_score`.
    """
    return {profile: nab_score(series, profile) for profile in PROFILES}
