"""CAD OSE: a contextual anomaly detector that learns, online, which value patterns follow which.

M. Smirnov, "Contextual Anomaly Detector - Open Source Edition" (CAD OSE), winner of the 2016
NAB competition, https://github.com/smirmik/CAD ; scored on NAB's scoreboard as "contextOSE"
(standard profile 69.9) and described with the NAB results in S. Ahmad, A. Lavin, S. Purdy
and Z. Agha, "Unsupervised real-time anomaly detection for streaming data", Neurocomputing
262, 2017, https://doi.org/10.1016/j.neucom.2017.04.070 .

The method, as its authors describe and implement it:
- Each value is scaled into the channel's range and cut to `value_bits` bits; bit k of the
  value gives the fact 2k + bit, so a step is a set of `value_bits` sensor facts.
- A context pairs a left set of facts (the previous step's sensor facts and its active
  "neurons") with a right set (facts of the next step). Each step stores the zero-level
  context (previous left group, current sensor facts) if new; contexts are indexed by their
  left and right halves (semi-contexts) so that one crossing finds every half the facts touch.
- A context whose left half was fully present at the previous step is "selected"; it is
  "active" when its right half is fully present now. Active contexts (the `max_active` most
  often active) become neuron facts of the next left group, so contexts chain into sequences.
  Partial matches of zero-level contexts spawn new, smaller contexts (left halves of at most
  `max_left` facts) while a new zero-level context appears.
- Score of a step: 0 when the facts predicted (the right halves of the selected contexts
  with the best hit ratio) cover its sensor facts, else the mean of (1 - share of selected
  contexts that are active) and (share of potential new contexts that are new).
- After a step scoring at least `base_threshold`, the next `rest_period` steps are scored 0
  (an alert is not repeated), as is the start of a stream.

Deviations, one line each:
- The range is the fitted history's minimum and maximum widened by `range_margin` of its span
  on each side (NAB gives the detector the whole file's); later values beyond it are clipped.
- `rest_period` defaults to a fifth of the fitted steps (NAB: a fifth of the probationary period).
- Ties among active contexts go to the newer context (the original breaks them by hash), and
  the contexts spawned at one step are stored in context order (the original: by left half).
- Several channels: one independent memory per channel, the step score their maximum.
- The memory is learned from the stream being scored: `score` replays the given rows through a
  fresh memory; `update` continues one memory that first replays the fitted history, as
  scoring the history and the streamed rows together would; `fit` learns only the range and
  calibrates the threshold on the held-out tail scored after the steps before it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from oddity.core.checks import check_positive_ints
from oddity.core.errors import ConfigError
from oddity.core.registry import register
from oddity.series.detector import SeriesInput
from oddity.series.replay import ReplayDetector

NEURON = 1 << 31  # neuron facts: NEURON + context id, apart from the sensor facts 0..2*bits-1


class GrowingArray:
    """A numpy array that grows at its end in amortised constant time.

    Parameters
    ----------
    dtype : numpy dtype
        Element type.

    Examples
    --------
    >>> array = GrowingArray(np.int64)
    >>> for value in range(100):
    ...     array.append(value)
    >>> int(array.view().sum()), len(array)
    (4950, 100)
    """

    def __init__(self, dtype: Any):
        self.data = np.zeros(16, dtype=dtype)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, value: Any) -> None:
        """Add one element at the end.

        Parameters
        ----------
        value : scalar
            The element.
        """
        if self.size == len(self.data):
            self.data = np.concatenate((self.data, np.zeros_like(self.data)))
        self.data[self.size] = value
        self.size += 1

    def view(self) -> np.ndarray:
        """The elements so far (a view: writes go to the array).

        Returns
        -------
        numpy.ndarray
            The first `len(self)` elements.
        """
        return self.data[:self.size]


class Halves:
    """One side's semi-contexts (halves of contexts): their facts, sizes and an index from
    each fact to the halves holding it.

    Examples
    --------
    >>> halves = Halves()
    >>> halves.id((1, 2)), halves.id((2, 5)), halves.id((1, 2))
    (0, 1, 0)
    >>> halves.counts((2, 5)).tolist()
    [1, 2]
    """

    def __init__(self) -> None:
        self.ids: dict[tuple[int, ...], int] = {}
        self.facts: list[tuple[int, ...]] = []
        self.sizes = GrowingArray(np.int64)
        self.index: dict[int, GrowingArray] = {}

    def id(self, facts: tuple[int, ...]) -> int:
        """The id of the half of these facts, stored first if new.

        Parameters
        ----------
        facts : tuple of int
            Sorted facts.

        Returns
        -------
        int
            The half's id.
        """
        half = self.ids.get(facts)
        if half is None:
            half = self.ids[facts] = len(self.facts)
            self.facts.append(facts)
            self.sizes.append(len(facts))
            for fact in facts:
                self.index.setdefault(fact, GrowingArray(np.int64)).append(half)
        return half

    def counts(self, facts: tuple[int, ...]) -> np.ndarray:
        """How many of `facts` each half holds.

        Parameters
        ----------
        facts : tuple of int
            Distinct facts.

        Returns
        -------
        numpy.ndarray
            (halves,) counts, by half id.
        """
        hits = [self.index[fact].view() for fact in facts if fact in self.index]
        if not hits:
            return np.zeros(len(self.facts), dtype=np.int64)
        return np.bincount(np.concatenate(hits), minlength=len(self.facts))


class ContextMemory:
    """CAD OSE's online memory of contexts for one channel of integer codes.

    Parameters
    ----------
    value_bits : int
        Bits per value code (codes 0 .. 2**value_bits - 1).
    max_left : int
        Most facts in the left half of a context spawned from a partial match.
    max_active : int
        Most active contexts that become neuron facts of the next step.
    base_threshold : float
        Score at or above which the following `rest_period` steps are scored 0.
    rest_period : int
        Steps scored 0 after such a score, and at the start.

    Examples
    --------
    >>> memory = ContextMemory(3, 7, 15, 0.75, 2)
    >>> scores = [memory.step(code) for code in [1, 5, 1, 5, 1, 5, 1, 5, 1, 5, 1, 5, 7]]
    >>> scores[-2], scores[-1] > 0
    (0.0, True)
    """

    def __init__(self, value_bits: int, max_left: int, max_active: int, base_threshold: float,
                 rest_period: int):
        self.value_bits = value_bits
        self.max_left = max_left
        self.max_active = max_active
        self.base_threshold = base_threshold
        self.rest_period = rest_period
        self.left, self.right = Halves(), Halves()
        self.pairs: dict[tuple[int, int], int] = {}  # (left half, right half) -> context id
        self.context_left = GrowingArray(np.int64)
        self.context_right = GrowingArray(np.int64)
        self.zero_level = GrowingArray(np.bool_)  # stored from a whole step
        self.selected_weight = GrowingArray(np.int64)  # right facts expected when selected
        self.matched = GrowingArray(np.int64)  # right facts that came
        self.activations = GrowingArray(np.int64)
        self.left_group: tuple[int, ...] = ()
        self.left_counts = np.zeros(0, dtype=np.int64)  # the left group's facts in each left half
        self.predicted: frozenset[int] = frozenset()
        self.since_alert = 0  # steps since the last raw score >= base_threshold (start: 0)

    def context(self, left: tuple[int, ...], right: tuple[int, ...], zero_level: bool
                ) -> tuple[int, bool]:
        """The id of the context (left, right), stored first if new.

        Parameters
        ----------
        left, right : tuple of int
            Sorted facts of its halves.
        zero_level : bool
            Mark the context as zero-level (stored from a whole step).

        Returns
        -------
        tuple of (int, bool)
            The context id and whether it was new.
        """
        pair = (self.left.id(left), self.right.id(right))
        context_id = self.pairs.get(pair)
        if context_id is not None:
            self.zero_level.data[context_id] |= zero_level
            return context_id, False
        context_id = self.pairs[pair] = len(self.matched)
        self.context_left.append(pair[0])
        self.context_right.append(pair[1])
        self.zero_level.append(zero_level)
        for column in (self.selected_weight, self.matched, self.activations):
            column.append(0)
        return context_id, True

    def step(self, code: int) -> float:
        """Learn one value code and return its anomaly score.

        Parameters
        ----------
        code : int
            The value's code in 0 .. 2**value_bits - 1.

        Returns
        -------
        float
            Score in [0, 1]; 0 during the rest period.
        """
        sensor = tuple(2 * k + ((code >> k) & 1) for k in range(self.value_bits))
        surprise = not self.predicted.issuperset(sensor)
        candidates: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
        new_id = -1
        if self.left_group:
            candidates.add((self.left_group, sensor))
            context_id, created = self.context(self.left_group, sensor, zero_level=True)
            new_id = context_id if created else -1
        active, selected, spawned = self.activate(sensor, new_id)
        candidates.update(spawned)
        neurons = [NEURON + int(context_id) for context_id in active[-self.max_active:]]
        self.left_group = tuple(sorted(set(sensor).union(neurons)))
        added = sum(self.context(left, right, zero_level=False)[1] for left, right in spawned)
        self.left_counts = self.left.counts(self.left_group)
        self.predicted = self.predictions()
        score = 0.0
        if surprise:
            novelty = (added + 1) / len(candidates) if new_id >= 0 else 0.0
            score = (1.0 - (len(active) / selected if selected else 0.0) + novelty) / 2.0
        rested = self.since_alert >= self.rest_period
        self.since_alert = 0 if score >= self.base_threshold else self.since_alert + 1
        return score if rested else 0.0

    def activate(self, sensor: tuple[int, ...], new_id: int
                 ) -> tuple[np.ndarray, int, list[tuple[tuple[int, ...], tuple[int, ...]]]]:
        """Update the contexts the last left group selected against the current facts.

        Parameters
        ----------
        sensor : tuple of int
            The current sensor facts.
        new_id : int
            The zero-level context stored at this step (left out), -1 if none was new.

        Returns
        -------
        active : numpy.ndarray
            Ids of the contexts fully matched on both halves, least often active first
            (ties: older first).
        selected : int
            Contexts whose left half was fully present.
        spawned : list
            (left facts, right facts) of partial matches of zero-level contexts, to store.
        """
        left_ids, right_ids = self.context_left.view(), self.context_right.view()
        left_counts = np.zeros(len(self.left.facts), dtype=np.int64)
        left_counts[:len(self.left_counts)] = self.left_counts
        left_hits = left_counts[left_ids]
        right_sizes = self.right.sizes.view()[right_ids]
        right_hits = self.right.counts(sensor)[right_ids]
        full = left_hits == self.left.sizes.view()[left_ids]
        if new_id >= 0:
            full[new_id] = False
        self.selected_weight.view()[full] += right_sizes[full]
        self.matched.view()[full] += right_hits[full]
        hit = full & (right_hits == right_sizes)
        activations = self.activations.view()
        activations[hit] += 1
        active = np.flatnonzero(hit)
        active = active[np.argsort(activations[active], kind="stable")]
        spawned: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        if new_id >= 0:
            spawn = (self.zero_level.view() & (right_hits > 0) & ~hit & (left_hits > 0)
                     & (left_hits <= self.max_left))
            spawn[new_id] = False
            group, facts = set(self.left_group), set(sensor)
            for context_id in np.flatnonzero(spawn):
                spawned.append((
                    tuple(f for f in self.left.facts[left_ids[context_id]] if f in group),
                    tuple(f for f in self.right.facts[right_ids[context_id]] if f in facts)))
        return active, int(full.sum()), spawned

    def predictions(self) -> frozenset[int]:
        """Right facts of the contexts, selected by the current left group, with the highest
        ratio of matched to expected right facts.

        Returns
        -------
        frozenset of int
            The facts predicted for the next step.
        """
        left_ids = self.context_left.view()
        full = np.flatnonzero(self.left_counts[left_ids] == self.left.sizes.view()[left_ids])
        if not full.size:
            return frozenset()
        weight = self.selected_weight.view()[full]
        ratio = np.divide(self.matched.view()[full], weight, out=np.zeros(full.size),
                          where=weight > 0)
        best = full[ratio == ratio.max()]
        return frozenset(fact for half in np.unique(self.context_right.view()[best])
                         for fact in self.right.facts[half])


@register("cad_ose")
class CadOse(ReplayDetector):
    """CAD OSE: online contextual memory of value patterns; a step is anomalous when its
    value was not predicted and few of the expected contexts came true.

    Parameters
    ----------
    value_bits : int, default 3
        Bits per value code: the channel's range is cut into 2**value_bits levels.
    max_left : int, default 7
        Most facts in the left half of a context spawned from a partial match.
    max_active : int, default 15
        Most active contexts fed forward as neuron facts.
    base_threshold : float, default 0.75
        A score at or above it silences the next `rest_period` steps.
    rest_period : int or None, default None
        Steps silenced after an alert and at the start of a stream; None: a fifth of the
        fitted steps.
    range_margin : float, default 1.0
        The coding range is the fitted history's, widened on each side by this fraction of
        its span, so that later values beyond the history keep codes of their own.
    **base
        Parameters shared by every series detector (`SeriesDetector`).

    Attributes
    ----------
    low_, high_ : numpy.ndarray
        Per-channel coding range: the fitted history's minimum and maximum, widened by
        `range_margin`.
    rest_period_ : int
        The rest period in use.
    history_ : numpy.ndarray
        The fitted rows, replayed into the memory that `update` continues.

    See Also
    --------
    docs/methods/cad_ose.md : method and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> values = np.tile([0.0, 1.0, 2.0, 3.0, 2.0, 1.0], 100)
    >>> values[500] = 0.5                                    # a value out of the pattern
    >>> detector = oddity.create("cad_ose", rest_period=20).fit(values[:300], verbose=False)
    >>> scores = detector.score(values).scores
    >>> int(np.argmax(scores[300:])) + 300, float(scores[400:500].max())
    (500, 0.0)
    """

    rest_period_: int | None = None

    def __init__(self, *, value_bits: int = 3, max_left: int = 7, max_active: int = 15,
                 base_threshold: float = 0.75, rest_period: int | None = None,
                 range_margin: float = 1.0, **base: Any):
        super().__init__(**base)
        self.value_bits = value_bits
        self.max_left = max_left
        self.max_active = max_active
        self.base_threshold = base_threshold
        self.rest_period = rest_period
        self.range_margin = range_margin

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_positive_ints(value_bits=self.value_bits, max_left=self.max_left,
                            max_active=self.max_active)
        if self.value_bits > 16:
            raise ConfigError(f"value_bits must be at most 16, got {self.value_bits}")
        if not 0.0 < self.base_threshold <= 1.0:
            raise ConfigError(f"base_threshold must be in (0, 1], got {self.base_threshold}")
        if self.rest_period is not None and self.rest_period < 0:
            raise ConfigError(f"rest_period must be >= 0 or None, got {self.rest_period}")

    def fit(self, data: SeriesInput, *, verbose: bool = True) -> CadOse:
        """Learn the coding range and calibrate the threshold (`SeriesDetector.fit`), and keep
        the history, which the memory of an `update` stream replays before its first row.
        The held-out tail is then scored again, after the steps before it (a memory started
        on the tail alone would spend it in its rest period), and the threshold recalibrated
        on those scores.

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            The history (see `SeriesDetector.fit`).
        verbose : bool, default True
            Unused: nothing is trained.

        Returns
        -------
        CadOse
            self, fitted.

        Raises
        ------
        DataError
            If the series is not numeric.
        ConfigError
            If a hyper-parameter is invalid.
        """
        self.validate_params()
        frame = self._frame(data, "fit data")  # read once: NaN filled (and warned of) here
        super().fit(frame, verbose=verbose)
        self.keep_history(frame)
        return self

    def _fit_series(self, values: np.ndarray, verbose: bool) -> None:
        self.learn_range(values)
        self.rest_period_ = (len(values) // 5 if self.rest_period is None
                             else int(self.rest_period))

    def memory_inputs(self, values: np.ndarray) -> np.ndarray:
        """Integer codes of values: their position in the fitted range, in 2**value_bits
        levels, clipped to the range.

        Parameters
        ----------
        values : numpy.ndarray
            (T, C) values.

        Returns
        -------
        numpy.ndarray
            (T, C) int codes in 0 .. 2**value_bits - 1.
        """
        assert self.low_ is not None and self.high_ is not None
        top = 2 ** self.value_bits - 1
        span = self.high_ - self.low_
        step = np.where(span > 0, span, top) / top
        return np.clip(np.floor((values - self.low_) / step), 0, top).astype(np.int64)

    def new_memories(self) -> list[ContextMemory]:
        """One fresh memory per channel.

        Returns
        -------
        list of ContextMemory
            The memories, in channel order.
        """
        assert self.low_ is not None and self.rest_period_ is not None
        return [ContextMemory(self.value_bits, self.max_left, self.max_active,
                              self.base_threshold, self.rest_period_) for _ in self.low_]

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        return {**values, "rest_period_": self.rest_period_}, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.rest_period_ = int(values["rest_period_"])
