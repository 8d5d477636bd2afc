"""NAB score: the cases of NAB's own scorer tests (nab/tests/unit/scorer_test.py, with their
cost matrix and hard-coded sigmoid values), hand-worked sweeps and the normalisation."""
import math

import numpy as np
import pytest

from oddity.core.errors import MetricError
from oddity.metrics.nab import (
    PROFILES,
    NabProfile,
    nab_raw_score,
    nab_score,
    nab_scores,
    probationary_length,
    scaled_sigmoid,
    sweep_weights,
)

COST = NabProfile(tp=1.1, fp=0.11, fn=1.2)  # NAB's scorer unit-test cost matrix
S_HALF, S_FIRST = 0.8482836399575131, 0.9866142981514305  # scaledSigmoid(-0.5), (-1.0)


def raw(predictions, labels, probation=0):
    return nab_raw_score([(labels, predictions)], threshold=0.5, profile=COST, probation=probation)


@pytest.mark.parametrize("predictions,labels,probation,expected", [
    ([0] * 5, [0] * 5, 0, 0.0),
    ([0, 1, 0, 1, 0], [0] * 5, 0, -2 * 0.11),
    ([0] * 7, [0, 1, 1, 0, 1, 1, 0], 0, -2 * 1.2),
    ([0, 1, 0, 1, 0], [0] * 5, 4, 0.0),
    ([0, 1, 0, 1, 0], [0] * 5, 3, -0.11),
    ([0, 0, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0], 0, S_HALF * 1.1 / S_FIRST),
    ([0, 0, 1, 0, 0, 0, 0], [0, 1, 1, 0, 1, 1, 0], 0, S_HALF * 1.1 / S_FIRST - 1.2),
    ([0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1, 0], 0, 1.1),
    ([0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1, 0], 0, 1.1),
    ([0, 0, 1, 0, 1, 0, 0], [0, 1, 1, 0, 1, 1, 0], 0, S_HALF * 1.1 / S_FIRST + 1.1),
])
def test_reproduces_nab_scorer_unit_cases(predictions, labels, probation, expected):
    assert raw(np.array(predictions), np.array(labels), probation) == pytest.approx(expected)


def test_scaled_sigmoid_and_probation_follow_nab():
    assert scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 3.0, 3.01])) == pytest.approx(
        [S_FIRST, S_HALF, 0.0, 2 / (1 + math.exp(15)) - 1, -1.0])
    assert [probationary_length(n) for n in (100, 5000, 6000, 22695)] == [15, 750, 750, 750]


def test_false_positive_after_a_window_decays_with_distance():
    labels = np.zeros(100, bool)
    labels[30:40] = True  # width 10, right edge at 39
    weight, window = sweep_weights(labels, 15, PROFILES["standard"])
    assert (window[:15] == -2).all() and (window[30:40] == 0).all() and window[50] == -1
    assert weight[20] == pytest.approx(-0.11)  # no window before it
    assert weight[45] == pytest.approx(0.11 * (2 / (1 + math.exp(5 * 6 / 9)) - 1))
    assert weight[39 + 28] == pytest.approx(-0.11)  # position 28/9 > 3
    assert weight[30] == pytest.approx(1.0) and weight[39] < weight[35] < weight[30]


def test_threshold_sweep_keeps_best_detection_per_window_and_counts_every_false_positive():
    labels = np.zeros(40, int)
    labels[20:30] = 1
    scores = np.zeros(40)
    scores[[25, 22]] = [0.9, 0.6]  # late then early detection of the window
    scores[10] = 0.7  # false positive before any window (after the probation of 6 steps)
    standard = PROFILES["standard"]
    late = float(scaled_sigmoid(np.array(-5 / 10)) / S_FIRST)
    early = float(scaled_sigmoid(np.array(-8 / 10)) / S_FIRST)
    assert nab_raw_score([(labels, scores)], 1.0) == pytest.approx(-1.0)
    assert nab_raw_score([(labels, scores)], 0.9) == pytest.approx(late)
    assert nab_raw_score([(labels, scores)], 0.7) == pytest.approx(late - 0.11)
    assert nab_raw_score([(labels, scores)], 0.6) == pytest.approx(early - 0.11)
    result = nab_score([(labels, scores)], "standard")
    assert result.threshold == 0.6 and result.raw == pytest.approx(early - 0.11)
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)
    # Null: a constant score; detecting everything costs more than missing the window.
    assert result.null == pytest.approx(-standard.fn) and result.perfect == 1.0
    assert result.score == pytest.approx(100 * (early - 0.11 + 1) / 2)


def test_normalisation_gives_100_to_perfect_and_0_to_null_over_a_corpus():
    rng = np.random.default_rng(0)
    corpus = []
    for length, starts in ((300, [100, 200]), (400, [150])):
        labels = np.zeros(length, int)
        for start in starts:
            labels[start:start + 20] = 1
        perfect = np.zeros(length)
        perfect[starts] = 1.0
        corpus.append((labels, perfect, rng.random(length)))
    for name in PROFILES:
        assert nab_score([(y, p) for y, p, _ in corpus], name).score == pytest.approx(100.0)
        assert nab_score([(y, np.full(y.size, 0.5)) for y, _, _ in corpus], name).score == 0.0
        assert nab_score([(y, r) for y, _, r in corpus], name).score < 50
    results = nab_scores([(y, r) for y, _, r in corpus])
    assert set(results) == set(PROFILES) and results["standard"].perfect == 3.0
    # Missing a window costs twice as much under reward_low_FN_rate.
    assert results["reward_low_FN_rate"].null == pytest.approx(-6.0)


def test_bad_input_raises():
    with pytest.raises(MetricError, match="profile"):
        nab_score([([0, 1], [0.1, 0.2])], "strict")
    with pytest.raises(MetricError, match="series 0"):
        nab_score([([0, 1, 1], [0.1, 0.2])])
    with pytest.raises(MetricError, match="no series has an anomaly window"):
        nab_score([([0, 0, 0], [0.1, 0.2, 0.3])])
