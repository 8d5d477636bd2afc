"""Colour balance and per-image contrast applied to the model input after its resize, with the
image's own statistics (`normalise_after_resize`): what the spec computes, and files written
before the option existed (models and export metadata) keeping the order they were fitted with."""
from __future__ import annotations

import numpy as np
import pytest

import oddity
from oddity.image import geometry, photometric
from oddity.image.data import evaluation_samples
from oddity.image.spec import ImageSpec


def test_the_image_statistics_are_applied_to_the_resized_input():
    rng = np.random.default_rng(0)
    tint = np.float32([1.0, 0.9, 0.8])
    calm = ((0.4 + 0.2 * rng.random((96, 128, 3), dtype=np.float32)) * tint).astype(np.float32)  # nothing clips
    options = {"image_size": 48, "per_image_contrast": True, "colour_balance": True}
    before, after = ImageSpec(**options), ImageSpec(**options, normalise_after_resize=True)
    got = after.model_input(calm)
    assert got.shape == (3, 48, 64) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, before.model_input(calm), atol=1e-5)  # linear steps commute
    np.testing.assert_allclose(got.reshape(3, -1).mean(axis=1), got.mean(), atol=2e-3)  # balanced
    # the resized image's own statistics would differ: its spread is smaller
    resized = geometry.resize(calm, (48, 64), antialias=True)
    own = geometry.standardise_contrast(geometry.balance_channels(resized)).transpose(2, 0, 1)
    assert not np.allclose(got, own, atol=1e-2)
    warm = photometric.white_balance(calm, (1.1, 1.0, 0.9))
    np.testing.assert_allclose(after.model_input(warm), got, atol=1e-4)  # white balance undone
    bright = calm.copy()
    bright[:20] = 1.0  # clipped: equal up to where the clipping happens
    np.testing.assert_allclose(after.model_input(bright), before.model_input(bright), atol=0.05)


def test_without_balance_or_contrast_the_input_is_only_resized():
    image = np.random.default_rng(1).random((40, 50, 3), dtype=np.float32)
    spec = ImageSpec(image_size=32, normalise_after_resize=True)
    np.testing.assert_array_equal(spec.model_input(image), geometry.model_input(image, (32, 40)))
    contrast_only = ImageSpec(image_size=32, per_image_contrast=True, normalise_after_resize=True)
    x = contrast_only.model_input(image)
    assert not np.array_equal(x, spec.model_input(image)) and x.min() >= 0.0 and x.max() <= 1.0


def test_a_spec_written_before_the_option_keeps_normalising_the_image():
    values = ImageSpec(image_size=64, per_image_contrast=True).to_dict()
    del values["normalise_after_resize"]
    assert ImageSpec.from_dict(values).normalise_after_resize is False


def test_patchcore_default_and_old_files(inspection_set, tmp_path, drop_param):
    assert oddity.create("patchcore").normalise_after_resize is True
    assert oddity.create("gaussian_ad").normalise_after_resize is False
    fitted = oddity.create("patchcore", image_size=64, seed=0, normalise_after_resize=False).fit(
        inspection_set, verbose=False)
    path = tmp_path / "old.oddity"
    fitted.save(path)
    drop_param(path, "normalise_after_resize")
    with pytest.warns(UserWarning, match="checksum"):
        loaded = oddity.load(path)
    assert loaded.normalise_after_resize is False and loaded.spec() == fitted.spec()
    samples = evaluation_samples(inspection_set)[:3]
    np.testing.assert_array_equal(loaded.score(samples, verbose=False).scores,
                                  fitted.score(samples, verbose=False).scores)
