"""A detector scores with the input normalisation it was fitted with, not with the default."""
from __future__ import annotations

import numpy as np
import pytest

import oddity

PARAMS = {"patchcore": {}, "padim": {}, "gaussian_ad": {"layers": ("stage3", "stage5")},
          "simplenet": {"epochs": 1, "hidden": 16}}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_scoring_graph_uses_the_fitted_normalisation(name):
    images = np.random.default_rng(0).uniform(0.3, 0.7, size=(10, 64, 64, 3))
    detector = oddity.create(name, image_size=64, input_norm="imagenet", **PARAMS[name])
    detector.fit(images, verbose=False)
    assert detector.kernel().scorer.extractor.input_norm == "imagenet"
