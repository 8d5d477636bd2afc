"""xgb_forecast: forecast residuals find injected anomalies, SHAP names the driving lag."""
import numpy as np
import pandas as pd
import pytest

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.metrics.series import point_auroc
from oddity.series.detectors.xgb_forecast import calendar_matrix, lag_matrix


def lagged_pair(length: int = 1200, seed: int = 0) -> pd.DataFrame:
    """y[t] = 2 x[t-2] + small noise, x white noise, hourly DatetimeIndex."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=length)
    y = np.zeros(length)
    y[2:] = 2 * x[:-2] + 0.1 * rng.normal(size=length - 2)
    index = pd.date_range("2024-01-01", periods=length, freq="h")
    return pd.DataFrame({"x": x, "y": y}, index=index)


def test_detects_injected_anomalies_in_the_right_channel(injected, seasonal_series):
    _, test, labels = injected
    # a long history: pooled scores are smooth, so the threshold needs a calibration tail of
    # many windows (600 steps here) to hold its false-positive rate (fixed: the anomalies
    # are 3% of these steps, more than online calibration lets through at a 1% target)
    history = seasonal_series(3000, seed=1, channels=2)
    # (pooling over covering windows: causal pooling lags the anomalies by up to a window)
    result = oddity.create("xgb_forecast", calibration="fixed",
                           causal=False).fit(history).predict(test)
    assert point_auroc(labels, result.scores) > 0.95
    assert point_auroc(labels, result.channel_scores[:, 1]) > point_auroc(labels, result.channel_scores[:, 0])
    assert result.labels[labels].mean() > 0.5
    # pooling over 32-step windows (and the 10 lags) spreads a spike's residual to its
    # neighbours; farther away, normal steps are flagged at about the target rate
    near = np.convolve(labels, np.ones(2 * 32 + 2 * 10 + 1), mode="same") > 0
    assert result.labels[~near].mean() < 0.05


def test_explain_puts_the_true_driver_on_top():
    data = lagged_pair()
    detector = oddity.create("xgb_forecast", targets=("y",)).fit(data, verbose=False)
    assert detector.feature_names_[-2:] == ["hour", "day_of_week"]
    table = detector.explain(data, data.index[900], data.index[1000], top=5)
    assert list(table.columns) == ["target", "feature", "mean_abs_shap", "mean_shap", "direction"]
    assert len(table) == 5 and (table["target"] == "y").all()
    assert table["feature"][0] == "x[t-2]"
    assert table["mean_abs_shap"][0] > 10 * table["mean_abs_shap"][1]


def test_anomaly_model_learns_flagged_steps_and_round_trips(tmp_path):
    data = lagged_pair()
    labels = np.zeros(len(data), bool)
    labels[data["x"].shift(2).fillna(0).to_numpy() > 1.5] = True  # anomalies follow big x[t-2]
    detector = oddity.create("xgb_forecast", targets=("y",)).fit(data, verbose=False)
    detector.fit_anomaly_model(data, labels)
    probability = detector.anomaly_probability(data)
    assert np.isnan(probability[:detector.lags]).all()
    assert point_auroc(labels[detector.lags:], probability[detector.lags:]) > 0.95
    assert detector.explain(data, top=1, target="anomaly")["feature"][0] == "x[t-2]"
    detector.save(tmp_path / "model.oddity")
    loaded = oddity.load(tmp_path / "model.oddity")
    np.testing.assert_array_equal(loaded.score(data).scores, detector.score(data).scores)
    np.testing.assert_array_equal(loaded.anomaly_probability(data), probability)


def test_bad_inputs_name_the_problem():
    data = lagged_pair(300)
    with pytest.raises(ConfigError, match="targets \\['z'\\]"):
        oddity.create("xgb_forecast", targets=("z",)).fit(data, verbose=False)
    detector = oddity.create("xgb_forecast").fit(data, verbose=False)
    with pytest.raises(DataError, match="DatetimeIndex"):
        detector.score(data.reset_index(drop=True))
    with pytest.raises(DataError, match="shorter than"):
        detector.score(data.iloc[:20])
    with pytest.raises(DataError, match="no step with a forecast"):
        detector.explain(data, data.index[0], data.index[3])


@pytest.mark.parametrize("unit", ["ns", "us", "ms", "s"])
def test_calendar_features_are_pandas_fields(unit):
    rng = np.random.default_rng(0)
    seconds = rng.integers(-3 * 10**9, 4 * 10**9, 2000)  # before and after 1970
    index = pd.DatetimeIndex(pd.to_datetime(seconds, unit="s")).as_unit(unit)
    index = index.insert(7, pd.NaT)  # pandas gives NaN fields at a missing time
    for times in (index, index.tz_localize("UTC").tz_convert("Europe/Paris")):
        expected = np.column_stack([times.hour + times.minute / 60.0, times.day_of_week])
        assert np.isnan(expected[7]).all()
        assert np.array_equal(calendar_matrix(times), expected, equal_nan=True)
    assert calendar_matrix(pd.RangeIndex(5)) is None


@pytest.mark.parametrize(("steps", "channels", "lags"), [(11, 1, 10), (40, 3, 4), (5, 2, 5)])
def test_lag_matrix_rows_hold_each_channels_previous_values(steps, channels, lags):
    values = np.random.default_rng(0).normal(size=(steps, channels))
    expected = [[values[t - lag, c] for c in range(channels) for lag in range(1, lags + 1)]
                for t in range(lags, steps)]
    out = lag_matrix(values, lags)
    assert out.shape == (steps - lags, channels * lags) and out.flags.c_contiguous
    assert np.array_equal(out, np.array(expected).reshape(out.shape))
    times = pd.date_range("2024-01-06 23:30", periods=steps + 1, freq="7min")
    with_calendar = lag_matrix(values, lags, times[lags + 1:])
    assert np.array_equal(with_calendar[:, :-2], out)
    assert np.array_equal(with_calendar[:, -2:], calendar_matrix(times[lags + 1:]))
    with pytest.raises(ValueError, match="times holds"):
        lag_matrix(values, lags, times[lags:])  # one time too many
