"""Image-level metrics against scikit-learn and a brute-force best F1."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from oddity.core.errors import MetricError
from oddity.metrics import f1_max, image_aupr, image_auroc


@pytest.fixture
def labelled_scores():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.random(300) + labels * 0.4, 2)  # rounding makes ties
    return labels, scores


def test_auroc_and_aupr_match_sklearn(labelled_scores):
    labels, scores = labelled_scores
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert image_aupr(labels.astype(int), scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-9)


def test_f1_max_matches_brute_force(labelled_scores):
    labels, scores = labelled_scores
    best = max((2 * (labels & (scores >= t)).sum() / ((scores >= t).sum() + labels.sum()), t)
               for t in np.unique(scores))
    result = f1_max(labels, scores)
    assert result.f1 == pytest.approx(best[0], abs=1e-12)
    predicted = scores >= result.threshold
    assert result.precision == pytest.approx((labels & predicted).sum() / predicted.sum())
    assert result.recall == pytest.approx((labels & predicted).sum() / labels.sum())


def test_perfect_separation():
    assert image_auroc([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0
    assert f1_max([0, 0, 1], [0.1, 0.2, 0.9]).threshold == pytest.approx(0.9)


@pytest.mark.parametrize("labels, scores, message", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "one class"),
    ([0, 1, 1], [0.1, 0.2], "differ in length"),
    ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
    ([0, 1, 2], [0.1, 0.2, 0.3], "binary"),
    ([[0, 1]], [[0.1, 0.2]], "1-D"),
])
def test_degenerate_input_raises(labels, scores, message):
    for metric in (image_auroc, image_aupr, f1_max):
        with pytest.raises(MetricError, match=message):
            metric(labels, scores)
