"""PatchCore's local pooling at the map border (`pool_padding`) and the grey-world channel
balance (`colour_balance`): what they compute, and model files saved before they existed
loading with what those models were fitted with."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import oddity
from oddity.core.errors import ConfigError
from oddity.image import photometric
from oddity.image.data import evaluation_samples
from oddity.image.features import concat_on_first_grid
from oddity.image.geometry import balance_channels, standardise_contrast

SMALL = {"image_size": 64, "seed": 0}



def test_zero_padding_shrinks_border_means_only():
    ones = [torch.ones(1, 2, 6, 8)]
    inside = concat_on_first_grid(ones, 3, "inside")[0, 0]
    zeros = concat_on_first_grid(ones, 3, "zeros")[0, 0]
    assert torch.allclose(inside, torch.ones(6, 8))
    assert torch.allclose(zeros[1:-1, 1:-1], torch.ones(4, 6))  # interior: whole neighbourhoods
    assert zeros[0, 3].item() == pytest.approx(6 / 9) and zeros[0, 0].item() == pytest.approx(4 / 9)


def test_pool_padding_is_checked():
    with pytest.raises(ConfigError, match="pool_padding"):
        oddity.create("patchcore", pool_padding="reflect").validate_params()


def test_patchcore_defaults_and_old_files_keep_their_pooling_and_colours(inspection_set, tmp_path, drop_param):
    defaults = oddity.create("patchcore")
    assert (defaults.pool_padding, defaults.per_image_contrast, defaults.colour_balance) == ("zeros", True, True)
    assert oddity.create("gaussian_ad").per_image_contrast and not oddity.create("gaussian_ad").colour_balance
    fitted = oddity.create("patchcore", pool_padding="inside", colour_balance=False,
                           **SMALL).fit(inspection_set, verbose=False)
    path = tmp_path / "old.oddity"
    fitted.save(path)
    drop_param(path, "pool_padding")
    drop_param(path, "colour_balance")
    with pytest.warns(UserWarning, match="checksum"):
        loaded = oddity.load(path)
    assert (loaded.pool_padding, loaded.colour_balance) == ("inside", False)
    samples = evaluation_samples(inspection_set)[:3]
    np.testing.assert_allclose(loaded.score(samples, verbose=False).scores,
                               fitted.score(samples, verbose=False).scores, rtol=1e-6)


def test_balance_undoes_a_white_balance_change_and_keeps_grey_images():
    rng = np.random.default_rng(0)
    image = (0.2 + 0.5 * rng.random((24, 32, 3))).astype(np.float32)
    warm = photometric.white_balance(image, (1.1, 1.0, 0.9))
    np.testing.assert_allclose(standardise_contrast(balance_channels(warm)),
                               standardise_contrast(balance_channels(image)), atol=1e-5)
    assert not np.allclose(standardise_contrast(warm), standardise_contrast(image), atol=1e-3)
    grey = np.repeat(image[..., :1], 3, axis=-1)
    np.testing.assert_allclose(balance_channels(grey), grey, atol=1e-6)


def test_colour_balance_makes_scores_blind_to_white_balance(inspection_set, tmp_path, drop_param):
    detector = oddity.create("padim", per_image_contrast=True, colour_balance=True, **SMALL).fit(inspection_set, verbose=False)
    images = [sample.load() for sample in evaluation_samples(inspection_set)[:3]]
    shifted = [photometric.white_balance(image, (1.1, 1.0, 0.9)) for image in images]
    np.testing.assert_allclose(detector.score(np.stack(shifted), verbose=False).scores,
                               detector.score(np.stack(images), verbose=False).scores, rtol=1e-3)
    path = tmp_path / "old.oddity"
    oddity.create("padim", **SMALL).fit(inspection_set, verbose=False).save(path)
    drop_param(path, "colour_balance")
    with pytest.warns(UserWarning, match="checksum"):
        assert oddity.load(path).colour_balance is False
