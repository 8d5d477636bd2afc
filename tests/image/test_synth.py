"""Synthetic inspection data: determinism, exact masks, layout on disk, speed."""
from __future__ import annotations


import importlib.util

import numpy as np
import pytest

from oddity.core.errors import ConfigError
from oddity.image import data
from oddity.image.data import read_image, read_mask, training_samples
from oddity.image.synth import (DEFECTS, TEXTURES, colour_jitter, cut_paste, draw_defect, foreign_texture,
                                fractal_noise, inspection_images, make_inspection_set, natural_images,
                                perlin_mask,
                                perlin_noise, procedural_texture, render_texture, texture_anomaly,
                                texture_style)


def test_noise_is_deterministic_bounded_and_any_shape():
    a = perlin_noise((37, 50), (3, 4), np.random.default_rng(5))
    b = perlin_noise((37, 50), (3, 4), np.random.default_rng(5))
    assert a.shape == (37, 50) and np.array_equal(a, b)
    assert np.abs(a).max() <= 1.0 + 1e-6 and a.std() > 0.05
    fractal = fractal_noise((64, 64), 2, np.random.default_rng(0))
    assert np.abs(fractal).max() <= 1.0 + 1e-6
    # More lattice cells give finer noise: neighbouring pixels decorrelate.
    coarse, fine = perlin_noise((128, 128), 2, np.random.default_rng(1)), perlin_noise((128, 128), 32, np.random.default_rng(1))
    assert np.abs(np.diff(fine, axis=1)).mean() > 4 * np.abs(np.diff(coarse, axis=1)).mean()


def test_same_seed_same_images_other_seed_other_images():
    def generate(seed):
        return list(inspection_images(n_train=3, n_test_good=1, n_test_defect=1, size=48, seed=seed))

    first, again, other = generate(7), generate(7), generate(8)
    assert [(i.split, i.folder, i.stem) for i in first] == [(i.split, i.folder, i.stem) for i in again]
    for a, b in zip(first, again):
        assert np.array_equal(a.pixels, b.pixels)
        assert (a.mask is None) == (b.mask is None) and (a.mask is None or np.array_equal(a.mask, b.mask))
    assert not np.array_equal(first[0].pixels, other[0].pixels)
    # Normal images of one product differ from each other.
    assert not np.array_equal(first[0].pixels, first[1].pixels)


@pytest.mark.parametrize("texture", TEXTURES)
@pytest.mark.parametrize("kind", DEFECTS)
def test_mask_is_exactly_the_painted_pixels(texture, kind):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        clean = render_texture(texture_style(texture, rng), (96, 80), rng)
        assert clean.dtype == np.float32 and clean.min() >= 0 and clean.max() <= 1
        defective, mask = draw_defect(clean, kind, rng)
        changed = np.abs(defective - clean).max(axis=2) > 0
        assert mask.any() and mask.mean() < 0.2
        assert not (changed & ~mask).any(), "a pixel outside the mask was changed"
        visible = np.abs(defective - clean).max(axis=2) > 0.1
        assert visible[mask].mean() > 0.5, "most masked pixels should visibly change"


def test_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="texture"):
        texture_style("velvet", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="defect"):
        draw_defect(np.zeros((32, 32, 3), np.float32), "dent", np.random.default_rng(0))


def test_written_set_has_mvtec_layout_and_matching_masks(tmp_path):
    root = make_inspection_set(tmp_path / "cloth", n_train=5, n_test_good=2, n_test_defect=2, size=48, seed=3)
    assert len(training_samples(root)) == 5
    samples = data.evaluation_samples(root)
    assert sorted({s.defect for s in samples}) == sorted({"good", *DEFECTS})
    assert len(samples) == 2 + 2 * len(DEFECTS)
    in_memory = {(i.folder, i.stem): i for i in inspection_images(
        n_train=5, n_test_good=2, n_test_defect=2, size=48, seed=3) if i.split == "test"}
    for sample in samples:
        expected = in_memory[sample.defect, sample.path.stem]
        assert np.abs(read_image(sample.path) - expected.pixels).max() <= 0.5 / 255 + 1e-6
        if sample.defect == "good":
            assert sample.mask_path is None
        else:
            assert np.array_equal(read_mask(sample.mask_path, (48, 48)), expected.mask)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folder left behind"


