"""SimpleNet learns normality on generated data (image and pixel level), trains
deterministically from a seed, survives save/load, and checks its parameters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.image.data import evaluation_samples
from oddity.image.detectors.simplenet import SimpleNet, feature_scale, truncated_l1_loss

# Tiny settings for 9 training images of 64 px (64 patches each): more noise and smaller
# batches than the defaults, so that 30 epochs take about a second. One epoch leaves image and
# pixel AUROC near chance (0.42 / 0.30); 30 epochs give 1.00 / 0.83.
TINY = {"image_size": 64, "seed": 0, "epochs": 30, "hidden": 64, "batch_images": 2, "noise_std": 1.0}


@pytest.fixture(scope="module")
def fitted(inspection_set):
    return oddity.create("simplenet", **TINY).fit(inspection_set, verbose=False)


def test_detects_synthetic_defects(fitted, inspection_set, aurocs):
    samples = evaluation_samples(inspection_set)
    result = fitted.predict(samples, verbose=False)
    image_auroc, pixel_auroc = aurocs(samples, result)
    assert image_auroc >= 0.9 and pixel_auroc >= 0.75
    assert result.masks[0].shape == result.maps[0].shape == (64, 64)
    assert fitted.losses_[-1] < 0.5 * fitted.losses_[0]  # the discriminator learned to separate


def test_image_score_is_the_largest_patch_score(fitted):
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        scores, maps = fitted.kernel()(x)
    score, patch_map = float(scores[0]), maps[0].numpy()
    assert patch_map.shape == (8, 12) and score == pytest.approx(float(patch_map.max()))


def test_save_load_gives_identical_scores(fitted, inspection_set, reloaded):
    loaded = reloaded(fitted, evaluation_samples(inspection_set))
    assert loaded.feature_scale_ == fitted.feature_scale_ and loaded.losses_ == fitted.losses_


def test_training_is_deterministic_under_a_seed(fitted, inspection_set):
    samples = evaluation_samples(inspection_set)[:4]
    again = oddity.create("simplenet", **TINY).fit(inspection_set, verbose=False)
    np.testing.assert_array_equal(again.score(samples, verbose=False).scores,
                                  fitted.score(samples, verbose=False).scores)
    other = oddity.create("simplenet", **{**TINY, "seed": 1}).fit(inspection_set, verbose=False)
    assert other.losses_ != fitted.losses_


def test_features_are_scaled_before_the_noise(fitted):
    features = torch.randn(48, 4) * 7.0
    assert feature_scale(features) == pytest.approx(float(features.std(dim=0).mean()))
    with pytest.raises(DataError, match="do not vary"):
        feature_scale(torch.ones(8, 4))
    assert fitted.feature_scale_ > 0


def test_truncated_l1_loss():
    normal = torch.tensor([[1.0], [0.2], [-1.0]])  # margins missed by 0, 0.3 and 1.5
    anomalous = torch.tensor([[-1.0], [0.0]])  # margins missed by 0 and 0.5
    loss = truncated_l1_loss(normal, anomalous, 0.5)
    assert float(loss) == pytest.approx((0 + 0.3 + 1.5) / 3 + (0 + 0.5) / 2)


@pytest.mark.parametrize("params", [
    {"noise_std": 0.0}, {"epochs": 0}, {"hidden": -1}, {"batch_images": 0}, {"adaptor_lr": -1e-3},
    {"discriminator_lr": 0}, {"margin": 0}, {"layers": ()}, {"epochs": 2.5}, {"local_pool": 0},
])
def test_bad_parameters_are_config_errors(params):
    detector = SimpleNet(**params)  # the constructor only stores them
    with pytest.raises(ConfigError):
        detector.validate_params()


def test_detector_is_registered():
    assert {"simplenet", "gaussian_ad"} <= set(oddity.list_detectors())
