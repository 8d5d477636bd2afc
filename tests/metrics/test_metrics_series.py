"""Series metrics: hand-worked examples, scikit-learn, and values recorded from the PyPI `pate`
package (0.1.1, run in its own environment by benchmarks/metrics_check.py)."""
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from oddity.core.errors import MetricError
from oddity.metrics import event_f1, pate, point_adjusted_f1, point_aupr, point_auroc

LABELS = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0])
PREDICTED = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0])


def series_case(seed):
    rng = np.random.default_rng(seed)
    labels = np.zeros(400, int)
    for start in rng.choice(np.arange(20, 380, 60), 3, replace=False):
        labels[start:start + rng.integers(1, 30)] = 1
    scores = np.round(rng.random(400) + labels * rng.random(400), 2)
    return labels, scores


def test_point_auroc_and_aupr_match_sklearn():
    labels, scores = series_case(0)
    assert point_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert point_aupr(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-9)


def test_point_adjusted_f1_hand_worked():
    # Event [1, 3] is hit at step 2 (3 TPs after adjustment), event [6, 7] is missed (2 FNs),
    # step 5 is a false positive: P = 3/4, R = 3/5, F1 = 2/3.
    result = point_adjusted_f1(LABELS, PREDICTED)
    assert (result.precision, result.recall) == (0.75, 0.6)
    assert result.f1 == pytest.approx(2 / 3)
    assert result.threshold is None
    assert point_adjusted_f1(LABELS, PREDICTED * 0.7, threshold=0.5).f1 == pytest.approx(2 / 3)


def test_point_adjusted_f1_best_threshold_matches_brute_force():
    labels, scores = series_case(1)
    best = max(point_adjusted_f1(labels, scores, threshold=t).f1 for t in np.unique(scores))
    result = point_adjusted_f1(labels, scores)
    assert result.f1 == pytest.approx(best, abs=1e-12)
    assert point_adjusted_f1(labels, scores, threshold=result.threshold).f1 == pytest.approx(best)


def test_event_f1_hand_worked():
    # One of two true events is hit (R = 1/2); one of the two predicted runs overlaps (P = 1/2).
    result = event_f1(LABELS, PREDICTED)
    assert (result.precision, result.recall, result.f1) == (0.5, 0.5, 0.5)
    assert event_f1(LABELS, np.zeros(10)).f1 == 0.0
    with pytest.raises(MetricError, match="threshold"):
        event_f1(LABELS, np.linspace(0, 1, 10))


def test_pate_f1_hand_worked_buffers():
    # Event [8, 9]; predictions at 7 (early), 9 (event) and 10 (late); buffers of 2 steps.
    # A buffer step's weight is 1 - distance sum / its maximum: step 7 (pre-buffer [6, 7]) and
    # step 10 (post-buffer [10, 11]) both weigh 1 - 3/5 = 0.4; step 8 is a missed step before
    # the end of the first run (delta = 1) and counts as a full false negative.
    # Buffer pairs (0,0): P 1/3, R 1/2; (0,2) and (2,0): P 7/15, R 7/12; (2,2): P 3/5, R 9/14.
    labels, predicted = np.zeros(20, int), np.zeros(20, int)
    labels[8:10] = 1
    predicted[[7, 9, 10]] = 1
    expected = (Fraction(2, 5) + 2 * Fraction(14, 27) + Fraction(18, 29)) / 4
    assert pate(labels, predicted, 2, 2, binary_scores=True) == pytest.approx(float(expected))


def test_pate_f1_hand_worked_partial_miss():
    # Event [10, 19] (L = 10) detected only at [12, 13] (first run length delta = 2): missed
    # steps 10, 11 weigh 1, step 10 + r (r > 2) weighs 1 - 3 (2r - 2) / 2 / 45, which sums to
    # FN = 2 + 3.8 = 5.8; P = 1, R = 2 / 7.8, PATE-F1 = 20/49.
    labels, predicted = np.zeros(25, int), np.zeros(25, int)
    labels[10:20] = 1
    predicted[12:14] = 1
    assert pate(labels, predicted, 0, 0, binary_scores=True) == pytest.approx(20 / 49)


def test_pate_hand_worked_curve():
    # Every distinct score a threshold. Without buffers the curve is (0,1) (.5,1) (.5,.5)
    # (1,2/3) ... : area 1/2 + 1/2 (1/2 + 2/3) / 2 = 19/24. With a 2-step delay buffer the
    # step at 4 weighs 0.4: (0,1) (.5,1) (7/12,.7) (1,.8): area 53/60; an early buffer alone
    # changes nothing (step 1 only scores below the whole event). Mean over pairs: 201/240.
    labels = np.array([0, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.2, 0.9, 0.3, 0.4, 0.0])
    assert pate(labels, scores, 0, 0, num_thresholds=None) == pytest.approx(19 / 24)
    assert pate(labels, scores, 2, 2, num_thresholds=None) == pytest.approx(201 / 240)


@pytest.mark.parametrize("seed, reference", [
    (0, (0.6561720160178687, 0.5875162702868879, 0.22230235359763525)),
    (1, (0.8020559210822913, 0.749382666875791, 0.5807018394651478)),
    (2, (0.7050079648295625, 0.6483377332544478, 0.48878334984026034)),
])
def test_pate_matches_recorded_reference(seed, reference):
    labels, scores = series_case(seed)
    ours = (pate(labels, scores), pate(labels, scores, 20, 40),
            pate(labels, (scores > 0.9).astype(int), 20, 40, binary_scores=True))
    np.testing.assert_allclose(ours, reference, atol=1e-12)


@pytest.mark.parametrize("labels, scores, message", [
    (np.zeros(5), np.arange(5.0), "no anomalous time step"),
    (np.array([0, 1, 1]), np.array([0.1, 0.2]), "differ in length"),
    (np.array([0, 1, 1]), np.array([0.1, np.inf, 0.2]), "NaN or infinite"),
    (np.array([0, 1, 2]), np.array([0.1, 0.3, 0.2]), "binary"),
])
def test_series_metrics_reject_degenerate_input(labels, scores, message):
    for metric in (pate, point_adjusted_f1):
        with pytest.raises(MetricError, match=message):
            metric(labels, scores)


def test_pate_rejects_bad_arguments():
    with pytest.raises(MetricError, match="binary"):
        pate(LABELS, np.linspace(0, 1, 10), binary_scores=True)
    with pytest.raises(MetricError, match=">= 0"):
        pate(LABELS, PREDICTED, early=-1)
    with pytest.raises(MetricError, match=">= 1 or None"):
        pate(LABELS, PREDICTED, num_thresholds=0)
