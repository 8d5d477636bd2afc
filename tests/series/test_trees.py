"""Tree ensembles walked by oddity.series.trees give the libraries' own predictions exactly,
each row's result independent of the rows scored with it."""
import numpy as np
import pytest
import xgboost as xgb
from sklearn.ensemble import IsolationForest

from oddity.core.errors import ConfigError
from oddity.series.detectors.window_iforest import (
    export_forest,
    flat_forest,
    isolation_scores,
)
from oddity.series.trees import (
    boosted_trees,
    splits_at_or_below,
    splits_below,
    sum_leaves,
)


def test_boosted_trees_give_xgboost_predictions_bit_for_bit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    y = 2 * x[:, 0] + np.sin(3 * x[:, 1]) + 0.1 * rng.normal(size=2000) + 5
    booster = xgb.XGBRegressor(n_estimators=40, max_depth=4, n_jobs=1).fit(x, y).get_booster()
    trees, base = boosted_trees(booster)
    test = 1.5 * rng.normal(size=(500, 6))
    test[:50] = x[:50]  # values equal to the training values, some of them exactly at splits
    walked = trees.sums(test, base)
    assert walked.dtype == np.float32
    assert np.array_equal(walked, booster.inplace_predict(test))
    assert np.array_equal(trees.sums(test[7:8], base), walked[7:8])


def test_boosted_trees_refuse_a_classifier():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    model = xgb.XGBClassifier(n_estimators=5, n_jobs=1).fit(x, x[:, 0] > 0)
    with pytest.raises(ConfigError, match="binary:logistic"):
        boosted_trees(model.get_booster())


def test_isolation_forest_rows_score_alone_as_in_a_batch():
    rng = np.random.default_rng(1)
    forest = IsolationForest(n_estimators=25, max_samples=64, random_state=0).fit(
        rng.normal(size=(300, 4)))
    trees = flat_forest(export_forest(forest), forest.max_samples_)
    test = rng.normal(size=(40, 4))
    batch = isolation_scores(trees, test)
    assert np.array_equal([isolation_scores(trees, row[None])[0] for row in test], batch)
    np.testing.assert_allclose(batch, -forest.score_samples(test), rtol=1e-12)
    # The plain-Python walk is the compiled one's reference.
    out = np.empty(len(test))
    sum_leaves(test, trees.roots, trees.children, trees.feature, trees.split, trees.value,
               trees.depth, 0.0, out)
    assert np.array_equal(np.exp2(out), batch)


def test_float32_split_rules_match_the_libraries():
    t = np.array([0.1, -2.5, 1e-3, 3.0])  # float64 splits, compared with float32 values
    at_or_below = splits_at_or_below(t)
    s = t.astype(np.float32)  # float32 splits, compared strictly
    below = splits_below(s)
    for shift in range(-3, 4):
        values = s.copy()
        for _ in range(abs(shift)):
            values = np.nextafter(values, np.float32(np.inf if shift > 0 else -np.inf))
        assert np.array_equal(values <= at_or_below, values.astype(np.float64) <= t)
        assert np.array_equal(values <= below, values < s)


def test_boosted_trees_refuse_dart_boosters():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    model = xgb.XGBRegressor(booster="dart", n_estimators=5, n_jobs=1).fit(x, x[:, 0])
    with pytest.raises(ConfigError, match="'dart'"):
        boosted_trees(model.get_booster())
