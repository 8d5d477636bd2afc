"""Both baselines find injected anomalies in a generated series, and the exported isolation
forest scores exactly as scikit-learn's."""
import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

import oddity
from oddity.metrics.series import point_auroc
from oddity.series.detectors.rolling_zscore import (
    MAD_TO_STD,
    trailing_zscores,
    zscore_signatures,
)
from oddity.series.detectors.window_iforest import export_forest, forest_scores
from oddity.series.jit import compiled


# The rolling z-score adapts to the 20-step level shift after its first steps (its known
# weakness), which caps its point AUROC; the windowed forest scores the whole shift. With the
# fixed threshold every anomaly is flagged; the online one, held to 1% of flags, spends its
# budget on the first three (the forest flags a few steps after each) and then rises.
@pytest.mark.parametrize(("name", "window", "auroc"),
                         [("rolling_zscore", 64, 0.8), ("window_iforest", 8, 0.95)])
def test_baseline_detects_injected_anomalies(name, window, auroc, injected):
    history, test, labels = injected
    detector = oddity.create(name, window=window, seed=0, calibration="fixed").fit(history)
    result = detector.predict(test)
    assert point_auroc(labels, result.scores) > auroc
    assert all(result.labels[s:s + 3].any() for s in (200, 450, 600, 850))
    assert result.labels[~labels].mean() < 0.05
    online = oddity.create(name, window=window, seed=0).fit(history).predict(test)
    assert all(online.labels[s:s + 15].any() for s in (200, 450, 600))
    assert online.labels[~labels].mean() <= result.labels[~labels].mean()


def test_window_iforest_is_deterministic_and_round_trips(tmp_path, injected):
    history, test, _ = injected
    first = oddity.create("window_iforest", window=8, n_estimators=20, seed=3).fit(history)
    second = oddity.create("window_iforest", window=8, n_estimators=20, seed=3).fit(history)
    np.testing.assert_array_equal(first.score(test).scores, second.score(test).scores)
    first.save(tmp_path / "f.oddity")
    loaded = oddity.load(tmp_path / "f.oddity")
    np.testing.assert_array_equal(loaded.score(test).scores, first.score(test).scores)


def test_exported_forest_matches_scikit_learn():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(500, 6)), 1.5 * rng.normal(size=(300, 6))
    forest = IsolationForest(n_estimators=30, max_samples=128, max_features=0.5,
                             random_state=0).fit(train)
    ours = forest_scores(export_forest(forest), test, forest.max_samples_)
    np.testing.assert_allclose(ours, -forest.score_samples(test), rtol=1e-12)


@pytest.mark.parametrize("window", [2, 7, 8])
def test_trailing_zscores_use_numpy_medians(window):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3))
    z[50:120, 1] = 0.25  # a flat stretch (MAD 0, the floor applies)
    z[::3, 2] = np.round(z[::3, 2], 1)  # ties
    past = np.lib.stride_tricks.sliding_window_view(z, window, axis=0)[:-1]  # (N, C, window)
    median = np.median(past, axis=2)
    mad = np.median(np.abs(past - median[:, :, None]), axis=2)
    expected = np.abs(z[window:] - median) / np.maximum(MAD_TO_STD * mad, 0.1)
    compiled_out, python_out = np.empty_like(expected), np.empty_like(expected)
    compiled(trailing_zscores, zscore_signatures)(z, window, 0.1, compiled_out)
    trailing_zscores(z, window, 0.1, python_out)
    assert np.array_equal(compiled_out, expected) and np.array_equal(python_out, expected)
