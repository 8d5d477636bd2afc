import numpy as np
import pytest
import torch

from oddity.bench.pixel_maps import CANDIDATES, MapCandidate, candidate_map
from oddity.core.errors import ConfigError
from oddity.image.geometry import patch_map_to_image
from oddity.image.kernel import ring_standardise


def test_default_candidate_is_the_detector_pipeline():
    rng = np.random.default_rng(0)
    raw = rng.uniform(1.0, 3.0, size=(12, 15)).astype(np.float32)
    mean, std = np.array([2.5, 2.2, 2.0]), np.array([0.6, 0.4, 0.3])
    standardised = ring_standardise(torch.from_numpy(raw)[None], torch.tensor(mean, dtype=torch.float32),
                                    torch.tensor(std, dtype=torch.float32))[0].numpy()
    expected = patch_map_to_image(standardised, (96, 120), (70, 88), 4.0)
    got = candidate_map(raw, (96, 120), (70, 88), mean, std, CANDIDATES[0])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_nearest_upsampling_without_smoothing_repeats_cells():
    raw = np.arange(6, dtype=np.float32).reshape(2, 3)
    candidate = MapCandidate("n", sigmas=(0.0,), upsampling="nearest", values="raw")
    got = candidate_map(raw, (4, 6), (4, 6), np.zeros(2), np.ones(2), candidate)
    np.testing.assert_array_equal(got, np.repeat(np.repeat(raw, 2, axis=0), 2, axis=1))


def test_wider_smoothing_spreads_a_peak_and_unknown_rules_fail():
    raw = np.zeros((8, 8), dtype=np.float32)
    raw[4, 4] = 1.0
    narrow = candidate_map(raw, (64, 64), (64, 64), np.zeros(2), np.ones(2), MapCandidate("a", values="raw"))
    wide = candidate_map(raw, (64, 64), (64, 64), np.zeros(2), np.ones(2),
                         MapCandidate("b", sigmas=(8.0,), values="raw"))
    assert wide.max() < narrow.max() and wide[36, 50] > narrow[36, 50]
    with pytest.raises(ConfigError):
        candidate_map(raw, (64, 64), (64, 64), np.zeros(2), np.ones(2), MapCandidate("c", values="odd"))
