"""ARTime: windows of a downsampled series clustered online by a dual-vigilance fuzzy ART;
a window that resonates with no category is an anomaly.

M. Hampton, "ARTime", an adaptive resonance theory detector for the Numenta Anomaly Benchmark,
2021, https://github.com/markNZed/ARTimeNAB.jl ; top of NAB's scoreboard (standard profile
74.9, https://github.com/numenta/NAB). Dual-vigilance fuzzy ART: L. E. Brito da Silva,
I. Elnabarawy and D. C. Wunsch II, "Dual vigilance fuzzy adaptive resonance theory", Neural
Networks 109, 2019, https://doi.org/10.1016/j.neunet.2018.09.015 .

The method, as its author implements it:
- The series is downsampled by `sstep` = probationary steps // (`window` x 13): each block's
  value is its extreme farthest from a running average (its mean if within 10% of the mean),
  scaled into the range, cut to `levels` levels, and snapped to a running median level when
  within `chomp` of it.
- A feature is the last `window` downsampled values, min-max scaled, Haar wavelet transformed
  and scaled again, followed by the raw window; it is complement coded.
- A dual-vigilance fuzzy ART learns the features online: the match of a category is
  (fuzzy overlap)^3 x (overlap on the newest value)^2; a match above the upper vigilance
  updates the category (fast learning), one above the lower vigilance adds a category to the
  same cluster, none adds a new cluster: the window did not resonate.
- The probationary period's features set both vigilances (an ART trained at 0.8 on them in
  order of increasing total similarity, the mean of its later matches) and are replayed; then
  the vigilances adapt every half trend window and after each anomaly (the upper one to the
  mean match, the lower one towards the window's lowest match or down by the recent shortfall).
- A window that makes a new cluster is anomalous unless masked (after a new cluster or a
  vigilance change, until 1.5 windows pass without one; or within 1.5 windows of the last
  anomaly), a mask it breaks by matching far below the last anomaly's match. Its score grows
  with the distance of the match below both vigilances and the newest value's mismatch.

Deviations, one line each:
- The range is the fitted history's minimum and maximum widened by `range_margin` of its span
  on each side (NAB gives the detector the whole file's); later levels beyond it are clipped.
- The probationary period is the fitted history, at most `max_probation` steps (the author's:
  15% of the whole file, at most 750 steps: NAB's probationary period, known ahead).
- Several channels: one independent ART per channel, the step score their maximum.
- A category whose newest-value weights both reached 0 matches 0 (the original divides 0 by 0).
- The memory is learned from the stream being scored: `score` replays the given rows through a
  fresh one; `update` continues one that first replays the fitted history.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from oddity.core.checks import check_positive_ints
from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.series.detector import SeriesInput
from oddity.series.replay import ReplayDetector

WINDOWS_PER_PROBATION = 13  # downsampled windows the probationary period spans
MAX_UPPER_VIGILANCE = 0.97
LOWER_RISE = 0.19  # share of the gap to the window's lowest match the lower vigilance rises by
SHORTFALL_FLOOR, SHORTFALL_CAP = 0.05, 0.37  # shortfalls below the upper vigilance counted
SPIKE_SHARE = 0.1  # a block's extreme within this share of its mean is replaced by the mean


def haar(values: np.ndarray) -> np.ndarray:
    """Full orthonormal Haar wavelet transform of a power-of-two length vector.

    Parameters
    ----------
    values : numpy.ndarray
        (n,) values, n a power of two.

    Returns
    -------
    numpy.ndarray
        (n,) coefficients, coarsest first: the scaling coefficient, then the details level by
        level, each level's detail the later minus the earlier half over sqrt(2).

    Examples
    --------
    >>> haar(np.array([1.0, 1.0, 3.0, 5.0])).round(3).tolist()
    [5.0, 3.0, 0.0, 1.414]
    """
    details = []
    approx = np.asarray(values, dtype=np.float64)
    while len(approx) > 1:
        pairs = approx.reshape(-1, 2)
        details.append((pairs[:, 1] - pairs[:, 0]) / np.sqrt(2.0))
        approx = (pairs[:, 0] + pairs[:, 1]) / np.sqrt(2.0)
    return np.concatenate([approx, *details[::-1]])


def probation_steps(length: int, max_probation: int = 750) -> int:
    """ARTime's probationary period of a series: 15% of it below 5000 steps, else
    `max_probation`, rounded down to an even count.

    Parameters
    ----------
    length : int
        Steps in the series.
    max_probation : int, default 750
        The period of long series.

    Returns
    -------
    int
        The probationary steps.

    Examples
    --------
    >>> probation_steps(4032), probation_steps(22695)
    (604, 750)
    """
    steps = int(np.floor(0.15 * length)) if length < 5000 else max_probation
    return steps - steps % 2


class DualVigilanceArt:
    """Dual-vigilance fuzzy ART over complement-coded features, with ARTime's match.

    Parameters
    ----------
    dim : int
        Feature length before complement coding.
    lower, upper : float
        The lower and upper vigilance.

    Attributes
    ----------
    weights : numpy.ndarray
        (capacity, 2 * dim) category weights; the first `count` rows are in use.
    count : int
        Categories so far (the first is all ones, made by the first sample, which is not
        learned).
    match, energy : float
        The best match of the last sample and its newest-value overlap (0 when none).

    Examples
    --------
    >>> art = DualVigilanceArt(2, 0.9, 0.9)
    >>> art.train(np.array([0.2, 0.4])), art.train(np.array([0.2, 0.4]))
    (False, False)
    >>> art.train(np.array([0.2, 0.4])), art.count
    (True, 2)
    """

    def __init__(self, dim: int, lower: float, upper: float):
        self.dim = dim
        self.lower, self.upper = lower, upper
        self.weights = np.ones((16, 2 * dim))
        self.count = 0
        self.match = self.energy = 0.0

    def add(self, coded: np.ndarray) -> None:
        """Store a complement-coded sample as a new category.

        Parameters
        ----------
        coded : numpy.ndarray
            (2 * dim,) the sample and its complement.
        """
        if self.count == len(self.weights):
            self.weights = np.concatenate((self.weights, np.ones_like(self.weights)))
        self.weights[self.count] = coded
        self.count += 1

    def train(self, features: np.ndarray, learn: bool = True) -> bool:
        """Match one sample against the categories and, when `learn`, learn it.

        Parameters
        ----------
        features : numpy.ndarray
            (dim,) values in [0, 1].
        learn : bool, default True
            Update or add categories.

        Returns
        -------
        bool
            Whether the sample resonated (matched a cluster at the lower vigilance at least);
            False when not learning and for the first sample.
        """
        coded = np.concatenate((features, 1.0 - features))
        if self.count == 0:  # the first category is all ones; the sample is not learned
            self.count = 1
            self.match = self.energy = 0.0
            return False
        weights = self.weights[:self.count]
        overlap = np.minimum(weights, coded)
        size = weights.sum(axis=1)
        fit = overlap.sum(axis=1) / np.where(size == 0, 0.001, size)
        newest = (self.dim - 1, 2 * self.dim - 1)
        total = weights[:, newest].sum(axis=1)
        energy = np.divide(overlap[:, newest].sum(axis=1), total, out=np.zeros(self.count),
                           where=total > 0)
        match = fit ** 3 * energy ** 2
        best = int(np.argmax(match))
        self.match, self.energy = ((float(match[best]), float(energy[best])) if match[best] > 0
                                   else (0.0, 0.0))
        if not learn:
            return False
        passed = match >= self.upper
        if passed.any():
            weights[passed] = overlap[passed]
            return True
        self.add(coded)
        return bool(match[best] >= self.lower)


def initial_vigilance(features: np.ndarray, initial: float, skip: int) -> float:
    """ARTime's starting vigilance: features ordered by their total similarity to the others
    train an ART at `initial`; the mean of its best matches from sample `skip` on.

    Parameters
    ----------
    features : numpy.ndarray
        (n, dim) the probationary period's features.
    initial : float
        Both vigilances of the trained ART.
    skip : int
        Samples left out of the mean (the first matches, made on few categories).

    Returns
    -------
    float
        The vigilance.
    """
    norms = np.linalg.norm(features, axis=1)
    gram = features @ features.T
    outer = np.outer(norms, norms)
    similarity = np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0)
    zero = norms == 0
    similarity[zero, :] = 1.0 - norms[None, :]  # a zero feature: 1 - the other's norm
    similarity[:, zero] = 1.0 - norms[:, None]
    np.fill_diagonal(similarity, 1.0)
    order = np.argsort(similarity.sum(axis=0), kind="stable")
    art = DualVigilanceArt(features.shape[1], initial, initial)
    matches = []
    for row in features[order]:
        art.train(row)
        matches.append(art.match)
    return float(np.mean(matches[skip - 1:]))


class ArtimeStream:
    """ARTime on one channel, one value at a time.

    Parameters
    ----------
    low, high : float
        The range values are scaled from.
    probation : int
        Steps of the probationary period (scored 0; their features set the vigilances).
    window : int
        Downsampled values per feature window (a power of two).
    levels : int
        Levels the scaled values are cut to.
    chomp : float
        Values within this distance of the running median level are snapped to it.
    initial_vigilance : float
        Vigilance of the ART that sets the starting vigilances.

    Examples
    --------
    >>> values = np.tile([0.0, 1.0, 2.0, 1.0], 300)
    >>> values[1000] = 6.0
    >>> stream = ArtimeStream(0.0, 6.0, 300, 8, 80, 0.075, 0.8)
    >>> scores = np.array([stream.step(v) for v in values])
    >>> int(np.argmax(scores)) in range(1000, 1010), bool(scores[:1000].max() == 0)
    (True, True)
    """

    def __init__(self, low: float, high: float, probation: int, window: int, levels: int,
                 chomp: float, initial_vigilance: float):
        self.low, self.high = low, high
        self.window, self.levels, self.chomp = window, levels, chomp
        self.initial_vigilance = initial_vigilance
        self.sstep = max(1, probation // (window * WINDOWS_PER_PROBATION))
        self.trend = probation // self.sstep  # downsampled steps of the probationary period
        self.mask = int(1.5 * window)
        self.wavelet = np.array([haar(unit) for unit in np.eye(window)]).T  # haar as a matrix
        self.art = DualVigilanceArt(2 * window, 0.0, 0.0)
        self.step_count = 0
        self.block: list[float] = []
        self.average = 0.0
        self.level_counts = np.zeros(levels + 1, dtype=np.int64)
        self.median = self.below = self.above = 0
        self.recent = np.zeros(window)
        self.index = 1  # downsampled steps, from 1
        self.probation_features: list[np.ndarray] = []
        self.last_anomaly, self.last_anomaly_match, self.last_update = 0, 0.0, 0
        self.mask_after_new, self.steady = False, 0
        self.matches = np.ones(self.trend // 2 + 1)
        self.shortfalls = np.zeros(self.trend + 1)
        self.match_sum, self.match_count = 0.0, 0
        self.anomaly_sum, self.anomaly_count, self.anomaly_last = 0.0, 0, 0.0

    def step(self, value: float) -> float:
        """Take one value and return its anomaly score.

        Parameters
        ----------
        value : float
            The next value.

        Returns
        -------
        float
            Score in [0, 1]; 0 except at downsampled steps that detect an anomaly.
        """
        self.step_count += 1
        self.block.append(value)
        if self.step_count % self.sstep:
            return 0.0
        level = self.downsample()
        self.block = []
        self.recent[:-1] = self.recent[1:]
        self.recent[-1] = level
        features = np.zeros(2 * self.window)
        if self.index >= self.window:
            shape = self.recent - self.recent.min()
            if shape.max() != 0:
                shape /= shape.max()
            coefficients = self.wavelet @ shape
            coefficients -= coefficients.min()
            if coefficients.max() != 0:
                coefficients /= coefficients.max()
            features = np.concatenate((coefficients, self.recent))
        index = self.index
        self.index += 1
        if index > self.trend:
            return self.detect(features, index)
        self.probation_features.append(features)
        if index == self.trend:
            vigilance = initial_vigilance(np.array(self.probation_features[self.window - 1:]),
                                          self.initial_vigilance, self.trend // 2)
            self.art.lower = self.art.upper = vigilance
            for past, feature in enumerate(self.probation_features, start=1):
                self.detect(feature, past)
            self.probation_features = []
        return 0.0

    def downsample(self) -> float:
        """The current block's value: scaled, cut to a level and snapped to the running
        median level when close to it.

        Returns
        -------
        float
            The value in [0, 1].
        """
        block = self.block
        mean, top, bottom = sum(block) / len(block), max(block), min(block)
        if self.index == 1:
            self.average = mean
        self.average = (self.average + mean) / 2
        value = bottom if abs(top - self.average) < abs(bottom - self.average) else top
        if abs(value - mean) < SPIKE_SHARE * mean:
            value = mean
        value -= self.low
        if self.high != self.low:
            value /= self.high - self.low
        level = min(max(round(value * self.levels), 0), self.levels)
        self.level_counts[level] += 1
        if self.index == 1:
            self.median = level
        if self.median > level:
            self.below += 1
        elif self.median < level:
            self.above += 1
        half = self.index // 2
        counts = self.level_counts
        if half < self.above:
            self.below += counts[self.median]
            self.median += 1
            while counts[self.median] == 0:
                self.median += 1
            self.above -= counts[self.median]
        elif half < self.below:
            self.above += counts[self.median]
            self.median -= 1
            while counts[self.median] == 0:
                self.median -= 1
            self.below -= counts[self.median]
        value, median = level / self.levels, self.median / self.levels
        return median if abs(value - median) < self.chomp else value

    def detect(self, features: np.ndarray, index: int) -> float:
        """Learn one feature window and score it; adapt the vigilances when due.

        Parameters
        ----------
        features : numpy.ndarray
            (2 * window,) the window's features.
        index : int
            Its downsampled step, from 1.

        Returns
        -------
        float
            The anomaly score (0 when it resonated, was masked, or in the probationary period).
        """
        art = self.art
        since = index - self.last_anomaly
        update_after_anomaly = since == self.mask
        update_for_trend = index - self.last_update >= self.trend // 2
        after_anomaly = since <= self.mask
        if index > self.trend + self.mask and self.mask_after_new and self.steady >= self.mask:
            self.mask_after_new = False
        resonated = art.train(features, learn=index >= self.window)
        match = art.match
        self.steady = self.steady + 1 if resonated else 0
        self.match_sum += match
        self.match_count += 1
        self.matches[:-1] = self.matches[1:]
        self.matches[-1] = match
        self.shortfalls[:-1] = self.shortfalls[1:]
        self.shortfalls[-1] = art.upper - match
        if since < self.mask and self.anomaly_count and match < self.anomaly_last:
            self.anomaly_sum += match - self.anomaly_last
            self.anomaly_last = match
        masked = self.mask_after_new or after_anomaly
        below_last = match < self.last_anomaly_match * (0.9 if after_anomaly else 0.7)
        score = 0.0
        if index > self.trend and not resonated and (not masked or below_last):
            score = self.confidence(match, art.energy)
            self.anomaly_sum += match
            self.anomaly_count += 1
            self.anomaly_last = self.last_anomaly_match = match
            self.last_anomaly = index
        self.mask_after_new = self.mask_after_new or not resonated
        if index > self.trend and (update_after_anomaly or update_for_trend):
            self.adapt(index)
        return score

    def adapt(self, index: int) -> None:
        """Move the vigilances: the upper one to the mean match so far, the lower one up
        towards the lowest recent match, or down by the recent shortfall (not below the mean
        match of the anomalies).

        Parameters
        ----------
        index : int
            The current downsampled step.
        """
        art = self.art
        lowest = float(self.matches.min())
        upper = min(MAX_UPPER_VIGILANCE, self.match_sum / self.match_count)
        if art.lower <= lowest:
            lower = art.lower + (lowest - art.lower) * LOWER_RISE
        else:
            drop = 0.0
            if index > 2 * self.trend:
                short = self.shortfalls[self.shortfalls > SHORTFALL_FLOOR]
                if short.size:
                    drop = float(np.minimum(SHORTFALL_CAP, short).mean())
            lower = art.lower - max(0.01, drop) / 2
            if self.anomaly_count:
                lower = max(self.anomaly_sum / self.anomaly_count, lower)
        art.lower, art.upper = min(upper, lower), upper
        self.last_update = index
        self.mask_after_new = True

    def confidence(self, match: float, energy: float) -> float:
        """Score of an anomalous window: how far its match lies below both vigilances, plus
        its newest value's mismatch.

        Parameters
        ----------
        match : float
            The window's best match.
        energy : float
            That category's overlap on the newest value.

        Returns
        -------
        float
            The score in (0, 1].
        """
        distance = 1.0 - min(0.999, match)
        upper = (distance - (1.0 - self.art.upper)) / distance
        lower = (distance - (1.0 - self.art.lower)) / distance
        return round(min(1.0, 0.35 * upper + 0.65 * lower + 1.5 * (1.0 - energy)), 6)


@register("artime")
class Artime(ReplayDetector):
    """ARTime: windows of the downsampled series clustered online by a dual-vigilance fuzzy
    ART; a window that makes a new cluster, outside the masks after a change, is anomalous.

    Parameters
    ----------
    window : int, default 8
        Downsampled values per feature window (a power of two, at least 2).
    levels : int, default 80
        Levels the values are cut to within the range.
    chomp : float, default 0.075
        Values within this share of the range from the running median level are snapped to
        it.
    initial_vigilance : float, default 0.8
        Vigilance of the ART that sets the starting vigilances from the probationary period.
    max_probation : int, default 750
        Most fitted steps used as the probationary period (the first steps of a longer
        history; NAB's cap).
    range_margin : float, default 0.5
        The scaling range is the fitted history's, widened on each side by this fraction of
        its span, so that later values beyond the history keep levels of their own.
    **base
        Parameters shared by every series detector (`SeriesDetector`).

    Attributes
    ----------
    low_, high_ : numpy.ndarray
        Per-channel scaling range: the fitted history's minimum and maximum, widened by
        `range_margin`.
    probation_ : int
        The probationary period in steps (the fitted steps, at most `max_probation`, even).
    history_ : numpy.ndarray
        The fitted rows, replayed into the memory that `update` continues.

    See Also
    --------
    docs/series.md : method and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> values = np.tile([0.0, 1.0, 2.0, 3.0, 2.0, 1.0], 200)
    >>> values[900] = 8.0                                    # a spike
    >>> detector = oddity.create("artime", range_margin=1.0).fit(values[:400], verbose=False)
    >>> scores = detector.score(values).scores
    >>> int(np.argmax(scores)) in range(900, 904), float(scores[:900].max())
    (True, 0.0)
    """

    probation_: int | None = None

    def __init__(self, *, window: int = 8, levels: int = 80, chomp: float = 0.075,
                 initial_vigilance: float = 0.8, max_probation: int = 750,
                 range_margin: float = 0.5, **base: Any):
        super().__init__(**base)
        self.window = window
        self.levels = levels
        self.chomp = chomp
        self.initial_vigilance = initial_vigilance
        self.max_probation = max_probation
        self.range_margin = range_margin

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_positive_ints(window=self.window, levels=self.levels,
                            max_probation=self.max_probation)
        if self.window < 2 or self.window & (self.window - 1):
            raise ConfigError(f"window must be a power of two, at least 2, got {self.window}")
        if self.max_probation < 4 * self.window:
            raise ConfigError(f"max_probation must be at least 4 windows ({4 * self.window}), "
                              f"got {self.max_probation}")
        if not 0.0 <= self.chomp < 1.0:
            raise ConfigError(f"chomp must be in [0, 1), got {self.chomp}")
        if not 0.0 < self.initial_vigilance < 1.0:
            raise ConfigError(f"initial_vigilance must be in (0, 1), got "
                              f"{self.initial_vigilance}")

    def fit(self, data: SeriesInput, *, verbose: bool = True) -> Artime:
        """Learn the range and the probationary period from the history and keep it, which
        the memory of an `update` stream replays before its first row; the threshold is
        calibrated on the held-out tail scored after the steps before it (0 within the
        probationary period, so that by default a detection is a flag).

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            The history (see `SeriesDetector.fit`), at least 4 windows long.
        verbose : bool, default True
            Unused: nothing is trained.

        Returns
        -------
        Artime
            self, fitted.

        Raises
        ------
        DataError
            If the series is not numeric or shorter than 4 windows.
        ConfigError
            If a hyper-parameter is invalid.
        """
        self.validate_params()
        frame = self._frame(data, "fit data")  # read once: NaN filled (and warned of) here
        if len(frame) < 4 * self.window:
            raise DataError(f"fit data: {len(frame)} steps; artime needs at least 4 windows "
                            f"({4 * self.window} steps) to set its vigilance")
        super().fit(frame, verbose=verbose)
        self._fit_series(frame.to_numpy(dtype=np.float64), verbose)  # the whole history's range
        self.keep_history(frame)
        return self

    def _fit_series(self, values: np.ndarray, verbose: bool) -> None:
        self.learn_range(values)
        probation = min(len(values), self.max_probation)
        self.probation_ = probation - probation % 2

    def new_memories(self) -> list[ArtimeStream]:
        """One fresh memory per channel.

        Returns
        -------
        list of ArtimeStream
            The memories, in channel order.
        """
        assert self.low_ is not None and self.high_ is not None and self.probation_ is not None
        return [ArtimeStream(float(low), float(high), self.probation_, self.window, self.levels,
                             self.chomp, self.initial_vigilance)
                for low, high in zip(self.low_, self.high_)]

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        return {**values, "probation_": self.probation_}, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.probation_ = int(values["probation_"])
