"""Post-processing of step scores: Numenta's anomaly likelihood worked by hand, onsets and
refractory flags."""
import numpy as np
import pytest
from scipy.stats import norm

from oddity.core.errors import ConfigError, DataError
from oddity.series.postprocess import anomaly_likelihood, onset_scores, refractory_flags


def by_hand(tail: float) -> float:
    digits = -np.log10(tail)
    return digits / (1 + digits)


def test_likelihood_is_the_gaussian_tail_of_the_short_mean_against_the_past():
    history = np.array([1.0, 3.0, 1.0, 4.0])
    scores = np.array([2.0, 6.0, 0.0])
    result = anomaly_likelihood(scores, history, short_window=2, long_window=3)
    # Short means of history + scores: 1, 2, 2, 2.5, 3, 4, 3; each step's fitted distribution
    # is that of the 3 short means before it.
    means = np.array([1, 2, 2, 2.5, 3, 4, 3], dtype=float)
    expected = []
    for t in (4, 5, 6):
        past = means[t - 3:t]
        z = (means[t] - past.mean()) / past.std(ddof=1)
        expected.append(by_hand(norm.sf(z)))
    assert result == pytest.approx(expected)
    assert result[1] > 0.5 > result[2]  # the jump is unlikely under the past, a return is not


def test_likelihood_is_one_sided_causal_and_scale_free():
    rng = np.random.default_rng(0)
    history, scores = rng.normal(size=200), rng.normal(size=300)
    scores[150] = 8.0
    base = anomaly_likelihood(scores, history, short_window=1)
    assert base.argmax() == 150 and 0 <= base.min() and base.max() < 1
    low = scores.copy()
    low[150] = -8.0  # far below usual: not an anomaly
    assert anomaly_likelihood(low, history, short_window=1)[150] < 0.1
    changed = scores.copy()
    changed[200:] += 100  # the future does not change the past
    assert anomaly_likelihood(changed, history, short_window=1)[:200] == pytest.approx(base[:200])
    scaled = anomaly_likelihood(3 * scores + 7, 3 * history + 7, short_window=1)
    assert scaled == pytest.approx(base)


def test_likelihood_of_a_constant_history_flags_any_rise():
    result = anomaly_likelihood(np.array([0.0, 0.0, 1e-6]), np.zeros(5), short_window=1)
    assert result[:2] == pytest.approx([by_hand(0.5)] * 2) and result[2] > 0.99


def test_likelihood_rejects_bad_input():
    with pytest.raises(DataError, match="history"):
        anomaly_likelihood(np.ones(3), np.ones(1))
    with pytest.raises(DataError):
        anomaly_likelihood(np.array([1.0, np.nan]), np.ones(3))
    with pytest.raises(ConfigError, match="short_window"):
        anomaly_likelihood(np.ones(3), np.ones(3), short_window=0)
    with pytest.raises(ConfigError, match="long_window"):
        anomaly_likelihood(np.ones(3), np.ones(3), long_window=1.5)


def test_onsets_and_refractory_flags():
    levels = np.array([0.5, 0.9, 0.8, 0.95, 0.1, 0.2, 0.3])
    assert onset_scores(levels, period=2).tolist() == [0.5, 0.9, 0.0, 0.95, 0.0, 0.0, 0.3]
    assert onset_scores(levels, period=0).tolist() == levels.tolist()
    flags = np.array([1, 1, 0, 1, 0, 0, 1, 1], bool)
    assert refractory_flags(flags, 2).tolist() == [1, 0, 0, 1, 0, 0, 1, 0]
    assert refractory_flags(flags, 0).tolist() == flags.tolist()
    with pytest.raises(ConfigError, match="period"):
        refractory_flags(flags, -1)
