"""Calibration: one hold-out rule, conformal thresholds whose false-positive rate law is right,
cross-fitting folds, and the check of a realised rate against the calibrated one."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from oddity.core.errors import ConfigError
from oddity.core.thresholds import (INTERVAL, Threshold, calibrate_threshold, check_realised_fpr,
                                    fold_indices, held_out_count, manual_threshold)


def test_too_few_scores_take_the_largest_and_say_how_unsure():
    threshold = calibrate_threshold(np.arange(21.0), target_fpr=0.01)
    assert threshold.value == 20.0 and threshold.achievable_fpr == pytest.approx(1 / 22)
    low, high = threshold.fpr_interval
    assert (low, high) == pytest.approx(stats.beta(1, 21).ppf([0.05, 0.95]))
    assert low < 0.01 < high and "held-out images" in threshold.describe()


def test_expected_rate_and_interval_hold_over_many_calibration_sets():
    # uniform normal scores: the true rate of a threshold t is 1 - t
    rng = np.random.default_rng(0)
    rates, inside = [], []
    for _ in range(2000):
        threshold = calibrate_threshold(rng.random(50), target_fpr=0.1)
        rate = 1.0 - threshold.value
        rates.append(rate)
        inside.append(threshold.fpr_interval[0] <= rate <= threshold.fpr_interval[1])
    assert threshold.achievable_fpr == pytest.approx(5 / 51) and threshold.achievable_fpr <= 0.1
    assert np.mean(rates) == pytest.approx(5 / 51, abs=0.005)
    assert np.mean(inside) == pytest.approx(INTERVAL, abs=0.02)


def test_in_sample_claims_no_interval_and_thresholds_survive_json():
    assert calibrate_threshold(np.arange(30.0), 0.1, "in-sample").fpr_interval is None
    threshold = calibrate_threshold(np.arange(30.0), 0.1, "cross-conformal")
    assert Threshold(**json.loads(json.dumps(threshold.to_dict()))) == threshold
    assert "out-of-fold" in threshold.describe()


@pytest.mark.parametrize("n, fraction, min_fit, small_sets, expected", [
    (209, 0.1, 1, "quarter", 21), (12, 0.1, 1, "quarter", 3), (2, 0.1, 1, "quarter", 1),
    (40, 0.0, 1, "quarter", 0), (20, 0.2, 9, "quarter", 5), (10, 0.2, 9, "quarter", 0),
    (3000, 0.2, 9, "in-sample", 600), (60, 0.2, 16, "in-sample", 12), (45, 0.2, 16, "in-sample", 0),
])
def test_one_hold_out_rule(n, fraction, min_fit, small_sets, expected):
    assert held_out_count(n, fraction, min_fit, small_sets=small_sets) == expected


def test_hold_out_rule_refuses_bad_fractions():
    with pytest.raises(ConfigError, match="calibration_fraction"):
        held_out_count(10, 1.0)


def test_folds_cover_every_item_once_nearly_equal_and_seeded():
    folds = fold_indices(23, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert {len(f) for f in folds} == {4, 5}
    assert all((a == b).all() for a, b in zip(folds, fold_indices(23, 5, seed=3)))
    with pytest.raises(ConfigError):
        fold_indices(3, 5, seed=0)


def test_realised_rate_is_checked_against_the_calibration():
    rng = np.random.default_rng(1)
    threshold = calibrate_threshold(rng.normal(size=200), target_fpr=0.05)
    fine = check_realised_fpr(threshold, rng.normal(size=500))
    assert fine.warning is None and abs(fine.rate - 0.05) < 0.04
    drifted = check_realised_fpr(threshold, rng.normal(size=500) + 1.0)
    assert drifted.rate > 0.2 and "more than" in drifted.warning and drifted.p_too_many < 1e-6
    conservative = check_realised_fpr(threshold, rng.normal(size=500) - 2.0)
    assert "conservative" in conservative.warning
    assert check_realised_fpr(manual_threshold(0.0), rng.normal(size=10)).warning is None
