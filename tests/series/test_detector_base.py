"""The SeriesDetector contract, exercised through the simplest detector (rolling_zscore)."""
import numpy as np
import pandas as pd
import pytest

import oddity
from oddity.core.errors import DataError, NotFittedError
from oddity.metrics.series import point_auroc
from oddity.series.results import SeriesPrediction


def test_calibrated_threshold_holds_target_fpr_on_new_normal_data(seasonal_series):
    history = seasonal_series(3000, seed=3)
    detector = oddity.create("rolling_zscore", target_fpr=0.02).fit(history)
    assert detector.threshold_.method == "conformal"
    assert detector.threshold_.n_calibration == 600  # last 20% of the history
    fresh = seasonal_series(5000, seed=4)
    rate = detector.predict(fresh).labels.mean()
    assert rate < 0.05  # target 0.02; generous for step-to-step correlation


def test_short_history_calibrates_in_sample_and_too_short_fails():
    detector = oddity.create("rolling_zscore", window=8).fit(np.arange(20.0))
    assert detector.threshold_.method == "in-sample" and detector.threshold_.fpr_interval is None
    with pytest.raises(DataError, match="shorter than the 9 steps"):
        oddity.create("rolling_zscore", window=8).fit(np.arange(5.0))


def test_predict_gives_spans_in_index_values_and_channel_scores(injected):
    history, test, labels = injected
    index = pd.date_range("2024-01-01", periods=len(test), freq="5min")
    frame = pd.DataFrame(test, index=index, columns=["cpu", "mem"])
    detector = oddity.create("rolling_zscore").fit(pd.DataFrame(history, columns=["cpu", "mem"]))
    result = detector.predict(frame)
    assert isinstance(result, SeriesPrediction)
    assert result.columns == ["cpu", "mem"] and result.channel_scores.shape == (1000, 2)
    assert any(start <= index[200] <= end for start, end in result.spans)
    assert isinstance(result.spans[0][0], pd.Timestamp)
    # the anomalies are in channel "mem": its channel score explains them
    assert point_auroc(labels, result.channel_scores[:, 1]) > point_auroc(labels, result.channel_scores[:, 0])
    table = result.to_frame()
    assert list(table.columns) == ["score", "score_cpu", "score_mem", "threshold", "level",
                                   "anomalous"]


def test_columns_are_checked_and_reordered(injected):
    history, test, _ = injected
    detector = oddity.create("rolling_zscore").fit(pd.DataFrame(history, columns=["a", "b"]))
    swapped = detector.score(pd.DataFrame(test[:, ::-1], columns=["b", "a"]))
    straight = detector.score(pd.DataFrame(test, columns=["a", "b"]))
    np.testing.assert_allclose(swapped.scores, straight.scores)
    with pytest.raises(DataError, match="missing \\['b'\\]"):
        detector.score(pd.DataFrame({"a": test[:, 0]}))


def test_nan_filled_with_warning_and_inf_rejected(seasonal_series):
    series = seasonal_series(500)[:, 0]
    series[100:105] = np.nan
    with pytest.warns(UserWarning, match="5 NaN in column 'value'"):
        detector = oddity.create("rolling_zscore").fit(series)
    bad = series.copy()
    bad[7] = np.inf
    with pytest.raises(DataError, match="infinite"):
        detector.score(bad)
    with pytest.raises(DataError, match="not numeric"):
        detector.score(pd.DataFrame({"value": ["a"] * 100}))


def test_score_before_fit():
    with pytest.raises(NotFittedError):
        oddity.create("rolling_zscore").score(np.zeros(100))


def test_save_load_round_trip(tmp_path, injected):
    history, test, _ = injected
    detector = oddity.create("rolling_zscore", window=32).fit(history)
    detector.save(tmp_path / "model.oddity")
    loaded = oddity.load(tmp_path / "model.oddity")
    assert loaded.get_params() == detector.get_params() and loaded.columns_ == detector.columns_
    assert loaded.threshold_ == detector.threshold_
    np.testing.assert_array_equal(loaded.score(test).scores, detector.score(test).scores)


@pytest.mark.parametrize(("name", "params"), [
    ("rolling_zscore", {"window": 16}), ("window_iforest", {"window": 8, "n_estimators": 20}),
    ("xgb_forecast", {"window": 8}),
    ("window_autoencoder", {"window": 8, "epochs": 2})])
def test_causal_scores_see_only_the_past(name, params, injected):
    """A step's score is the same whether or not later steps are given (after the warm-up)."""
    history, test, _ = injected
    detector = oddity.create(name, **params).fit(history, verbose=False)
    full = detector.score(test).scores
    start = 2 * detector.min_length
    for end in (start + 1, 400, 601):
        np.testing.assert_allclose(detector.score(test[:end]).scores[start:], full[start:end],
                                   rtol=1e-6, atol=1e-9)  # float32 networks batch differently
