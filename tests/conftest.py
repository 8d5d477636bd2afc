"""Shared test fixtures: a tiny synthetic inspection set and a test-only image detector.

`MeanDifference` (registered as `test-meandiff`, in tests only) scores each pixel by its
squared difference to the mean training image: crude, but fast and good enough on the
synthetic sets to check that fit, predict and eval plumbing produce sensible numbers.
"""
from __future__ import annotations

import os

# As `import oddity` does, but torch is imported here first: idle OpenMP threads sleep, which
# keeps torch fast when other processes share the CPUs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import numpy as np
import pytest
import torch

from oddity.cli import main
from oddity.core.registry import register
from oddity.image.detector import ImageDetector
from oddity.image.synth import make_inspection_set


class MeanDifferenceScorer(torch.nn.Module):
    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = (x - self.mean).square().mean(dim=1)
        return diff.flatten(1).amax(dim=1), diff


@register("test-meandiff")
class MeanDifference(ImageDetector):
    """Test-only detector: squared difference to the mean training image."""

    needs_fixed_shape = True
    mean_: np.ndarray | None = None

    def _fit_images(self, images) -> None:
        total = None
        for x in images:
            total = x[0].clone() if total is None else total + x[0]
        self.mean_ = (total / len(images)).numpy()

    def _scorer(self, portable: bool) -> torch.nn.Module:
        return MeanDifferenceScorer(torch.from_numpy(self.mean_))

    # the hooks every detector writes (docs/contributing.md), overridden as a method would
    def _get_state(self):
        values, arrays = super()._get_state()
        return values, {**arrays, "mean": self.mean_}

    def _set_state(self, values, arrays) -> None:
        super()._set_state(values, arrays)
        self.mean_ = arrays["mean"]


@pytest.fixture(scope="session")
def inspection_set(tmp_path_factory) -> Path:
    """A small synthetic MVTec-layout set (stripes texture, 64 px), shared by all tests."""
    root = tmp_path_factory.mktemp("synth") / "stripes"
    return make_inspection_set(root, n_train=12, n_test_good=4, n_test_defect=2, size=64,
                               seed=1, texture="stripes")


@pytest.fixture
def reloaded(tmp_path):
    """A function that saves a fitted image detector, loads it back, checks that the copy has
    the same class, parameters and thresholds and scores `samples` identically (maps too),
    and returns the copy for method-specific checks."""
    import oddity

    def check(fitted: ImageDetector, samples: list) -> ImageDetector:
        path = tmp_path / "model.oddity"
        fitted.save(path)
        loaded = oddity.load(path)
        assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
        before, after = fitted.score(samples, verbose=False), loaded.score(samples, verbose=False)
        np.testing.assert_array_equal(after.scores, before.scores)
        if fitted.localises:
            np.testing.assert_array_equal(after.maps[0], before.maps[0])
        assert loaded.threshold_ == fitted.threshold_ and loaded.pixel_threshold_ == fitted.pixel_threshold_
        return loaded

    return check


@pytest.fixture
def aurocs():
    """A function giving (image AUROC, pixel AUROC) of a prediction on labelled samples, the
    pixel one over all maps against the ground-truth masks."""
    from sklearn.metrics import roc_auc_score

    def measure(samples: list, prediction) -> tuple[float, float]:
        labels = np.array([s.label for s in samples])
        pixels = np.concatenate([m.ravel() for m in prediction.maps])
        truth = np.concatenate([s.load_mask(m.shape).ravel() for s, m in zip(samples, prediction.maps)])
        return roc_auc_score(labels, prediction.scores), roc_auc_score(truth, pixels)

    return measure


@pytest.fixture(scope="module")
def model(inspection_set, tmp_path_factory) -> Path:
    """A `test-meandiff` model fitted through the CLI on the synthetic set (64 px)."""
    path = tmp_path_factory.mktemp("model") / "m.oddity"
    assert main(["fit", "test-meandiff", "--data", str(inspection_set), "--out", str(path),
                 "--image-size", "64", "--quiet"]) == 0
    return path


@pytest.fixture
def drop_param():
    """A function rewriting a model file as an older oddity wrote it: without parameter `name`,
    in format version 1 (no checksum)."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    def rewrite(path, name: str) -> None:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata()
        document = json.loads(metadata["oddity"])
        del document["params"][name]
        document["format_version"] = 1
        save_file(load_file(str(path)), str(path), metadata={"oddity": json.dumps(document)})

    return rewrite
