"""Forecast-residual detector: gradient-boosted trees forecast each channel, SHAP explains them.

Gómez, Vavrek, Buenadicha, Hoar, Kruk and Reerink, "Machine learning-driven Anomaly Detection
and Forecasting for Euclid Space Telescope Operations", arXiv 2024,
https://arxiv.org/abs/2411.05596

What the paper does and what we keep:
- An XGBoost regressor forecasts each monitored parameter from its own past values and from
  covariates; a point whose observed value is far from its forecast is anomalous. Here one
  `xgboost.XGBRegressor` (CPU `hist`) per target channel forecasts x_c[t] from the `lags` previous
  values of every channel (its own lags and the other channels' lags, the covariates) and, when
  the data has a DatetimeIndex, from calendar features (hour of day, day of week).
- Anomaly score: the standardised residual. Its centre and scale (median and 1.4826 * MAD) are
  learned on a time-ordered validation tail of the fit history that the trees did not train on
  (`validation_fraction`, also used for early stopping), so the scale is an out-of-sample one.
  The scale is floored at `min_scale` times the channel's robust spread
  (`oddity.series.scaling`), as the rolling z-score baseline does: NAB has long flat stretches
  where the residual MAD is 0 and every later wiggle would otherwise score as infinite.
  Per channel the score is |z|; per step it is the root-mean-square of z over the target
  channels (one channel: |z|). The first `lags` steps have no forecast and get the lowest score
  produced (see `SeriesDetector`).
- A second model that learns to predict flagged anomalies from covariates:
  `fit_anomaly_model(data, labels)` trains an `xgboost.XGBClassifier` on the same lag/calendar
  features against 0/1 labels (the user's, or by default this detector's own predicted labels
  on `data`); `anomaly_probability(data)` applies it and `explain(..., target="anomaly")`
  says which covariates make anomalies likely. It is saved with the model.
- SHAP: `explain(data, start, end, top=10)` runs `shap.TreeExplainer` on the forecasts (or on the
  anomaly model) for the steps in [start, end] and returns a tidy table: feature, mean |SHAP|,
  mean SHAP and the direction in which the feature pushed the output. `oddity explain` prints it
  and can plot it (`oddity.series.explain`).

Deviations, with reasons:
- The paper forecasts eleven temperatures from 35 chosen covariates with hand-built features;
  here every other column is a covariate and the features are plain lags, because a general
  toolkit cannot know which columns are physically related. `targets` restricts the forecast
  (and the score) to some columns, the others then only serve as covariates.
- Pooling (`window`, default 32): the squared standardised residuals are averaged over
  sliding windows of `window` steps and each step gets the window ending at it
  (`causal=False`: the mean over the windows covering it, `window_scores_to_steps`), then the
  square root. A forecast follows a level shift or a
  changed pattern after a few steps, so raw residuals flag only its first steps, while
  anomalies are periods; pooling turns residual spikes into periods, as residual smoothing
  does in Hundman et al. (Telemanom, KDD 2018). 32 is the window of oddity's other window
  detectors (window_iforest, window_autoencoder, hypad), so all of them judge the same
  context; `window=1` gives the raw per-step residuals. (The first version scored raw
  residuals; on NAB it lost to window_iforest on event-wise F1 and PATE, which is why pooling
  was added; 32 was taken from the other detectors and no other value was tried.) Pooled scores are smooth, so the
  held-out calibration tail holds few independent windows: give a history whose last
  `calibration_fraction` spans many windows (hundreds of steps), or the threshold is noisy.
- Trees cannot extrapolate: a level never seen in the fit history is forecast at the nearest
  seen level and so scores high. That is the method's nature and is kept (it flags new regimes).
- Defaults (`lags=10`, 100 trees of depth 4, learning rate 0.1, early stopping after 10 rounds)
  are the usual small settings, chosen so that one NAB series trains in well under a second on
  one core; they were not tuned on NAB.
"""
from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from oddity.core.checks import check_fraction, check_positive, check_positive_ints
from oddity.core.errors import ConfigError, DataError, NotFittedError
from oddity.core.registry import register
from oddity.series.detector import SeriesDetector
from oddity.series.jit import compiled
from oddity.series.scaling import robust_scaling
from oddity.series.trees import FlatTrees, boosted_trees
from oddity.series.windows import sliding_windows, window_scores_to_steps

MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation
CALENDAR_FEATURES = ("hour", "day_of_week")
ANOMALY_TARGET = "anomaly"
NAT = np.iinfo(np.int64).min  # how numpy stores NaT
NO_TIMES = np.empty(0, dtype=np.int64)
TICKS_PER_MINUTE = {"s": 60, "ms": 60_000, "us": 60_000_000, "ns": 60_000_000_000}


def lag_feature_names(columns: Sequence[str], lags: int) -> list[str]:
    """Feature names in the order `lag_matrix` lays them out: `col[t-1]`, ..., `col[t-lags]`.

    Parameters
    ----------
    columns : sequence of str
        Channel names.
    lags : int
        Lags per channel.

    Returns
    -------
    list of str
        C * lags names.
    """
    return [f"{column}[t-{lag}]" for column in columns for lag in range(1, lags + 1)]


def lag_matrix(values: np.ndarray, lags: int, times: pd.DatetimeIndex | None = None
               ) -> np.ndarray:
    """(T - lags, C * lags) rows of lagged values: row i holds x[t-1..t-lags] of each channel
    for step t = i + lags, followed, when `times` is given, by the hour of day and day of week
    of those steps (`calendar_matrix`). One compiled loop (`feature_rows`) fills them, so a
    streamed row costs no more than the call.

    Parameters
    ----------
    values : numpy.ndarray
        (T, C) series.
    lags : int
        Lags per channel.
    times : pandas.DatetimeIndex, optional
        The times of steps lags..T-1 (T - lags of them).

    Returns
    -------
    numpy.ndarray
        (T - lags, C * lags), or (T - lags, C * lags + 2) with `times`, C-contiguous.

    Raises
    ------
    ValueError
        When `times` does not hold T - lags times.
    """
    values = np.asarray(values, dtype=np.float64)
    rows, width = max(len(values) - lags, 0), values.shape[1] * lags
    ticks, per_minute = NO_TIMES, 1
    if times is not None:
        if len(times) != rows:
            raise ValueError(f"times holds {len(times)} times for {rows} feature rows")
        if times.tz is not None:
            times = times.tz_localize(None)  # the local wall-clock times, which pandas' fields read
        ticks, per_minute = times.asi8, TICKS_PER_MINUTE[np.datetime_data(times.dtype)[0]]
    out = np.empty((rows, width + (0 if times is None else len(CALENDAR_FEATURES))))
    compiled(feature_rows, feature_signatures)(values, lags, ticks, per_minute, out)
    return out


def calendar_matrix(index: pd.Index) -> np.ndarray | None:
    """Hour of day and day of week for a DatetimeIndex (float columns), else None: pandas'
    ``hour + minute / 60`` and ``day_of_week`` of the local times (NaN at NaT), without
    pandas' per-call cost (the calendar columns of `lag_matrix`).

    Parameters
    ----------
    index : pandas.Index
        The series' index.

    Returns
    -------
    numpy.ndarray or None
        (T, 2) hour and weekday, or None without a DatetimeIndex.
    """
    if not isinstance(index, pd.DatetimeIndex):
        return None
    return lag_matrix(np.empty((len(index), 0)), 0, index)


def feature_rows(values: np.ndarray, lags: int, ticks: np.ndarray, per_minute: int,
                 out: np.ndarray) -> None:
    """Write `lag_matrix`'s rows to `out`: the lags of each channel, then, when `ticks` is not
    empty, the hour of day (with the minutes as a fraction) and day of week (Monday 0) of
    times given as ticks since 1970-01-01, a Thursday (whole minutes: floor division; NaN for
    NaT). Written for numba (`oddity.series.jit`); plain Python gives the same numbers, slowly.

    Parameters
    ----------
    values : numpy.ndarray
        (T, C) float64 series.
    lags : int
        Lags per channel.
    ticks : numpy.ndarray
        (T - lags,) int64 times in units of the index (NaT: the smallest int64, as numpy
        stores it), or empty for no calendar columns.
    per_minute : int
        Ticks per minute.
    out : numpy.ndarray
        (T - lags, C * lags [+ 2]) float64 array the rows are written to.
    """
    channels = values.shape[1]
    width = channels * lags
    for i in range(out.shape[0]):
        for c in range(channels):
            for lag in range(lags):
                out[i, c * lags + lag] = values[i + lags - 1 - lag, c]
        if ticks.size:
            if ticks[i] == NAT:
                out[i, width] = out[i, width + 1] = np.nan
            else:
                minutes = ticks[i] // per_minute
                days, day_minutes = minutes // 1440, minutes % 1440
                out[i, width] = day_minutes // 60 + day_minutes % 60 / 60.0
                out[i, width + 1] = (days + 3) % 7


