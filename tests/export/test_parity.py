"""The parity gate's criterion: each score's difference relative to that score, floored at the
scale the parity images' scores vary at."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from oddity.core.results import ImageScores
from oddity.core.thresholds import Threshold
from oddity.export.onnx import SCORE_TOLERANCE, parity, score_scale


def _scores(values) -> ImageScores:
    values = np.asarray(values, dtype=np.float64)
    return ImageScores(scores=values, maps=None, paths=[f"{i}.png" for i in range(len(values))])


def _detector(cut: float) -> SimpleNamespace:
    return SimpleNamespace(threshold_=Threshold(cut, 0.01, 0.01, 10, "cross-conformal"), pixel_threshold_=None)


def test_a_threshold_far_above_the_scores_does_not_loosen_the_gate():
    reference = np.array([1.0, 1.2, 0.9, 1.1])
    drifted = reference.copy()
    drifted[0] += 5 * SCORE_TOLERANCE  # 5e-4 relative to the score itself
    gate = parity(_scores(reference), _scores(drifted), _detector(cut=100.0))
    assert gate.max_score_difference > SCORE_TOLERANCE  # refused (relative to the threshold: 5e-6)
    assert gate.labels_identical


def test_a_score_near_zero_is_judged_at_the_scale_of_the_scores():
    reference = np.array([1e-3, 1.0, 2.0, 3.0])
    exported = reference + np.array([1e-5, 0.0, 0.0, 0.0])  # 1% of the tiny score, 4e-6 of the scale
    assert np.allclose(score_scale(reference), [2.7, 2.7, 2.7, 3.0])
    gate = parity(_scores(reference), _scores(exported), _detector(cut=2.5))
    assert gate.max_score_difference <= SCORE_TOLERANCE


def test_a_label_flip_off_the_threshold_fails_and_a_tie_does_not():
    reference = np.array([1.0, 2.0, 3.0, 4.0])
    flipped = reference.copy()
    flipped[1] = 3.5  # crosses the cut at 3.0 by far
    assert not parity(_scores(reference), _scores(flipped), _detector(cut=3.0)).labels_identical
    tied = reference.copy()
    tied[2] = 3.0 + 1e-6  # the calibration image on the threshold, moved by rounding
    assert parity(_scores(reference), _scores(tied), _detector(cut=3.0)).labels_identical
