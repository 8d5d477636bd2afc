"""Rolling robust z-score: distance of each step from the median of its trailing window,
in units of that window's median absolute deviation (MAD).

Method: the Hampel identifier, as recommended by C. Leys, C. Ley, O. Klein, P. Bernard and
L. Licata, "Detecting outliers: Do not use standard deviation around the mean, use absolute
deviation around the median", Journal of Experimental Social Psychology 49(4), 2013,
https://doi.org/10.1016/j.jesp.2013.03.013 , applied over a trailing window (the rolling
form every time-series benchmark uses as its simplest baseline).

Choices:
- Channels are first standardised with robust statistics of the fitted history
  (`oddity.series.scaling`), and the window's MAD scale (1.4826 * MAD) is floored at
  `min_scale` of those units: NAB series have long flat stretches whose MAD is 0, where an
  unfloored z-score would be infinite at the first small wiggle.
- The step score is the largest channel z-score (channel scores are returned too).
- The first `window` steps have no full trailing window; they get the lowest score produced.
- Nothing else is learned: `fit` only learns the scaling and calibrates the threshold.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from oddity.core.checks import check_positive
from oddity.core.errors import ConfigError
from oddity.core.registry import register
from oddity.series.detector import SeriesDetector
from oddity.series.jit import compiled
from oddity.series.scaling import robust_scaling, standardise

MAD_TO_STD = 1.4826


def trailing_zscores(z: np.ndarray, window: int, min_scale: float, out: np.ndarray) -> None:
    """Robust z-score of each step `window`.. of `z` against the `window` steps before it,
    channel by channel: |z - median| / max(1.4826 * MAD, min_scale), median and MAD the
    order statistics `numpy.median` gives (for an even window the mean of the two middle
    values). The window is kept sorted as it slides (one value out, one in); the MAD is read
    by merging the deviations on both sides of the median outwards, which come in increasing
    order. The statistics of a window do not depend on how it was reached, so a streamed step
    scores as in the whole series. Written for numba (`oddity.series.jit`); plain Python gives
    the same numbers, slowly.

    Parameters
    ----------
    z : numpy.ndarray
        (T, C) standardised values, finite.
    window : int
        Trailing window length.
    min_scale : float
        Floor of the window's scale.
    out : numpy.ndarray
        (T - window, C) array the scores are written to.
    """
    half = window // 2
    for c in range(z.shape[1]):
        ordered = np.sort(z[:window, c])
        for step in range(window, z.shape[0]):
            if step > window:  # slide: drop the value that left, insert the previous step
                gone = np.searchsorted(ordered, z[step - window - 1, c])
                ordered[gone:-1] = ordered[gone + 1:].copy()
                new = z[step - 1, c]
                place = np.searchsorted(ordered[:-1], new)
                ordered[place + 1:] = ordered[place:-1].copy()
                ordered[place] = new
            median = ordered[half] if window % 2 else (ordered[half - 1] + ordered[half]) / 2.0
            right = np.searchsorted(ordered, median)  # first value >= median
            left = right - 1
            previous = deviation = 0.0
            for _ in range(half + 1):  # the half-th smallest deviation (and the one before)
                previous = deviation
                if left < 0 or (right < window
                                and abs(ordered[right] - median) <= abs(ordered[left] - median)):
                    deviation = abs(ordered[right] - median)
                    right += 1
                else:
                    deviation = abs(ordered[left] - median)
                    left -= 1
            mad = deviation if window % 2 else (previous + deviation) / 2.0
            out[step - window, c] = abs(z[step, c] - median) / max(MAD_TO_STD * mad, min_scale)


def zscore_signatures(numba: ModuleType) -> list[Any]:
    """numba signature of `trailing_zscores`.

    Parameters
    ----------
    numba : module
        The numba module.

    Returns
    -------
    list
        The signature.
    """
    values = numba.types.Array(numba.float64, 2, "A", readonly=True)  # writable arrays pass too
    return [numba.void(values, numba.int64, numba.float64, numba.float64[:, :])]


@register("rolling_zscore")
class RollingZScore(SeriesDetector):
    """Robust z-score of each step against the median/MAD of the `window` steps before it.

    Parameters
    ----------
    window : int, default 64
        Trailing window length in steps.
    min_scale : float, default 0.1
        Floor of the window's MAD scale, in units of the channel's robust spread.
    **base
        Parameters shared by every series detector (`SeriesDetector`).

    Attributes
    ----------
    centre_, scale_ : numpy.ndarray
        Robust per-channel scaling of the fit history.

    See Also
    --------
    docs/methods/rolling_zscore.md : method and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import oddity
    >>> rng, steps = np.random.default_rng(0), np.arange(600)
    >>> data = pd.DataFrame({"cpu": np.sin(steps / 10) + 0.05 * rng.normal(size=600),
    ...                      "mem": np.cos(steps / 10) + 0.05 * rng.normal(size=600)},
    ...                     index=pd.date_range("2024-01-01", periods=600, freq="min"))
    >>> detector = oddity.create("rolling_zscore", window=16).fit(data.iloc[:400], verbose=False)
    >>> test = data.iloc[400:].copy()
    >>> test.iloc[100, 0] += 3.0                               # a spike on cpu
    >>> result = detector.predict(test)
    >>> bool(result.labels[100]), detector.threshold_.method
    (True, 'conformal')
    """

    centre_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def __init__(self, *, window: int = 64, min_scale: float = 0.1, **base: Any):
        super().__init__(**base)
        self.window = window
        self.min_scale = min_scale

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        if self.window < 2:
            raise ConfigError(f"window must be at least 2 steps, got {self.window}")
        check_positive(min_scale=self.min_scale)

    @property
    def min_length(self) -> int:
        return self.window + 1

    def _fit_series(self, values: np.ndarray, verbose: bool) -> None:
        self.centre_, self.scale_ = robust_scaling(values)

    def _trailing_scores(self, values: np.ndarray) -> np.ndarray:
        """(T - window, C) channel z-scores of steps window..T-1 against their trailing windows."""
        assert self.centre_ is not None and self.scale_ is not None
        channel = np.empty((len(values) - self.window, values.shape[1]))
        compiled(trailing_zscores, zscore_signatures)(
            standardise(values, self.centre_, self.scale_), self.window, self.min_scale, channel)
        return channel

    def _score_series(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tail = self._trailing_scores(values)
        channel = np.concatenate((np.broadcast_to(tail.min(axis=0), (self.window, tail.shape[1])),
                                  tail))
        return channel.max(axis=1), channel

    def _score_stream(self, values: np.ndarray, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """Streamed rows against the kept `window` rows before them (no first-steps fill)."""
        assert self.context_ is not None
        joined = np.concatenate((self.context_, values))
        self.context_ = joined[len(values):]
        channel = self._trailing_scores(joined)
        return channel.max(axis=1), channel

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.centre_ is not None and self.scale_ is not None
        return values, {**arrays, "centre": self.centre_, "scale": self.scale_}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.centre_, self.scale_ = arrays["centre"], arrays["scale"]
