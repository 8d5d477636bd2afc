"""The backbone's input normalisation is a saved setting: a model file written before the
setting existed loads with the normalisation it was fitted with, not with today's default
(likewise PaDiM's photometric augmentation, `fit_jitter`, on by default since)."""
from __future__ import annotations

import numpy as np
import pytest

import oddity
from oddity.core.errors import ConfigError
from oddity.image.data import evaluation_samples

SMALL = {"image_size": 64, "seed": 0}



@pytest.mark.parametrize("name", ["padim", "gaussian_ad"])
def test_model_saved_without_input_norm_loads_with_imagenet(name, inspection_set, tmp_path, drop_param):
    fitted = oddity.create(name, input_norm="imagenet", **SMALL).fit(inspection_set, verbose=False)
    path = tmp_path / "old.oddity"
    fitted.save(path)
    drop_param(path, "input_norm")
    with pytest.warns(UserWarning, match="checksum"):
        loaded = oddity.load(path)
    assert loaded.input_norm == "imagenet"
    samples = evaluation_samples(inspection_set)[:3]
    np.testing.assert_allclose(loaded.score(samples, verbose=False).scores,
                               fitted.score(samples, verbose=False).scores, rtol=1e-6)


def test_padim_saved_without_fit_jitter_loads_with_none(inspection_set, tmp_path, drop_param):
    fitted = oddity.create("padim", fit_jitter=0.0, **SMALL).fit(inspection_set, verbose=False)
    assert oddity.create("padim").fit_jitter == 0.2  # today's default
    path = tmp_path / "old.oddity"
    fitted.save(path)
    drop_param(path, "fit_jitter")
    with pytest.warns(UserWarning, match="checksum"):
        assert oddity.load(path).fit_jitter == 0.0


def test_input_norm_is_saved_and_changes_scores(inspection_set, tmp_path):
    samples = evaluation_samples(inspection_set)[:3]
    scores = {}
    for norm in ("efficientnet", "imagenet"):
        fitted = oddity.create("padim", input_norm=norm, **SMALL).fit(inspection_set, verbose=False)
        fitted.save(tmp_path / f"{norm}.oddity")
        loaded = oddity.load(tmp_path / f"{norm}.oddity")
        assert loaded.input_norm == norm
        scores[norm] = loaded.score(samples, verbose=False).scores
    assert not np.allclose(scores["efficientnet"], scores["imagenet"])


def test_unknown_input_norm_is_refused_at_fit(inspection_set):
    with pytest.raises(ConfigError, match="input_norm"):
        oddity.create("padim", input_norm="zscore", **SMALL).fit(inspection_set, verbose=False)


@pytest.mark.parametrize("name", ["patchcore", "padim"])
def test_scoring_uses_the_fitted_input_norm(name, inspection_set):
    """A model fitted on ImageNet-normalised inputs scores inputs normalised the same way:
    its training images score about as low as under the default normalisation."""
    params = {"patchcore": {"coreset_ratio": 1.0, "border_rings": 0}, "padim": {"fit_jitter": 0.0}}[name]
    train = sorted((inspection_set / "train" / "good").iterdir())
    scores = {}
    for norm in ("efficientnet", "imagenet"):
        fitted = oddity.create(name, input_norm=norm, calibration_fraction=0.0, **params, **SMALL)
        scores[norm] = fitted.fit(train, verbose=False).score(train[:3], verbose=False).scores
    np.testing.assert_allclose(scores["imagenet"], scores["efficientnet"], rtol=0.05, atol=1e-3)
