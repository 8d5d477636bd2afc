"""Shared machinery of time-series detectors: input checks, calibration, results.

A method subclasses `SeriesDetector` and writes two hooks, nothing else:
- `_fit_series(values, verbose)`: learn normal from a float64 (T, C) array (validated, NaN
  filled), showing progress bars when `verbose`;
- `_score_series(values)`: return (per-step scores (T,), per-channel scores (T, C) or None),
  higher = more anomalous, never NaN. A method whose first steps have no score of their own
  (before a full window or lag) fills them with the lowest score it produced and says so.
It may override the `min_length` property (steps needed to fit or score; default 1),
extend `_get_state` / `_set_state` with its learned arrays (calling super()), and override
`_score_stream(values, index)` (the rows of one `update` call) to score streamed rows from
incremental state instead of rescoring the kept context with them.

`fit` holds out the last `calibration_fraction` of the history (the most recent part, never
a random subset: time order matters), fits the method on the rest and calibrates the
threshold on the held-out part's scores (`oddity.core.thresholds`, split-conformal at
`target_fpr` per time step). The held-out tail is scored together with the `min_length - 1`
steps before it, so a windowed method sees full context at the first held-out step.

`predict` decides with online calibration by default (`calibration="online"`,
`oddity.core.online_calibration`): the threshold of each step is a conformal quantile of the
recent steps judged normal (starting from the held-out scores), steered by adaptive conformal
inference so that the flagged share of normal steps stays near `target_fpr` under drift.
`calibration_window` is the number of recent scores in the pool, `adaptation_rate` the ACI
step as a fraction of `target_fpr` (0.05: Gibbs and Candes's 0.005 at a target of 0.1).

With `causal=True` (the default) a step's score depends only on that step and earlier ones
(a windowed method scores a step by the window ending at it), as streaming use and NAB's
protocol require; `causal=False` lets a step take the mean over every window covering it,
which looks up to a window's width ahead.
`calibration="fixed"` (or a threshold set by hand) uses the one-shot threshold throughout.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from oddity.core.checks import check_calibration, check_seed
from oddity.core.detector import Detector
from oddity.core.errors import ConfigError, DataError
from oddity.core.online_calibration import OnlineConformal, fixed_levels
from oddity.core.thresholds import calibrate_threshold, held_out_count
from oddity.series.frames import as_frame
from oddity.series.results import SeriesPrediction, SeriesScores
from oddity.series.windows import labels_to_spans

SeriesInput = Any  # pandas DataFrame / Series, or a 1-D (T,) / 2-D (T, C) numpy array
CALIBRATIONS = ("online", "fixed")


class SeriesDetector(Detector):
    """Base of all time-series detectors (see the module docstring for the hooks).

    Parameters
    ----------
    target_fpr : float, default 0.01
        False-positive rate per time step the calibrated threshold aims at, in (0, 1).
    calibration_fraction : float, default 0.2
        Share of the history, taken from its end, held out to calibrate the threshold.
    seed : int, default 0
        Seed of every random step.
    calibration : {"online", "fixed"}, default "online"
        "online": each step's threshold is a conformal quantile of the recent scores, adapted
        by adaptive conformal inference (`oddity.core.online_calibration`); "fixed": the
        threshold calibrated at fit time.
    calibration_window : int, default 1000
        Recent scores the online threshold is a quantile of.
    adaptation_rate : float, default 0.05
        Step size of the adaptive conformal update as a multiple of `target_fpr` (0: a plain
        rolling conformal quantile; see `oddity.core.online_calibration`).
    causal : bool, default True
        Score each step by the window ending at it (no look-ahead); False averages over every
        window covering the step.

    Attributes
    ----------
    threshold_ : Threshold
        Threshold calibrated by `fit`.
    columns_ : list of str
        Channel names seen by `fit`, in order; scoring data must have them.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> values = np.sin(np.arange(600) / 10.0)
    >>> detector = oddity.create("rolling_zscore", window=32).fit(values[:400])
    >>> values[500] += 5.0                                  # a spike
    >>> result = detector.predict(values)
    >>> bool(result.labels[500]), (500, 500) in result.spans
    (True, True)
    """

    modality: ClassVar[str] = "series"

    columns_: list[str] | None = None
    time_column_: str | None = None  # how the fitted file's times were read (set by the CLI)
    dayfirst_: bool | None = None
    calibration_scores_: np.ndarray | None = None
    context_: np.ndarray | None = None  # the last min_length - 1 rows seen (fit, then stream)
    stream_: OnlineConformal | None = None
    _stream_columns: pd.Index | None = None  # columns of the last DataFrame `update` read

    def __init__(self, *, target_fpr: float = 0.01, calibration_fraction: float = 0.2,
                 calibration: str = "online", calibration_window: int = 1000,
                 adaptation_rate: float = 0.05, causal: bool = True, seed: int = 0):
        self.target_fpr = target_fpr
        self.calibration_fraction = calibration_fraction
        self.calibration = calibration
        self.calibration_window = calibration_window
        self.adaptation_rate = adaptation_rate
        self.causal = causal
        self.seed = seed

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_calibration(self.target_fpr, self.calibration_fraction)
        check_seed(self.seed)
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.calibration_window < 1 or self.adaptation_rate < 0:
            raise ConfigError("calibration_window must be >= 1 and adaptation_rate >= 0, got "
                              f"{self.calibration_window} and {self.adaptation_rate}")

    # --- hooks for subclasses --------------------------------------------------------------
    @property
    def min_length(self) -> int:
        """How many time steps the method needs to fit or to score a series."""
        return 1

    def _fit_series(self, values: np.ndarray, verbose: bool) -> None:
        raise NotImplementedError

    def _score_series(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    # --- input handling --------------------------------------------------------------------
    def _frame(self, data: SeriesInput, source: str) -> pd.DataFrame:
        frame = as_frame(data, source)
        if len(frame) < self.min_length:
            raise DataError(f"{source}: series of {len(frame)} steps is shorter than the "
                            f"{self.min_length} steps {self.name} needs (its window/lags)")
        return frame

    def _aligned(self, frame: pd.DataFrame, source: str, from_array: bool) -> pd.DataFrame:
        """`frame` with the fitted channels in the fitted order."""
        assert self.columns_ is not None
        if list(frame.columns) == self.columns_:
            return frame
        if set(frame.columns) >= set(self.columns_):
            return frame[self.columns_]
        if from_array and frame.shape[1] == len(self.columns_):
            return frame.set_axis(self.columns_, axis=1)
        missing = sorted(set(self.columns_) - set(frame.columns))
        raise DataError(f"{source}: the model was fitted on columns {self.columns_}; "
                        f"missing {missing}")

    def _score_values(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        scores, channel_scores = self._score_series(values)
        scores = np.asarray(scores, dtype=np.float64)
        assert scores.shape == (len(values),), f"{self.name}: scores of shape {scores.shape}"
        assert np.isfinite(scores).all(), f"{self.name} produced NaN or infinite scores"
        if channel_scores is not None:
            channel_scores = np.asarray(channel_scores, dtype=np.float64)
            assert channel_scores.shape == values.shape
        return scores, channel_scores

    # --- public API ------------------------------------------------------------------------
    def fit(self, data: SeriesInput, *, verbose: bool = True) -> SeriesDetector:
        """Learn normal from a (mostly) normal history, then calibrate the threshold on its
        held-out tail (see the module docstring), as many steps as
        `oddity.core.thresholds.held_out_count` says. When it says none (`calibration_fraction=0`,
        fewer than MIN_CALIBRATION steps to hold out, or too short a history to leave
        `min_length` steps to fit) the threshold is calibrated on the fitted steps themselves;
        it is then optimistic and marked 'in-sample'. Steps are correlated, so the rate
        interval saved with the threshold (which treats them as exchangeable) is too narrow.

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            The history: a DataFrame with a DatetimeIndex or integer index and one numeric
            column per channel, or a (T,) or (T, C) array.
        verbose : bool, default True
            Show progress bars while training.

        Returns
        -------
        SeriesDetector
            self, fitted.

        Raises
        ------
        DataError
            If the series is shorter than `min_length` or not numeric.
        ConfigError
            If a hyper-parameter is invalid.
        """
        self.validate_params()
        frame = self._frame(data, "fit data")
        self.columns_ = list(frame.columns)
        values = frame.to_numpy(dtype=np.float64)
        _check_variation(frame)
        held_out = held_out_count(len(values), self.calibration_fraction, self.min_length,
                                  small_sets="in-sample")
        fit_part = values[: len(values) - held_out]
        self._fit_series(fit_part, verbose)
        if held_out:
            context = min(self.min_length - 1, len(fit_part))
            scores, _ = self._score_values(values[len(fit_part) - context:])
            scores = scores[context:]
            self.threshold_ = calibrate_threshold(scores, self.target_fpr)
        else:
            scores, _ = self._score_values(fit_part)
            self.threshold_ = calibrate_threshold(scores, self.target_fpr, "in-sample")
        self.calibration_scores_ = scores[-self.calibration_window:]
        self.context_ = values[len(values) - self.min_length + 1:]
        self.stream_, self._stream_columns = None, None
        return self

    def update(self, data: SeriesInput) -> SeriesPrediction:
        """Score and decide rows that arrive after the fitted history (or after the rows of
        earlier `update` calls), each step seeing only the past: the result is the same
        whether rows come one at a time or in blocks. The online calibrator carries over from
        call to call (`fit` or `oddity.load` start a new stream after the fitted history).

        Parameters
        ----------
        data : DataFrame, Series or array
            The new rows, with the fitted columns.

        Returns
        -------
        SeriesPrediction
            Scores, thresholds, levels and decisions of the new rows only.

        Raises
        ------
        DataError
            When the rows lack a fitted column.
        """
        self._check_fitted()
        assert self.context_ is not None and self.columns_ is not None
        values, index = self._stream_rows(data)
        if self.stream_ is None and self.online:
            self.stream_ = self.calibrator()
        scores, channel_scores = self._score_stream(values, index)
        result = SeriesScores(index=index, scores=scores, channel_scores=channel_scores,
                              columns=list(self.columns_))
        return self.decide(result, self.stream_ if self.online else None)

    def _score_stream(self, values: np.ndarray, index: pd.Index
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores of rows that follow `context_`, which then moves past them. This default
        scores the context and the rows together; a method with incremental state may
        override it, giving the scores the whole series would."""
        assert self.context_ is not None
        joined = np.concatenate((self.context_, values))
        scores, channel_scores = self._score_values(joined)
        new = slice(len(self.context_), None)
        self.context_ = joined[len(joined) - self.min_length + 1:]
        return scores[new], None if channel_scores is None else channel_scores[new]

    def _stream_rows(self, data: SeriesInput) -> tuple[np.ndarray, pd.Index]:
        """`update`'s rows as float64 (T, C) values in the fitted column order, and their
        index. A numeric array (or list) of finite values with the fitted number of channels
        (1-D for one channel), or a DataFrame of finite numbers with exactly the fitted
        columns, skips the checks and copies of `as_frame`, which would read it the same way
        (an array's rows numbered from 0); anything else goes through `as_frame`."""
        assert self.columns_ is not None
        if isinstance(data, list):
            data = np.asarray(data)
        if (isinstance(data, pd.DataFrame) and len(data) > 0
                and (data.columns.is_(self._stream_columns) or list(data.columns) == self.columns_)):
            self._stream_columns = data.columns  # immutable; is_ holds for its views (row slices)
            values = data.to_numpy()
            if values.dtype.kind in "biuf" and np.isfinite(values).all():
                return values.astype(np.float64), data.index
        if (isinstance(data, np.ndarray) and data.ndim in (1, 2) and data.dtype.kind in "biuf"
                and len(data) > 0):
            width = 1 if data.ndim == 1 else data.shape[1]
            if width == len(self.columns_):
                values = data.astype(np.float64).reshape(len(data), width)
                if np.isfinite(values).all():
                    return values, row_numbers(len(values))
        frame = self._aligned(as_frame(data, "update data"), "update data",
                              from_array=not isinstance(data, (pd.DataFrame, pd.Series)))
        return frame.to_numpy(dtype=np.float64), frame.index

    def calibrator(self) -> OnlineConformal:
        """A fresh online calibrator starting from the scores calibrated at fit time.

        Returns
        -------
        OnlineConformal
            The calibrator (`oddity.core.online_calibration`).

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        assert self.calibration_scores_ is not None
        return OnlineConformal(self.calibration_scores_, self.target_fpr,
                               self.calibration_window, self.adaptation_rate * self.target_fpr)

    @property
    def online(self) -> bool:
        """Whether `predict` calibrates online (not with `calibration="fixed"` or a threshold
        set by hand)."""
        return (self.calibration == "online" and self.threshold_ is not None
                and self.threshold_.method != "manual")

    def score(self, data: SeriesInput) -> SeriesScores:
        """Anomaly score per time step (and per channel when the method gives them).

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            The series to score, with the fitted channels (extra columns are ignored).

        Returns
        -------
        SeriesScores
            Scores over the series' index.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        DataError
            If a fitted channel is missing or the series is too short.
        """
        self._check_fitted()
        frame = self._aligned(self._frame(data, "score data"), "score data",
                              from_array=not isinstance(data, (pd.DataFrame, pd.Series)))
        scores, channel_scores = self._score_values(frame.to_numpy(dtype=np.float64))
        return SeriesScores(index=frame.index, scores=scores, channel_scores=channel_scores,
                            columns=list(frame.columns))

    def predict(self, data: SeriesInput) -> SeriesPrediction:
        """Scores plus labels (score above the threshold in force at that step: online, or
        the fixed one), the per-step thresholds and calibrated levels, and anomalous spans.

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            The series, as for `score`.

        Returns
        -------
        SeriesPrediction
            Scores, thresholds, levels, per-step labels and the anomalous (first, last) spans.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        DataError
            If a fitted channel is missing or the series is too short.
        """
        return self.decide(self.score(data), self.calibrator() if self.online else None)

    def decide(self, result: SeriesScores, calibrator: OnlineConformal | None) -> SeriesPrediction:
        """Decisions for scored steps: with `calibrator` (which then learns from them) or
        with the fixed threshold when it is None.

        Parameters
        ----------
        result : SeriesScores
            Scores of consecutive steps (`score`).
        calibrator : OnlineConformal or None
            The online calibrator (`calibrator`), or None for the fixed threshold.

        Returns
        -------
        SeriesPrediction
            The scores with a label, threshold and anomaly level per step, and the spans.
        """
        assert self.threshold_ is not None and self.calibration_scores_ is not None
        if calibrator is not None:
            decisions = calibrator.update(result.scores)
            labels, thresholds, levels = decisions.flags, decisions.thresholds, decisions.levels
        else:
            labels = result.scores > self.threshold_.value
            thresholds = np.full(len(result), self.threshold_.value)
            levels = fixed_levels(self.calibration_scores_, result.scores)
        spans = ([(result.index[s], result.index[e]) for s, e in labels_to_spans(labels)]
                 if labels.any() else [])
        return SeriesPrediction(index=result.index, scores=result.scores,
                                channel_scores=result.channel_scores, columns=result.columns,
                                threshold=self.threshold_.value, labels=labels, spans=spans,
                                thresholds=thresholds, levels=levels)

    # --- persistence -----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self.calibration_scores_ is not None and self.context_ is not None
        return ({"columns_": self.columns_, "time_column_": self.time_column_, "dayfirst_": self.dayfirst_},
                {"calibration_scores": self.calibration_scores_, "context": self.context_})

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        columns = values["columns_"]
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise DataError(f"model file's columns_ is {columns!r}, not a list of column names")
        self.columns_ = columns
        self.time_column_ = values.get("time_column_")
        self.dayfirst_ = values.get("dayfirst_")
        self.calibration_scores_ = arrays["calibration_scores"]
        self.context_ = arrays["context"]


@functools.lru_cache(maxsize=16)
def row_numbers(count: int) -> pd.RangeIndex:
    """The index 0..count-1 that `as_frame` gives an array of `count` rows (immutable, so
    one object serves every streamed block of that size).

    Parameters
    ----------
    count : int
        Rows.

    Returns
    -------
    pandas.RangeIndex
        0..count-1.
    """
    return pd.RangeIndex(count)


def _check_variation(frame: pd.DataFrame) -> None:
    """A history in which every channel is constant teaches nothing about normal variation:
    DataError; a constant channel beside varying ones: a warning naming it."""
    constant = [c for c in frame.columns if frame[c].nunique() <= 1]
    if len(constant) == len(frame.columns):
        raise DataError(f"fit data: every channel is constant over the {len(frame)} steps (e.g. "
                        f"{constant[0]!r} = {frame[constant[0]].iloc[0]:g}); a model cannot learn "
                        "what normal variation looks like from it: fit on a history that varies")
    if constant:
        warnings.warn(f"fit data: {len(constant)} channel(s) constant over the {len(frame)} steps "
                      f"(e.g. {constant[0]!r} = {frame[constant[0]].iloc[0]:g}): the model learns "
                      "no normal variation for them, so any change there may be flagged "
                      "(or, for methods that scale by the spread, missed)", stacklevel=3)
