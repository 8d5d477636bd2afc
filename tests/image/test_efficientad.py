"""EfficientAD learns normality on generated data (image and pixel level), trains
deterministically from a seed, survives save/load, and its parts keep the paper's geometry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import oddity
from oddity.core.errors import ConfigError
from oddity.image.data import evaluation_samples
from oddity.image.detectors.efficientad import (
    MAP_PAD,
    Autoencoder,
    EfficientAD,
    anomalous_copies,
    distillation_pool,
    generic_pool,
    hard_feature_loss,
    pdn_grid,
    pdn_small,
    scores_in_bfloat16,
)
from oddity.image.geometry import patch_map_to_image

# Tiny settings for 9 training images of 64 px (8 x 8 PDN cells): narrow networks, few steps.
# Untrained (1 distillation and 1 training step) the defects are found at image level already
# (AUROC 1.00) but the maps are poor (pixel AUROC 0.77); these settings give 1.00 / 0.95.
TINY = {"image_size": 64, "seed": 0, "width": 8, "ae_width": 8, "steps": 100,
        "distill_steps": 50, "distill_batch": 4, "generic_images": 3}


@pytest.fixture(scope="module")
def fitted(inspection_set):
    return oddity.create("efficientad", **TINY).fit(inspection_set, verbose=False)


def test_detects_synthetic_defects(fitted, inspection_set, aurocs):
    samples = evaluation_samples(inspection_set)
    result = fitted.predict(samples, verbose=False)
    image_auroc, pixel_auroc = aurocs(samples, result)
    assert image_auroc >= 0.9 and pixel_auroc >= 0.9
    assert result.masks[0].shape == result.maps[0].shape == (64, 64)
    assert fitted.distill_losses_[-1] < fitted.distill_losses_[0]  # the teacher learned


def test_map_is_padded_and_the_score_is_its_maximum(fitted):
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        scores, maps = fitted.kernel()(x)
    score, patch_map = float(scores[0]), maps[0].numpy()
    assert patch_map.shape == (8 + 8, 8 + 8)
    assert score == pytest.approx(float(patch_map[4:-4, 4:-4].max()))
    # the padded border counts as zero discrepancy: never above a computed cell
    border = np.ones(patch_map.shape, bool)
    border[4:-4, 4:-4] = False
    assert np.ptp(patch_map[border]) == 0 and patch_map[border][0] <= patch_map[~border].min()


def test_bfloat16_scoring_gives_nearly_the_float32_maps(fitted):
    x = torch.rand(1, 3, 64, 64)
    maps = {}
    with torch.inference_mode():
        for precision in ("float32", "bfloat16"):
            fitted.precision = precision
            maps[precision] = fitted.kernel()(x)[1][0].numpy()
    fitted.precision = "auto"
    full, half = maps["float32"], maps["bfloat16"]
    assert not np.array_equal(full, half)  # bfloat16 did run
    assert np.abs(full - half).mean() < 0.05 * np.abs(full).mean()


@pytest.mark.parametrize("amx, avx512_bf16, expected", [
    (False, False, False), (True, False, True), (False, True, True),
])
def test_auto_precision_uses_bfloat16_only_where_the_cpu_computes_it(monkeypatch, amx, avx512_bf16, expected):
    # torch's CPU-feature probes are private and have no public equivalent
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert scores_in_bfloat16("auto") is expected
    assert scores_in_bfloat16("float32") is False
    assert scores_in_bfloat16("bfloat16") is True


def test_save_load_gives_identical_scores(fitted, inspection_set, reloaded):
    loaded = reloaded(fitted, evaluation_samples(inspection_set))
    assert loaded.map_quantiles_ == fitted.map_quantiles_ and loaded.losses_ == fitted.losses_


def test_training_is_deterministic_under_a_seed(fitted, inspection_set):
    samples = evaluation_samples(inspection_set)[:4]
    again = oddity.create("efficientad", **TINY).fit(inspection_set, verbose=False)
    np.testing.assert_array_equal(again.score(samples, verbose=False).scores,
                                  fitted.score(samples, verbose=False).scores)
    assert again.losses_ == fitted.losses_
    other = oddity.create("efficientad", **{**TINY, "seed": 1}).fit(inspection_set, verbose=False)
    assert other.losses_ != fitted.losses_


def test_distillation_pool_with_natural_images_and_anomalous_copies(inspection_set, aurocs):
    detector = EfficientAD(**{**TINY, "natural_images": True, "distill_anomalies": True})
    generic = generic_pool(TINY["generic_images"], (64, 80), seed=0, natural=True)
    assert len(generic) >= TINY["generic_images"] + 15  # scikit-image's photographs joined the textures
    assert all(x.shape[:2] == (1, 3) and x.shape[2] >= 64 and x.shape[3] >= 80 for x in generic)
    train = [torch.rand(1, 3, 64, 80) for _ in range(4)]
    pool = distillation_pool(train, generic, seed=0, anomalies=True)
    assert len(pool) == 2 * len(train) + len(generic) and all(a is b for a, b in zip(pool, train))
    samples = evaluation_samples(inspection_set)
    image_auroc, pixel_auroc = aurocs(samples, detector.fit(inspection_set, verbose=False).predict(samples, verbose=False))
    assert image_auroc >= 0.9 and pixel_auroc >= 0.9


def test_anomalous_copies_change_part_of_each_image_deterministically():
    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.uniform(0.4, 0.6, (1, 3, 64, 64)).astype(np.float32)) for _ in range(6)]
    copies = anomalous_copies(images, seed=3)
    assert len(copies) == len(images)
    for image, copy in zip(images, copies):
        assert copy.shape == image.shape
        changed = (copy - image).abs().amax(dim=1) > 1e-6
        assert 0 < changed.float().mean() < 0.9  # a local anomaly, not a new image
    again = anomalous_copies(images, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(copies, again))


@pytest.mark.parametrize("hw", [(64, 64), (256, 256), (96, 160)])
def test_networks_share_the_pdn_grid(hw):
    x = torch.rand(1, 3, *hw)
    with torch.no_grad():
        teacher = pdn_small(4, 6)(x)
        reconstruction = Autoencoder(hw, 4, 6)(x)
    grid = (pdn_grid(hw[0]), pdn_grid(hw[1]))
    assert teacher.shape[-2:] == reconstruction.shape[-2:] == grid
    assert pdn_grid(256) == 56  # the paper's 56 x 56 output at 256 px


def test_map_cells_land_where_they_look():
    """Alignment: after padding and resizing, a cell's value lies within 2 px of the centre of
    the pixels the cell sees (its receptive field, found by back-propagation)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    cell = (3, 5)
    pdn_small(4, 3)(x)[0, :, cell[0], cell[1]].sum().backward()
    rows, cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1)), as_tuple=True)
    seen = np.array([(rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2], dtype=float)
    impulse = np.zeros((8 + 2 * MAP_PAD, 8 + 2 * MAP_PAD), dtype=np.float32)
    impulse[cell[0] + MAP_PAD, cell[1] + MAP_PAD] = 1.0
    image_map = patch_map_to_image(impulse, (64, 64), (64, 64), sigma=0.0)
    landed = np.array([np.average(np.arange(64), weights=image_map.sum(axis=a)) for a in (1, 0)])
    assert np.abs(landed - seen).max() <= 2.0


def test_pdn_on_a_window_at_a_multiple_of_4_equals_that_part_of_the_full_output():
    torch.manual_seed(0)
    net = pdn_small(4, 3)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        full, window = net(x), net(x[..., 8:72, 16:80])
    torch.testing.assert_close(window, full[..., 2:2 + window.shape[-2], 4:4 + window.shape[-1]])


def test_hard_feature_loss_keeps_only_the_largest_differences():
    teacher = torch.zeros(1, 1, 10, 100)
    student = torch.zeros(1, 1, 10, 100)
    student[0, 0, 0, :3] = torch.tensor([3.0, 2.0, 1.0])
    # 1000 squared differences (9, 4, 1, then zeros): the 2 largest are 9 and 4
    assert float(hard_feature_loss(teacher, student, 2)) == pytest.approx((9 + 4) / 2)
    # a count above the number of differences takes their plain mean
    assert float(hard_feature_loss(teacher, student, 5000)) == pytest.approx((9 + 4 + 1) / 1000)


@pytest.mark.parametrize("params", [
    {"width": 0}, {"ae_width": -1}, {"steps": 0}, {"distill_steps": 2.5}, {"distill_batch": 0},
    {"lr": 0}, {"generic_images": 0}, {"map_fraction": 0.0}, {"map_fraction": 1.0}, {"layers": ()},
    {"hard_count": 0}, {"hard_count": 1.5}, {"natural_images": "yes"}, {"distill_anomalies": 1},
])
def test_bad_parameters_are_config_errors(params):
    detector = EfficientAD(**params)  # the constructor only stores them
    with pytest.raises(ConfigError):
        detector.validate_params()


def test_detector_is_registered():
    assert "efficientad" in oddity.list_detectors()
