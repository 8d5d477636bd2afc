"""Causal post-processing of any series detector's step scores: Numenta's anomaly likelihood,
and the suppression of repeated alarms.

Anomaly likelihood: Ahmad, Lavin, Purdy and Agha, "Unsupervised real-time anomaly detection
for streaming data", Neurocomputing 262, 2017, https://doi.org/10.1016/j.neucom.2017.04.070
(section 4.3; NAB's `numenta` detector). The mean of the last `short_window` scores is compared
with a normal distribution fitted to those short means over the last `long_window` steps; the
likelihood is 1 - Q(z), Q the Gaussian tail, so a score is judged against the series' own
recent history: the same scale for every series.
Deviations: the score reported is L / (1 + L), L = -log10 Q(z), in [0, 1): monotone in
Numenta's log score log(Q + 1e-10) / log(1e-10) but without its saturation at Q = 1e-10, which
ties the strongest anomalies with lesser ones; the tail is one-sided (a mean below usual is
not an anomaly: detector scores, not HTM predictions); mean and spread are refitted at every
step from the steps before it (Numenta refits every 100 steps, including the current one); the
history starts from given normal scores (the detector's held-out calibration scores) instead
of a learning period.

Repeated alarms: NAB, like an on-call engineer, charges every alarm after the first one of an
event. `onset_scores` keeps a step's score only where it exceeds every score of the `period`
steps before it (0 elsewhere), which needs no threshold; `refractory_flags` drops a flag that
follows another within `period` steps, for decisions made at a known threshold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import log_ndtr

from oddity.core.errors import ConfigError, DataError


def _steps(name: str, value: int, least: int) -> int:
    if int(value) != value or value < least:
        raise ConfigError(f"`{name}` must be a whole number of steps >= {least}; got {value!r}.")
    return int(value)


def anomaly_likelihood(scores: ArrayLike, history: ArrayLike, short_window: int = 10,
                       long_window: int = 8640) -> np.ndarray:
    """Numenta's anomaly (log-)likelihood of each score (module docstring), in [0, 1].

    Parameters
    ----------
    scores : array-like of shape (T,)
        A detector's scores of consecutive steps (higher = more anomalous).
    history : array-like
        Scores of earlier normal steps (at least 2): the distribution starts from them and
        the first short means include them.
    short_window : int
        Steps averaged into the short-term mean (Numenta: 10).
    long_window : int
        Steps of short means the normal distribution is fitted to (Numenta: 8640).

    Returns
    -------
    numpy.ndarray of shape (T,)
        L / (1 + L), L = -log10 Q(z): 0.23 for a short mean at the fitted mean (Q = 1/2),
        0.5 at Q = 0.1, 0.9 at Q = 1e-9.

    Raises
    ------
    ConfigError
        On windows that are not whole numbers of steps (short >= 1, long >= 2).
    DataError
        On non-finite scores or fewer than 2 history scores.
    """
    short = _steps("short_window", short_window, 1)
    long = _steps("long_window", long_window, 2)
    values = np.asarray(scores, dtype=np.float64).ravel()
    past = np.asarray(history, dtype=np.float64).ravel()
    if past.size < 2 or not (np.isfinite(past).all() and np.isfinite(values).all()):
        raise DataError("the anomaly likelihood needs finite scores and at least 2 finite "
                        f"history scores; got {past.size} history scores")
    joined = pd.Series(np.concatenate((past, values)))
    means = joined.rolling(short, min_periods=1).mean()
    rolling = means.rolling(long, min_periods=2)
    centre = rolling.mean().shift(1).to_numpy()[past.size:]
    spread = rolling.std().shift(1).to_numpy()[past.size:]
    # Tail of short means above the fitted distribution; a zero spread makes any rise certain.
    spread = np.maximum(spread, np.finfo(np.float64).tiny)
    with np.errstate(over="ignore"):  # a rise over a zero spread: z = inf, clipped below
        z = (means.to_numpy()[past.size:] - centre) / spread
    tail_digits = -log_ndtr(-np.clip(z, -1e6, 1e6)) / np.log(10.0)  # -log10 Q(z)
    return tail_digits / (1.0 + tail_digits)


def onset_scores(scores: ArrayLike, period: int) -> np.ndarray:
    """`scores` where a step's score exceeds every score of the `period` steps before it, else 0.

    Parameters
    ----------
    scores : array-like
        (T,) step scores, expected >= 0.
    period : int
        Steps looked back; 0 returns the scores unchanged.

    Returns
    -------
    numpy.ndarray
        (T,) onset scores.

    Raises
    ------
    ConfigError
        On a period that is not a whole number of steps >= 0.
    """
    memory = _steps("period", period, 0)
    values = np.asarray(scores, dtype=np.float64).ravel()
    if memory == 0:
        return values.copy()
    padded = np.concatenate((np.full(memory, -np.inf), values))
    previous = np.lib.stride_tricks.sliding_window_view(padded[:-1], memory).max(axis=1)
    return np.where(values > previous, values, 0.0)


def refractory_flags(flags: ArrayLike, period: int) -> np.ndarray:
    """Flags with every flag dropped that comes within `period` steps after a kept one.

    Parameters
    ----------
    flags : array-like
        (T,) booleans.
    period : int
        The refractory period in steps (0 keeps every flag).

    Returns
    -------
    numpy.ndarray
        (T,) booleans.

    Raises
    ------
    ConfigError
        On a period that is not a whole number of steps >= 0.
    """
    memory = _steps("period", period, 0)
    positions = np.flatnonzero(np.asarray(flags, dtype=bool))
    kept = np.zeros(np.asarray(flags).size, bool)
    last = -memory - 1
    for i in positions.tolist():
        if i - last > memory:
            kept[i] = True
            last = i
    return kept