# --- synthetic anomalies for training ---------------------------------------------------
def _image(seed: int = 0, shape: tuple[int, int] = (64, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return render_texture(texture_style("woven", rng), shape, rng)


def test_perlin_masks_vary_in_scale_and_are_deterministic():
    masks = [perlin_mask((64, 80), np.random.default_rng(seed)) for seed in range(40)]
    assert all(m.shape == (64, 80) and m.dtype == bool for m in masks)
    assert np.array_equal(masks[3], perlin_mask((64, 80), np.random.default_rng(3)))
    coverage = np.array([m.mean() for m in masks])
    assert (coverage > 0).mean() > 0.7 and coverage.max() < 0.5  # mostly some anomaly, never most
    # Blob size varies: count the mask's edges per masked pixel (fine speckle has many).
    edges = np.array([np.abs(np.diff(m.astype(int), axis=1)).sum() / max(m.sum(), 1) for m in masks])
    assert edges[coverage > 0].max() > 4 * edges[coverage > 0].min()
    with pytest.raises(ConfigError, match="max_exponent"):
        perlin_mask((8, 8), np.random.default_rng(0), max_exponent=0)


def test_texture_anomaly_changes_only_the_mask():
    image = _image()
    changed_any = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        anomalous, mask = texture_anomaly(image, rng, sources=[_image(1)])
        assert anomalous.dtype == np.float32 and anomalous.shape == image.shape
        assert 0.0 <= anomalous.min() and anomalous.max() <= 1.0
        changed = np.abs(anomalous - image).max(axis=2) > 0
        assert not (changed & ~mask).any()
        changed_any += int(changed.any())
        again, mask_again = texture_anomaly(image, np.random.default_rng(seed), sources=[_image(1)])
        assert np.array_equal(again, anomalous) and np.array_equal(mask_again, mask)
    assert changed_any >= 7
    # Full opacity puts the foreign texture itself into the mask: visibly different.
    anomalous, mask = texture_anomaly(image, np.random.default_rng(11), opacity=(1.0, 1.0))
    if mask.any():
        assert np.abs(anomalous - image).max(axis=2)[mask].mean() > 0.05



def test_min_change_keeps_only_visibly_changed_pixels_in_the_mask():
    # A texture cut from the image itself lands partly on identical pixels (a white background
    # on a white background): with min_change those leave the mask, the rest stays.
    image = np.ones((64, 64, 3), np.float32)
    image[16:48, 16:48] = 0.2
    dropped = 0
    for seed in range(10):
        full_anomalous, full = texture_anomaly(image, np.random.default_rng(seed), sources=[image])
        anomalous, mask = texture_anomaly(image, np.random.default_rng(seed), sources=[image], min_change=0.02)
        change = np.abs(anomalous - image).max(axis=2)
        assert np.array_equal(anomalous[mask], full_anomalous[mask]) and not (mask & ~full).any()
        full_change = np.abs(full_anomalous - image).max(axis=2)
        assert (change[mask] > 0.02).all() and (full_change[full & ~mask] <= 0.02).all()
        assert (change[~mask] == 0).all()
        dropped += int((full & ~mask).sum())
    assert dropped > 0

def test_foreign_textures_are_varied_and_unlike_their_source():
    source = _image(2)
    rng = np.random.default_rng(0)
    textures = [foreign_texture((48, 40), rng, sources=[source]) for _ in range(12)]
    assert all(t.shape == (48, 40, 3) and t.dtype == np.float32 for t in textures)
    assert all(0.0 <= t.min() and t.max() <= 1.0 for t in textures)
    means = np.array([t.mean(axis=(0, 1)) for t in textures])
    assert means.std(axis=0).mean() > 0.05  # different colours
    procedural = procedural_texture((32, 32), np.random.default_rng(4))
    assert procedural.shape == (32, 32, 3) and procedural.std() > 0.02
    jittered = colour_jitter(source, np.random.default_rng(5))
    assert jittered.shape == source.shape and not np.allclose(jittered, source, atol=0.02)


def test_cut_paste_moves_a_jittered_patch():
    image = _image(3)
    for seed in range(10):
        pasted, mask = cut_paste(image, np.random.default_rng(seed))
        area = mask.mean()
        assert 0.01 <= area <= 0.16  # the paper's 2-15 % of the image (rounding)
        rows, cols = np.nonzero(mask)
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
        assert np.array_equal(pasted[~mask], image[~mask])
        again, _ = cut_paste(image, np.random.default_rng(seed))
        assert np.array_equal(again, pasted)
    # From another image (of another size): the patch shows that image's colours.
    other = np.zeros((30, 30, 3), np.float32) + np.array([0.9, 0.1, 0.1], np.float32)
    pasted, mask = cut_paste(image, np.random.default_rng(0), source=other, jitter=0.0)
    np.testing.assert_allclose(pasted[mask].mean(axis=0), [0.9, 0.1, 0.1], atol=0.02)


def test_natural_images_ship_offline_and_cover_the_asked_shape(monkeypatch):
    images = natural_images((40, 100))
    assert len(images) >= 15  # read from scikit-image's own files, no downloader
    for image in images:
        assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] >= 40 and image.shape[1] >= 100 and min(image.shape[0] - 40, image.shape[1] - 100) <= 1
        assert 0.0 <= image.min() and image.max() <= 1.0
    assert np.mean([image.std() for image in images]) > 0.1  # real content, not blank
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert natural_images((40, 100)) == []  # without scikit-image: none, no error
