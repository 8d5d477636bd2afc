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


def nab_loop_raw(corpus, threshold, profile, probation):
    """NAB 1.1's sweeper written as its loop (calcSweepScore, then the score at one
    threshold of calcScoreByThreshold): a step's weight from its position in or after a
    window, the best weight among a window's detections, every detection outside counted."""
    total = 0.0
    max_tp = 2 / (1 + math.exp(-5)) - 1
    for labels, scores in corpus:
        window_id, weights = [], []
        current, count, prev_right, prev_width = None, -1, None, None
        for i in range(len(labels)):
            if labels[i] and current is None:
                count += 1
                right = i
                while right + 1 < len(labels) and labels[right + 1]:
                    right += 1
                current = (i, right)
            if current is not None:
                width = current[1] - current[0] + 1
                position = -(current[1] - i + 1) / width
                weights.append((2 / (1 + math.exp(5 * position)) - 1) * profile.tp / max_tp)
                window_id.append(count)
                if i == current[1]:
                    prev_right, prev_width, current = current[1], width, None
            else:
                if prev_right is None or prev_width == 1:
                    unweighted = -1.0
                else:
                    position = abs(prev_right - i) / (prev_width - 1)
                    unweighted = -1.0 if position > 3 else 2 / (1 + math.exp(5 * position)) - 1
                weights.append(unweighted * profile.fp)
                window_id.append(None)
        best = {}
        for i in range(probation, len(labels)):
            if window_id[i] is not None:
                best.setdefault(window_id[i], -profile.fn)
                if scores[i] >= threshold:
                    best[window_id[i]] = max(best[window_id[i]], weights[i])
            elif scores[i] >= threshold:
                total += weights[i]
        total += sum(best.values())
    return total


@pytest.mark.parametrize("seed", range(4))
def test_optimiser_matches_nab_loop_at_every_threshold_on_random_corpora(seed):
    rng = np.random.default_rng(seed)
    corpus = []
    for length in rng.integers(60, 120, size=3):
        labels = np.zeros(length, int)
        for start in rng.choice(np.arange(15, length - 12, 13), size=2, replace=False):
            labels[start:start + int(rng.integers(1, 8))] = 1
        corpus.append((labels, np.round(rng.random(length), 2)))  # ties, as real scores have
    for name, profile in PROFILES.items():
        thresholds = np.unique(np.concatenate([s for _, s in corpus]))
        raws = {t: nab_loop_raw(corpus, t, profile, 10) for t in thresholds}
        for t, expected in raws.items():
            assert nab_raw_score(corpus, t, name, probation=10) == pytest.approx(expected)
        result = nab_score(corpus, name, probation=10)
        assert result.raw == pytest.approx(max(max(raws.values()),
                                               nab_loop_raw(corpus, np.inf, profile, 10)))
        fixed = nab_score(corpus, name, probation=10, threshold=0.5)
        assert fixed.threshold == 0.5 and fixed.raw == pytest.approx(
            nab_loop_raw(corpus, 0.5, profile, 10))
        assert fixed.null == result.null and fixed.score <= result.score


def test_one_threshold_serves_the_whole_corpus():
    # Each series alone would pick its own threshold; NAB picks one for both.
    labels = np.zeros(50, int)
    labels[30:35] = 1
    high, low = np.zeros(50), np.zeros(50)
    high[30], high[10] = 0.9, 0.8  # window hit at 0.9, false positive at 0.8
    low[30], low[12] = 0.5, 0.6  # window hit only at 0.5, false positive at 0.6 before it
    corpus = [(labels, high), (labels, low)]
    result = nab_score(corpus, "standard", probation=0)
    assert result.threshold == 0.5 and (result.tp, result.fp, result.fn) == (2, 2, 0)
    assert result.raw == pytest.approx(2.0 - 2 * 0.11)
    at_high = nab_score(corpus, "standard", probation=0, threshold=0.9)
    assert at_high.raw == pytest.approx(1.0 - 1.0) and (at_high.tp, at_high.fn) == (1, 1)
