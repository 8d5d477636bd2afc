"""VUS / range-AUC and range-based precision/recall: hand-worked cases and values recorded
from aeon 1.6.0 (`experiments/series_metrics_reference.py`, run in aeon's own environment)."""
import numpy as np
import pytest

from oddity.core.errors import MetricError
from oddity.metrics import range_auc, range_precision_recall, vus
from oddity.metrics.vus import extended_labels

# One dict per case of `cases()`: VUS with max_buffer 60, range-AUC with buffer 10, and range
# precision (p_BIAS_CARDINALITY, alpha 0) / recall (r_BIAS_CARDINALITY_0.5, alpha 0.5) of the
# top-10% predictions.
AEON = [{'vus_roc': 0.7630006249907902,
  'vus_pr': 0.22205533841799646,
  'auc_roc_10': 0.7448071548851445,
  'auc_pr_10': 0.15225815034634865,
  'p_flat_one': 0.02,
  'r_flat_one_0.5': 0.28571428571428575,
  'p_flat_reciprocal': 0.02,
  'r_flat_reciprocal_0.5': 0.28571428571428575,
  'p_front_one': 0.02,
  'r_front_one_0.5': 0.28571428571428575,
  'p_front_reciprocal': 0.02,
  'r_front_reciprocal_0.5': 0.28571428571428575,
  'p_back_one': 0.02,
  'r_back_one_0.5': 0.28571428571428575,
  'p_back_reciprocal': 0.02,
  'r_back_reciprocal_0.5': 0.28571428571428575,
  'p_middle_one': 0.02,
  'r_middle_one_0.5': 0.3125,
  'p_middle_reciprocal': 0.02,
  'r_middle_reciprocal_0.5': 0.3125},
 {'vus_roc': 0.7539475192092923,
  'vus_pr': 0.16034940471312437,
  'auc_roc_10': 0.7565480844948823,
  'auc_pr_10': 0.11871231852109909,
  'p_flat_one': 0.037037037037037035,
  'r_flat_one_0.5': 0.3333333333333333,
  'p_flat_reciprocal': 0.037037037037037035,
  'r_flat_reciprocal_0.5': 0.2916666666666667,
  'p_front_one': 0.037037037037037035,
  'r_front_one_0.5': 0.35714285714285715,
  'p_front_reciprocal': 0.037037037037037035,
  'r_front_reciprocal_0.5': 0.30357142857142855,
  'p_back_one': 0.037037037037037035,
  'r_back_one_0.5': 0.30952380952380953,
  'p_back_reciprocal': 0.037037037037037035,
  'r_back_reciprocal_0.5': 0.27976190476190477,
  'p_middle_one': 0.037037037037037035,
  'r_middle_one_0.5': 0.3333333333333333,
  'p_middle_reciprocal': 0.037037037037037035,
  'r_middle_reciprocal_0.5': 0.2916666666666667},
 {'vus_roc': 0.8124150160503557,
  'vus_pr': 0.4458464927560207,
  'auc_roc_10': 0.8044382915119661,
  'auc_pr_10': 0.4230308020227117,
  'p_flat_one': 0.15306122448979592,
  'r_flat_one_0.5': 0.6845238095238096,
  'p_flat_reciprocal': 0.15306122448979592,
  'r_flat_reciprocal_0.5': 0.5880952380952381,
  'p_front_one': 0.14965986394557823,
  'r_front_one_0.5': 0.7377610693400166,
  'p_front_reciprocal': 0.14965986394557823,
  'r_front_reciprocal_0.5': 0.6232664995822891,
  'p_back_one': 0.1564625850340136,
  'r_back_one_0.5': 0.6312865497076023,
  'p_back_reciprocal': 0.1564625850340136,
  'r_back_reciprocal_0.5': 0.5529239766081872,
  'p_middle_one': 0.15306122448979592,
  'r_middle_one_0.5': 0.691468253968254,
  'p_middle_reciprocal': 0.15306122448979592,
  'r_middle_reciprocal_0.5': 0.5846230158730159}]


