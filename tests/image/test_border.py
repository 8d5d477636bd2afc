"""Border standardisation learns how normal patch scores vary with distance to the border and
removes that variation, so that an interior defect outranks normal border noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from oddity.core.errors import DataError
from oddity.image.border import BorderStandardiser, ring_index
from oddity.image.kernel import ring_standardise


def _standardise(standardiser: BorderStandardiser, patch_map: np.ndarray) -> np.ndarray:
    """The kernel's ring standardisation of one map."""
    mean, std = (torch.tensor(a, dtype=torch.float32) for a in (standardiser.mean, standardiser.std))
    return ring_standardise(torch.from_numpy(patch_map[None]).float(), mean, std)[0].numpy()


def test_kernel_rings_are_the_ring_index():
    standardiser = BorderStandardiser(mean=np.arange(3.0), std=np.ones(3))
    assert np.array_equal(_standardise(standardiser, np.zeros((5, 7))), -ring_index((5, 7), rings=2))


def test_ring_index_counts_cells_to_the_nearest_border_and_caps():
    index = ring_index((5, 7), rings=2)
    assert index[0].tolist() == [0] * 7
    assert index[2].tolist() == [0, 1, 2, 2, 2, 1, 0]
    assert index.max() == 2 and index[:, 0].max() == 0


def _normal_map(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Patch scores whose mean and spread grow towards the border, like a CNN's near padding."""
    depth = ring_index(shape, rings=3)
    return (10.0 + 3.0 * (3 - depth) + (1.0 + 2.0 * (3 - depth)) * rng.standard_normal(shape))


def test_standardised_normal_maps_have_zero_mean_unit_spread_in_every_ring():
    rng = np.random.default_rng(0)
    standardiser = BorderStandardiser.fit([_normal_map(rng, (12, 20)) for _ in range(30)], rings=3)
    assert standardiser.mean[0] > standardiser.mean[3] and standardiser.std[0] > standardiser.std[3]
    fresh = [_standardise(standardiser, _normal_map(rng, (16, 9))) for _ in range(30)]
    index = ring_index((16, 9), rings=3)
    for ring in range(4):
        values = np.concatenate([m[index == ring] for m in fresh])
        assert abs(values.mean()) < 0.15 and abs(values.std() - 1.0) < 0.15


def test_interior_defect_outranks_border_noise_only_after_standardisation():
    rng = np.random.default_rng(1)
    standardiser = BorderStandardiser.fit([_normal_map(rng, (12, 20)) for _ in range(30)], rings=3)
    normals = [_normal_map(rng, (12, 20)) for _ in range(20)]
    defective = [_normal_map(rng, (12, 20)) for _ in range(20)]
    for m in defective:
        m[6, 10] += 6.0  # a defect 6 standard deviations above normal in the interior
    raw_hits = np.mean([d.max() > n.max() for d, n in zip(defective, normals)])
    standard_hits = np.mean([_standardise(standardiser, d).max() > _standardise(standardiser, n).max() for d, n in zip(defective, normals)])
    assert standard_hits >= 0.9 and standard_hits > raw_hits + 0.3


def test_rings_no_map_reaches_take_the_deepest_seen_statistics():
    standardiser = BorderStandardiser.fit([np.arange(6.0).reshape(2, 3)], rings=3)
    assert np.all(standardiser.mean[1:] == standardiser.mean[0])


def test_needs_at_least_one_map():
    with pytest.raises(DataError, match="at least one normal image"):
        BorderStandardiser.fit([], rings=2)
