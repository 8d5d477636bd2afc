"""Few-shot fitting: seeded shots, augmented views, leave-one-out thresholds, real detection."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.image.data import evaluation_samples, training_samples
from oddity.image.fewshot import augmented_views, choose_shots, fit_few_shot

FEW = {"image_size": 64, "coreset_ratio": 1.0}


@pytest.fixture(scope="module")
def three_shot(inspection_set):
    return fit_few_shot(oddity.create("patchcore", seed=3, **FEW), inspection_set, 3, verbose=False)


def test_three_shots_detect_defects_with_left_out_thresholds(three_shot, inspection_set):
    samples = evaluation_samples(inspection_set)
    result = three_shot.predict(samples, verbose=False)
    labels = np.array([s.label for s in samples])
    assert roc_auc_score(labels, result.scores) >= 0.9
    threshold = three_shot.threshold_
    assert threshold.method == "leave-one-shot-out" and threshold.n_calibration == 3
    assert three_shot.pixel_threshold_.method == "leave-one-shot-out"
    # The left-out scores come from models that never saw the scored shot: far above the
    # near-zero distance of a shot to a bank that holds its own patches.
    in_sample = three_shot.score(choose_shots(training_samples(inspection_set), 3, 3), verbose=False)
    assert threshold.value > 2 * in_sample.scores.max()
    assert result.labels[labels == 1].mean() > result.labels[labels == 0].mean()


def test_same_seed_same_model_other_seed_other_shots(three_shot, inspection_set):
    again = fit_few_shot(oddity.create("patchcore", seed=3, **FEW), inspection_set, 3, verbose=False)
    assert again.threshold_ == three_shot.threshold_
    assert np.array_equal(again.memory_bank_, three_shot.memory_bank_)
    samples = training_samples(inspection_set)
    assert choose_shots(samples, 3, 3) != choose_shots(samples, 3, 4)


def test_one_shot_with_views_calibrates_leaving_views_out(inspection_set):
    detector = fit_few_shot(oddity.create("patchcore", seed=0, **FEW), inspection_set, 1,
                            augment="flips+rotations", verbose=False)
    assert detector.threshold_.method == "leave-one-view-out" and detector.threshold_.n_calibration == 8
    assert len(detector.memory_bank_) == 8 * 8 * 8  # eight views of an 8x8 patch grid


def test_one_shot_without_views_warns_and_calibrates_in_sample(inspection_set):
    with pytest.warns(UserWarning, match="set_threshold"):
        detector = fit_few_shot(oddity.create("patchcore", **FEW), inspection_set, 1, verbose=False)
    assert detector.threshold_.method == "in-sample"


def test_views_are_the_symmetries_of_the_square():
    pixels = np.random.default_rng(0).random((6, 6, 3)).astype(np.float32)
    views = augmented_views(pixels, "flips+rotations")
    assert np.array_equal(views[0], pixels)
    assert len({v.tobytes() for v in views}) == 8
    assert len(augmented_views(pixels, "flips")) == 3 and len(augmented_views(pixels, "none")) == 1
    with pytest.raises(ConfigError, match="augment must be one of"):
        augmented_views(pixels, "shear")


def test_refusals(inspection_set):
    samples = training_samples(inspection_set)
    with pytest.raises(DataError, match="only 12 images"):
        choose_shots(samples, 13, 0)
    with pytest.raises(ConfigError, match="positive"):
        choose_shots(samples, 0, 0)
    with pytest.raises(ConfigError, match="padim needs at least 2 shots"):
        fit_few_shot(oddity.create("padim", image_size=64), inspection_set, 1,
                     augment="flips+rotations", verbose=False)
