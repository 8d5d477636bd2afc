"""Colour balance and per-image contrast on the model input after its resize
(`normalise_after_resize`): what the spec computes, and files written before the option
existed (models and export metadata) keeping the order they were fitted with."""
from __future__ import annotations

import numpy as np
import pytest

import oddity
from oddity.image import geometry
from oddity.image.data import evaluation_samples
from oddity.image.spec import ImageSpec


def test_balance_and_contrast_apply_to_the_resized_input():
    rng = np.random.default_rng(0)
    image = np.clip(rng.random((96, 128, 3), dtype=np.float32) * np.float32([0.9, 0.7, 0.5]), 0, 1)
    spec = ImageSpec(image_size=48, per_image_contrast=True, colour_balance=True, normalise_after_resize=True)
    resized = geometry.resize(image, (48, 64), antialias=True)
    expected = geometry.standardise_contrast(geometry.balance_channels(resized)).transpose(2, 0, 1)
    got = spec.model_input(image)
    assert got.shape == (3, 48, 64) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, atol=1e-5)  # channel means summed in another order
    before = ImageSpec(image_size=48, per_image_contrast=True, colour_balance=True).model_input(image)
    assert not np.allclose(before, got, atol=1e-4)  # the statistics of the resized image differ
    np.testing.assert_allclose(geometry.balance_channels(resized.transpose(2, 0, 1).copy(), channels_first=True),
                               geometry.balance_channels(resized).transpose(2, 0, 1), atol=1e-5)


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
