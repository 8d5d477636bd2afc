"""Online calibration: the false-positive rate holds under drift where a one-shot threshold
does not; rate 0 is the rolling conformal quantile; decisions see only the past."""
import math

import numpy as np
import pytest

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.core.online_calibration import OnlineConformal, fixed_levels
from oddity.core.thresholds import calibrate_threshold


def drifting_scores(seed=0, steps=20000):
    """Normal scores whose level and spread drift upwards over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return rng.normal(size=steps) * (1 + t / steps) + 3 * t / steps


def test_online_threshold_holds_the_target_under_drift_where_a_fixed_one_does_not():
    calibration = np.random.default_rng(1).normal(size=500)
    scores = drifting_scores()
    fixed = (scores > calibrate_threshold(calibration, 0.01).value).mean()
    online = OnlineConformal(calibration, 0.01, window=1000, rate=0.0005).update(scores)
    assert fixed > 0.2
    assert 0.005 <= online.flags.mean() <= 0.02
    plain = OnlineConformal(calibration, 0.01, window=1000, rate=0.0).update(scores)
    assert 0.005 <= plain.flags.mean() <= 0.03


def test_rate_zero_is_the_rolling_conformal_quantile_of_recent_scores():
    rng = np.random.default_rng(2)
    calibration, scores = rng.normal(size=30), rng.normal(size=200)
    scores[[50, 51, 120]] = 10.0
    decisions = OnlineConformal(calibration, 0.1, window=40, rate=0.0).update(scores)
    pool = list(calibration[-40:])
    for score, threshold, flagged, level in zip(scores, decisions.thresholds, decisions.flags,
                                                decisions.levels):
        ordered = np.sort(pool)
        k = min(math.ceil((len(pool) + 1) * 0.9), len(pool))
        assert threshold == ordered[k - 1] and flagged == (score > threshold)
        assert level == pytest.approx(1 - (1 + (ordered >= score).sum()) / (len(pool) + 1))
        pool = (pool + [score])[-40:]
    assert decisions.flags[[50, 51, 120]].all()


def test_decisions_see_only_the_past_and_a_level_shift_becomes_the_new_normal():
    rng = np.random.default_rng(3)
    calibration = rng.normal(size=300)
    scores = rng.normal(size=3000)
    scores[100:103] = 6.0  # a short anomaly
    scores[1000:] += 5.0  # a level shift: flagged at its onset, then the new normal
    whole = OnlineConformal(calibration, 0.01).update(scores)
    split = OnlineConformal(calibration, 0.01)
    first, second = split.update(scores[:400]), split.update(scores[400:])
    assert np.array_equal(whole.flags, np.concatenate((first.flags, second.flags)))
    assert np.array_equal(whole.thresholds, np.concatenate((first.thresholds, second.thresholds)))
    assert whole.flags[100] and whole.flags[1000]
    assert whole.flags[2000:].mean() < 0.02
    pool, level = split.state()
    again = OnlineConformal.from_state(pool, level, 0.01, 1000, 0.0005).update(scores[:50])
    assert np.array_equal(again.thresholds, split.update(scores[:50]).thresholds)


def test_fixed_levels_are_conformal_p_values():
    levels = fixed_levels(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 5.0]))
    assert levels == pytest.approx([1 - 4 / 4, 1 - 3 / 4, 1 - 1 / 4])


def test_bad_settings_raise():
    with pytest.raises(ConfigError, match="target_fpr"):
        OnlineConformal(np.ones(3), 0.0)
    with pytest.raises(ConfigError, match="calibration_window"):
        OnlineConformal(np.ones(3), 0.1, window=0)
    with pytest.raises(DataError, match="finite"):
        OnlineConformal(np.array([]), 0.1)
    with pytest.raises(ConfigError, match="calibration must be one of"):
        oddity.create("rolling_zscore", calibration="sometimes")


def test_series_detector_predicts_online_by_default_and_fixed_on_request(tmp_path):
    rng = np.random.default_rng(4)
    history = rng.normal(size=600)
    drifted = rng.normal(size=4000) + np.linspace(0, 2, 4000)  # slow upward drift
    online = oddity.create("rolling_zscore", window=32).fit(history)
    fixed = oddity.create("rolling_zscore", window=32, calibration="fixed").fit(history)
    a, b = online.predict(drifted), fixed.predict(drifted)
    assert np.array_equal(a.scores, b.scores) and (b.thresholds == b.threshold).all()
    assert not np.allclose(a.thresholds, a.threshold)
    assert (a.labels == (a.scores > a.thresholds)).all()
    online.save(tmp_path / "m.oddity")
    loaded = oddity.load(tmp_path / "m.oddity")
    assert np.array_equal(loaded.predict(drifted).labels, a.labels)
    loaded.set_threshold(a.threshold)  # a threshold set by hand is used as it is
    assert (loaded.predict(drifted).thresholds == a.threshold).all()