def feature_signatures(numba: ModuleType) -> list[Any]:
    """numba signature of `feature_rows`.

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
    ticks = numba.types.Array(numba.int64, 1, "A", readonly=True)
    return [numba.void(values, numba.int64, ticks, numba.int64, numba.float64[:, ::1])]


def _booster_bytes(booster: xgb.Booster) -> np.ndarray:
    """A booster as a uint8 array (XGBoost's own JSON format; no pickle)."""
    return np.frombuffer(bytes(booster.save_raw(raw_format="json")), dtype=np.uint8).copy()


def _booster_from(array: np.ndarray, n_jobs: int) -> xgb.Booster:
    """The booster `_booster_bytes` stored, predicting on `n_jobs` threads."""
    booster = xgb.Booster()
    booster.load_model(bytearray(np.asarray(array, dtype=np.uint8).tobytes()))
    booster.set_param({"nthread": n_jobs})
    return booster


@register("xgb_forecast")
class XGBForecast(SeriesDetector):
    """Per-channel XGBoost forecasts from lags and covariates; score = standardised residual.

    Parameters
    ----------
    lags : int, default 10
        Previous steps of every channel used as features.
    targets : tuple of str, optional
        Channels to forecast and score; None forecasts every channel.
    calendar : bool, default True
        Add hour of day and day of week for a DatetimeIndex.
    n_estimators, max_depth, learning_rate : int, int, float, default 100, 4, 0.1
        Gradient-boosting settings.
    validation_fraction : float, default 0.2
        Tail of the fit history for early stopping and the residual scale.
    early_stopping_rounds : int, default 10
        Rounds without improvement before stopping.
    min_scale : float, default 0.1
        Floor of the residual scale, in units of the channel's robust spread.
    window : int, default 32
        Steps the squared residuals are pooled over; 1 keeps raw residuals.
    n_jobs : int, default 1
        Threads of XGBoost.
    **common
        Parameters shared by every series detector (`SeriesDetector`).

    Attributes
    ----------
    boosters_ : list of xgboost.Booster
        One forecast model per target channel.
    target_columns_ : list of str
        The forecast channels.
    feature_names_ : list of str
        Names of the lag and calendar features.
    uses_calendar_ : bool
        Whether calendar features (hour, day of week) were used: `calendar` set and a
        DatetimeIndex given.
    residual_centre_, residual_scale_ : numpy.ndarray
        Out-of-sample residual statistics per target channel.
    anomaly_booster_ : object or None
        The optional anomaly classifier (`fit_anomaly_model`).
    recent_squared_ : numpy.ndarray
        Squared standardised residuals of the last `window - 1` steps seen (fit, then
        `update`), the pool the next streamed steps join.

    See Also
    --------
    docs/methods/xgb_forecast.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import oddity
    >>> rng, steps = np.random.default_rng(0), np.arange(600)
    >>> data = pd.DataFrame({"cpu": np.sin(steps / 10) + 0.05 * rng.normal(size=600),
    ...                      "mem": np.cos(steps / 10) + 0.05 * rng.normal(size=600)},
    ...                     index=pd.date_range("2024-01-01", periods=600, freq="min"))
    >>> detector = oddity.create("xgb_forecast", lags=8).fit(data.iloc[:400], verbose=False)
    >>> test = data.iloc[400:].copy()
    >>> test.iloc[100, 0] += 3.0                               # a spike on cpu
    >>> result = detector.predict(test)
    >>> bool(result.labels[100]), detector.threshold_.method
    (True, 'conformal')
    """

    def __init__(self, *, lags: int = 10, targets: tuple[str, ...] | None = None,
                 calendar: bool = True, n_estimators: int = 100, max_depth: int = 4,
                 learning_rate: float = 0.1, validation_fraction: float = 0.2,
                 early_stopping_rounds: int = 10, min_scale: float = 0.1, window: int = 32,
                 n_jobs: int = 1, **common: Any):
        super().__init__(**common)
        self.lags = lags
        self.targets = targets
        self.calendar = calendar
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.min_scale = min_scale
        self.window = window
        self.n_jobs = n_jobs
        self.feature_names_: list[str] | None = None
        self.target_columns_: list[int] | None = None
        self.uses_calendar_: bool | None = None
        self.boosters_: list[xgb.Booster] = []
        self.residual_centre_: np.ndarray | None = None
        self.residual_scale_: np.ndarray | None = None
        self.anomaly_booster_: xgb.Booster | None = None
        self.recent_squared_: np.ndarray | None = None
        self._index: pd.Index | None = None  # index of the frame being fitted or scored
        # boosters_ walked by oddity.series.trees (XGBoost's forecasts, without its per-call cost)
        self._forecast_trees: list[tuple[FlatTrees, np.float32]] = []

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_positive_ints(lags=self.lags, window=self.window, n_estimators=self.n_estimators,
                            max_depth=self.max_depth, early_stopping_rounds=self.early_stopping_rounds,
                            n_jobs=self.n_jobs)
        check_positive(min_scale=self.min_scale)
        check_fraction("validation_fraction", self.validation_fraction)
        if self.learning_rate > 1.0:
            raise ConfigError(f"learning_rate must lie in (0, 1], got {self.learning_rate}")
        check_positive(learning_rate=self.learning_rate)

    @property
    def min_length(self) -> int:
        # lags for the first row, and enough rows that the validation tail has a few of them
        return self.lags + max(self.window, 10, int(np.ceil(5 / self.validation_fraction)))

    def fit(self, data: Any, *, verbose: bool = True) -> XGBForecast:
        """See `SeriesDetector.fit`; a refit forgets the previous model, anomaly model included.

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            The history (see `SeriesDetector.fit`).
        verbose : bool, default True
            Show progress bars while training.

        Returns
        -------
        XGBForecast
            self, fitted.
        """
        self.uses_calendar_, self.anomaly_booster_ = None, None
        super().fit(data, verbose=verbose)
        assert self.context_ is not None
        squared = self._standardised_residuals(
            self.context_, self._hook_index(len(self.context_), head=False)) ** 2
        self.recent_squared_ = squared[len(squared) - self.window + 1:]
        return self

    # --- the index (for calendar features) ------------------------------------------------------
    def _frame(self, data: Any, source: str) -> pd.DataFrame:
        frame = super()._frame(data, source)
        if self.uses_calendar_ and not isinstance(frame.index, pd.DatetimeIndex):
            raise DataError(f"{source}: this xgb_forecast model was fitted with calendar features "
                            "and needs data with a DatetimeIndex (a time column)")
        self._index = frame.index
        return frame

    def _hook_index(self, length: int, head: bool) -> pd.Index | None:
        """Index of the `length` values a hook receives. The hooks get no index, so `_frame`
        records it; `SeriesDetector.fit` passes the head of the frame to `_fit_series` and
        every scoring call passes a tail of it to `_score_series`."""
        if self._index is None or len(self._index) < length:
            return None
        return self._index[:length] if head else self._index[len(self._index) - length:]

    def _prepared(self, data: Any) -> tuple[np.ndarray, pd.Index]:
        """Validated values (T, C) in the fitted column order, and their index."""
        frame = self._aligned(self._frame(data, "data"), "data",
                              from_array=not isinstance(data, (pd.DataFrame, pd.Series)))
        return frame.to_numpy(dtype=np.float64), frame.index

    # --- features -----------------------------------------------------------------------------
    def _features(self, values: np.ndarray, index: pd.Index | None) -> np.ndarray:
        """(T - lags, F) feature rows for steps lags..T-1, in `feature_names_` order."""
        if not self.uses_calendar_:
            return lag_matrix(values, self.lags)
        assert isinstance(index, pd.DatetimeIndex), "_frame checks that the index is a DatetimeIndex"
        return lag_matrix(values, self.lags, index[self.lags:])

    def _resolve_targets(self) -> list[int]:
        columns = list(self.columns_)
        if self.targets is None:
            return list(range(len(columns)))
        missing = [t for t in self.targets if t not in columns]
        if missing:
            raise ConfigError(f"targets {missing} are not columns of the data ({columns}); "
                              "name existing columns or leave targets unset")
        return [columns.index(t) for t in self.targets]

    # --- SeriesDetector hooks -----------------------------------------------------------------
    def _fit_series(self, values: np.ndarray, verbose: bool) -> None:
        index = self._hook_index(len(values), head=True)
        self.uses_calendar_ = bool(self.calendar and isinstance(index, pd.DatetimeIndex))
        self.target_columns_ = self._resolve_targets()
        names = lag_feature_names([str(c) for c in self.columns_], self.lags)
        self.feature_names_ = names + (list(CALENDAR_FEATURES) if self.uses_calendar_ else [])
        features = self._features(values, index)
        split = len(features) - max(5, round(len(features) * self.validation_fraction))
        if split < 5:
            raise DataError(f"xgb_forecast needs at least {self.min_length} steps to fit, got "
                            f"{len(values)}; pass a longer history or lower lags")
        _, spread = robust_scaling(values)
        boosters, centres, scales = [], [], []
        for c in self.target_columns_:
            target = values[self.lags:, c]
            model = xgb.XGBRegressor(
                n_estimators=self.n_estimators, max_depth=self.max_depth,
                learning_rate=self.learning_rate, tree_method="hist", n_jobs=self.n_jobs,
                random_state=self.seed, early_stopping_rounds=self.early_stopping_rounds)
            model.fit(features[:split], target[:split],
                      eval_set=[(features[split:], target[split:])], verbose=False)
            booster = model.get_booster()
            residual = target[split:] - booster.inplace_predict(features[split:])
            centre = float(np.median(residual))
            scale = MAD_TO_STD * float(np.median(np.abs(residual - centre)))
            boosters.append(booster)
            centres.append(centre)
            scales.append(max(scale, self.min_scale * float(spread[c])))
        self.boosters_ = boosters
        self._forecast_trees = [boosted_trees(b) for b in boosters]
        self.residual_centre_ = np.asarray(centres)
        self.residual_scale_ = np.asarray(scales)

    def _standardised_residuals(self, values: np.ndarray, index: pd.Index | None) -> np.ndarray:
        """(T - lags, targets) residuals in units of the fitted residual scale."""
        return self._residuals_of(self._features(values, index), values[self.lags:])

    def _residuals_of(self, features: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Standardised residuals (rows, targets) of the forecasts from `features` against
        the `observed` (rows, C) values of the same steps."""
        assert self.target_columns_ is not None
        z = np.empty((len(features), len(self.target_columns_)))
        for k, (c, (trees, base)) in enumerate(zip(self.target_columns_, self._forecast_trees)):
            z[:, k] = observed[:, c] - trees.sums(features, base)  # = booster.inplace_predict
        z -= self.residual_centre_
        z /= self.residual_scale_
        return z

    def _score_stream(self, values: np.ndarray, index: pd.Index
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """Streamed rows: forecasts of the new steps only, pooled with the squared residuals
        of the `window - 1` steps before them (`recent_squared_`), so that the calendar
        features come from the new rows' own times. Gives the causal scores of the whole
        series; `causal=False` (whose windows reach ahead) and models saved without that
        state rescore the kept context instead."""
        if not self.causal or self.recent_squared_ is None:
            return super()._score_stream(values, index)
        if self.uses_calendar_ and not isinstance(index, pd.DatetimeIndex):
            raise DataError("update data: this xgb_forecast model was fitted with calendar "
                            "features and needs rows with a DatetimeIndex (a time column)")
        assert self.context_ is not None and self.target_columns_ is not None
        joined = np.concatenate((self.context_, values))
        features = lag_matrix(joined[len(self.context_) - self.lags:], self.lags,
                              index if self.uses_calendar_ else None)
        squared = np.concatenate((self.recent_squared_,
                                  self._residuals_of(features, values) ** 2))
        pooled = sliding_windows(squared, self.window).sum(axis=1) / self.window  # = mean
        self.recent_squared_ = squared[len(squared) - self.window + 1:]
        self.context_ = joined[len(values):]  # the same length as before
        channel_scores = target_scores = np.sqrt(pooled)
        if self.target_columns_ != list(range(values.shape[1])):
            channel_scores = np.zeros(values.shape)
            channel_scores[:, self.target_columns_] = target_scores
        if pooled.shape[1] == 1:  # the root-mean-square of one channel is its own score
            return target_scores[:, 0], channel_scores
        return np.sqrt(pooled.sum(axis=1) / pooled.shape[1]), channel_scores

    def _score_series(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        squared = self._standardised_residuals(
            values, self._hook_index(len(values), head=False)) ** 2
        if self.window > 1:
            window_means = sliding_windows(squared, self.window).mean(axis=1)
            squared = window_scores_to_steps(window_means, len(squared), self.window,
                                             causal=self.causal)
        step = np.sqrt(squared.mean(axis=1))
        scores = np.concatenate([np.full(self.lags, float(step.min())), step])
        channel_scores = np.zeros((len(values), values.shape[1]))
        assert self.target_columns_ is not None
        channel_scores[self.lags:, self.target_columns_] = np.sqrt(squared)
        return scores, channel_scores

    # --- second model: anomalies from covariates ------------------------------------------------
    def fit_anomaly_model(self, data: Any, labels: Sequence[bool] | np.ndarray | None = None
                          ) -> XGBForecast:
        """Train an XGBoost classifier that predicts flagged anomalies from the lag/calendar
        features of `data`; `save` keeps it.

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            A series with the fitted channels (see `SeriesDetector.fit`).
        labels : sequence of bool, optional
            One 0/1 per step of `data` (e.g. known incidents); by default this detector's own
            `predict(data).labels`.

        Returns
        -------
        XGBForecast
            self.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        values, index = self._prepared(data)
        if labels is None:
            labels = self.predict(data).labels
        y = np.asarray(labels).astype(bool).ravel()
        if len(y) != len(values):
            raise DataError(f"labels has {len(y)} entries but the data has {len(values)} steps; "
                            "give one 0/1 label per step")
        y = y[self.lags:]
        if y.all() or not y.any():
            raise DataError("labels must contain both anomalous and normal steps (after the first "
                            f"{self.lags} steps, which have no lag features)")
        model = xgb.XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            learning_rate=self.learning_rate, tree_method="hist", n_jobs=self.n_jobs,
            random_state=self.seed, scale_pos_weight=float((~y).sum() / y.sum()))
        model.fit(self._features(values, index), y.astype(np.int64), verbose=False)
        self.anomaly_booster_ = model.get_booster()
        return self

    def anomaly_probability(self, data: Any) -> np.ndarray:
        """Probability of an anomaly per step from the second model.

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            A series with the fitted channels (see `SeriesDetector.fit`).

        Returns
        -------
        numpy.ndarray
            (T,) probabilities, NaN for the first `lags` steps (which have no features).

        Raises
        ------
        NotFittedError
            If `fit_anomaly_model` has not run.
        """
        if self.anomaly_booster_ is None:
            raise NotFittedError("no anomaly model: call fit_anomaly_model(data, labels) first")
        values, index = self._prepared(data)
        out = np.full(len(values), np.nan)
        out[self.lags:] = self.anomaly_booster_.inplace_predict(self._features(values, index))
        return out

    # --- explanations ---------------------------------------------------------------------------
    def explain(self, data: Any, start: Any = None, end: Any = None, top: int = 10,
                target: str | None = None) -> pd.DataFrame:
        """Which lags/covariates drove the forecasts (or the anomaly model) in [start, end].

        Parameters
        ----------
        data : pandas.DataFrame, pandas.Series or numpy.ndarray
            A series with the fitted channels (see `SeriesDetector.fit`).
        start, end : optional
            Index labels of `data` (timestamps or integers, inclusive); None leaves the range open.
        top : int, default 10
            Rows to return.
        target : str, optional
            A forecast column, ``"anomaly"`` for the second model, or None for the target column
            with the highest mean anomaly score in the range.

        Returns
        -------
        pandas.DataFrame
            The `top` features by mean |SHAP|, with columns target, feature, mean_abs_shap,
            mean_shap, direction ("raises" / "lowers": the average sign of the feature's effect).

        Raises
        ------
        ConfigError
            If `top` or `target` is invalid.
        NotFittedError
            If the detector (or, for ``"anomaly"``, its anomaly model) is not fitted.
        """
        import shap  # imported here: it is slow to import and only explain() needs it

        self._check_fitted()
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ConfigError(f"top must be a positive integer, got {top!r}")
        values, index = self._prepared(data)
        rows = self._rows_in_range(index, start, end)
        features = self._features(values, index)[rows - self.lags]
        booster, name = self._explained_model(values, index, rows, target)
        contributions = np.asarray(shap.TreeExplainer(booster).shap_values(features))
        mean_abs = np.abs(contributions).mean(axis=0)
        mean = contributions.mean(axis=0)
        assert self.feature_names_ is not None
        table = pd.DataFrame({
            "target": name, "feature": self.feature_names_, "mean_abs_shap": mean_abs,
            "mean_shap": mean, "direction": np.where(mean >= 0, "raises", "lowers")})
        table = table.sort_values("mean_abs_shap", ascending=False, kind="stable").head(top)
        return table.reset_index(drop=True)

    def _rows_in_range(self, index: pd.Index, start: Any, end: Any) -> np.ndarray:
        """Positions of the steps in [start, end] that have a forecast (position >= lags)."""
        try:
            window = index.slice_indexer(start, end)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"cannot select the range start={start!r} end={end!r} in the data's "
                            f"index ({exc}); give labels of the index, e.g. timestamps") from None
        positions = np.arange(len(index))[window]
        positions = positions[positions >= self.lags]
        if len(positions) == 0:
            raise DataError(f"no step with a forecast lies in start={start!r} end={end!r} (the "
                            f"first {self.lags} steps have none); widen the range")
        return positions

    def _explained_model(self, values: np.ndarray, index: pd.Index, rows: np.ndarray,
                         target: str | None) -> tuple[xgb.Booster, str]:
        assert self.target_columns_ is not None
        columns = [str(c) for c in self.columns_]
        if target == ANOMALY_TARGET:
            if self.anomaly_booster_ is None:
                raise NotFittedError("no anomaly model to explain: call fit_anomaly_model first")
            return self.anomaly_booster_, ANOMALY_TARGET
        if target is None:
            z = np.abs(self._standardised_residuals(values, index)[rows - self.lags])
            k = int(np.argmax(z.mean(axis=0)))
            return self.boosters_[k], columns[self.target_columns_[k]]
        names = [columns[c] for c in self.target_columns_]
        if target not in names:
            raise ConfigError(f"target {target!r} is not a forecast column; choose one of "
                              f"{names} or {ANOMALY_TARGET!r}")
        return self.boosters_[names.index(target)], target

    # --- persistence ---------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        for k, booster in enumerate(self.boosters_):
            arrays[f"booster.{k}"] = _booster_bytes(booster)
        if self.anomaly_booster_ is not None:
            arrays["anomaly_booster"] = _booster_bytes(self.anomaly_booster_)
        assert self.residual_centre_ is not None and self.residual_scale_ is not None
        arrays["residual_centre"] = self.residual_centre_
        arrays["residual_scale"] = self.residual_scale_
        if self.recent_squared_ is not None:
            arrays["recent_squared"] = self.recent_squared_
        values.update(feature_names_=self.feature_names_, target_columns_=self.target_columns_,
                      uses_calendar_=self.uses_calendar_)
        return values, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.feature_names_ = list(values["feature_names_"])
        self.target_columns_ = [int(c) for c in values["target_columns_"]]
        self.uses_calendar_ = bool(values["uses_calendar_"])
        self.boosters_ = [_booster_from(arrays[f"booster.{k}"], self.n_jobs)
                          for k in range(len(self.target_columns_))]
        self._forecast_trees = [boosted_trees(b) for b in self.boosters_]
        self.anomaly_booster_ = (_booster_from(arrays["anomaly_booster"], self.n_jobs)
                                 if "anomaly_booster" in arrays else None)
        self.residual_centre_ = np.asarray(arrays["residual_centre"], dtype=np.float64)
        self.residual_scale_ = np.asarray(arrays["residual_scale"], dtype=np.float64)
        self.recent_squared_ = arrays.get("recent_squared")