def cases():
    out = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        labels = np.zeros(600, int)
        for start in rng.choice(np.arange(30, 560, 90), rng.integers(1, 4), replace=False):
            labels[start:start + rng.integers(1, 40)] = 1
        scores = np.round(rng.random(600) + 0.6 * labels * rng.random(600), 3)
        out.append((labels, scores))
    return out


@pytest.mark.parametrize("case", range(3))
def test_vus_and_range_auc_match_aeon(case):
    labels, scores = cases()[case]
    expected = AEON[case]
    volume = vus(labels, scores, max_buffer=60)
    assert (volume.roc, volume.pr) == pytest.approx((expected["vus_roc"], expected["vus_pr"]),
                                                    abs=1e-12)
    area = range_auc(labels, scores, buffer=10)
    assert (area.roc, area.pr) == pytest.approx((expected["auc_roc_10"], expected["auc_pr_10"]),
                                                abs=1e-12)


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("bias", ["flat", "front", "back", "middle"])
@pytest.mark.parametrize("cardinality", ["one", "reciprocal"])
def test_range_precision_recall_match_aeon(case, bias, cardinality):
    labels, scores = cases()[case]
    predictions = scores >= np.quantile(scores, 0.9)
    precision = range_precision_recall(labels, predictions, bias=bias,
                                       cardinality=cardinality).precision
    recall = range_precision_recall(labels, predictions, alpha=0.5, bias=bias,
                                    cardinality=cardinality).recall
    assert precision == pytest.approx(AEON[case][f"p_{bias}_{cardinality}"], abs=1e-12)
    assert recall == pytest.approx(AEON[case][f"r_{bias}_{cardinality}_0.5"], abs=1e-12)


def test_range_precision_recall_hand_worked():
    # Real ranges [1, 4] and [7, 8]; predicted [2, 2] and [4, 5].
    labels = np.array([0, 1, 1, 1, 1, 0, 0, 1, 1, 0])
    predictions = np.array([0, 0, 1, 0, 1, 1, 0, 0, 0, 0])
    flat = range_precision_recall(labels, predictions)
    # Recall: [1, 4] half covered, [7, 8] missed; precision: [2, 2] all, [4, 5] half.
    assert (flat.precision, flat.recall) == (0.75, 0.25)
    assert flat.f1 == pytest.approx(0.375)
    # [1, 4] overlaps two predicted ranges: its reward is halved.
    assert range_precision_recall(labels, predictions, cardinality="reciprocal").recall == 0.125
    # Existence counts half: [1, 4] earns 0.5 + 0.5 * 0.5.
    assert range_precision_recall(labels, predictions, alpha=0.5).recall == 0.375
    # Front bias on [1, 4] weights steps 4, 3, 2, 1: covered steps 2 and 4 earn (3 + 1) / 10.
    assert range_precision_recall(labels, predictions, bias="front").recall == pytest.approx(0.2)


def test_vus_hand_worked_perfect_and_extended_labels():
    labels = np.zeros(50, int)
    labels[20:25] = 1
    # Slopes of buffer // 2 = 3 steps: sqrt(1 - d / 6) before the start, and after the end
    # (the last anomalous step itself stays 1).
    ext = extended_labels(labels, 6)
    assert ext[17:20] == pytest.approx(np.sqrt(1 - np.array([3, 2, 1]) / 6))
    assert ext[24] == 1 and ext[25:27] == pytest.approx(np.sqrt(1 - np.array([1, 2]) / 6))
    assert ext[27] == 0 and ext[16] == 0
    area = range_auc(labels, labels + 0.0, buffer=0)
    assert area.roc == pytest.approx(1.0) and area.pr == pytest.approx(1.0)
    assert vus(labels, -labels + 0.0, max_buffer=4).roc < 0.5


def test_bad_input_raises():
    labels = np.array([0, 1, 1, 0])
    with pytest.raises(MetricError, match="constant"):
        vus(labels, np.ones(4))
    with pytest.raises(MetricError, match="max_buffer"):
        vus(labels, np.arange(4.0), max_buffer=-1)
    with pytest.raises(MetricError, match="bias"):
        range_precision_recall(labels, labels, bias="late")
    with pytest.raises(MetricError, match="no anomalous"):
        range_precision_recall(np.zeros(4), labels)
