"""Video frame metrics on small hand-checked cases."""
from __future__ import annotations

import numpy as np
import pytest

from oddity.core.errors import MetricError
from oddity.metrics.video import (equal_error_rate, macro_auroc, micro_auroc, normalise_per_clip,
                                  range_f1, video_metrics)


def test_micro_differs_from_macro_when_clip_offsets_differ() -> None:
    labels = [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])]
    scores = [np.array([0.0, 0.1, 0.2, 0.3]), np.array([1.0, 1.1, 1.2, 1.3])]
    assert macro_auroc(labels, scores) == (1.0, 2)  # each clip ranks perfectly
    assert micro_auroc(labels, scores) == pytest.approx(0.75)  # clip 2's normals beat clip 1's anomalies
    assert micro_auroc(labels, normalise_per_clip(scores)) == 1.0


def test_macro_leaves_out_single_class_clips() -> None:
    labels = [np.array([0, 1]), np.array([1, 1]), np.array([0, 0])]
    scores = [np.array([0.0, 1.0]), np.array([0.1, 0.2]), np.array([0.0, 0.3])]
    assert macro_auroc(labels, scores) == (1.0, 1)
    with pytest.raises(MetricError, match="both"):
        macro_auroc(labels[1:], scores[1:])


def test_equal_error_rate() -> None:
    assert equal_error_rate([np.array([0, 0, 1, 1])], [np.array([0.1, 0.2, 0.8, 0.9])]) == 0.0
    # one normal above one anomalous of two each: FPR and FNR meet at 0.5
    assert equal_error_rate([np.array([0, 0, 1, 1])], [np.array([0.1, 0.7, 0.5, 0.9])]) == pytest.approx(0.5)


def test_range_f1_pools_clips_and_never_joins_ranges_across_them() -> None:
    labels = [np.array([0, 1, 1, 0, 0, 1]), np.array([1, 1, 0, 0])]
    scores = [np.array([0, 0, 0.9, 0, 0.8, 0]), np.array([0.9, 0, 0, 0])]
    result = range_f1(labels, scores, threshold=0.5)
    # true ranges: 3, hit: 2 -> recall 2/3; flagged ranges: 3, correct 2 -> precision 2/3
    assert result.recall == pytest.approx(2 / 3) and result.precision == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 / 3)


def test_video_metrics_bundle_and_validation() -> None:
    labels = [np.array([0, 0, 1, 1])]
    metrics = video_metrics(labels, [np.array([0.1, 0.2, 0.8, 0.9])], threshold=0.5)
    assert metrics.to_dict()["micro_auroc"] == 1.0 and metrics.range_f1.f1 == 1.0
    with pytest.raises(MetricError, match="differ in length"):
        micro_auroc(labels, [np.array([0.1, 0.2])])
    with pytest.raises(MetricError, match="one labels array per scores"):
        micro_auroc(labels, [])
