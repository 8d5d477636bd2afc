"""Border-aware standardisation of patch-score maps, learned from normal images.

A CNN sees zero padding and the object's edge near the image border, so a patch's distance to
normal is larger and more variable there even on normal images (on magnetic tile every normal
test image had its map maximum within 10% of the border). A detector with a per-position model
(PaDiM) absorbs that, but images of different sizes have no common positions. Rings do: the
ring of a patch-grid cell is its distance, in cells, to the nearest grid border, capped at
`rings` (all deeper cells share the last ring). From the patch maps of held-out normal images
we learn each ring's mean and standard deviation of patch scores, and a map is standardised
ring by ring (in the detector's scoring graph, `oddity.image.kernel.ring_standardise`), so a score means "standard deviations above normal at this distance from the
border" wherever it is. The image score is then the largest standardised patch score.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oddity.core.errors import DataError

MIN_STD = 1e-6


def ring_index(grid: tuple[int, int], rings: int) -> np.ndarray:
    """(h, w) integer map: each cell's distance in cells to the nearest border, capped at `rings`.

    Parameters
    ----------
    grid : tuple of int
        (h, w) of the patch grid.
    rings : int
        The cap.

    Returns
    -------
    numpy.ndarray
        (h, w) int ring per cell.
    """
    h, w = grid
    rows = np.minimum(np.arange(h), np.arange(h)[::-1])[:, None]
    cols = np.minimum(np.arange(w), np.arange(w)[::-1])[None, :]
    return np.minimum(np.minimum(rows, cols), rings)


@dataclass
class BorderStandardiser:
    """Per-ring mean and standard deviation of normal patch scores (index 0 = outermost ring)."""

    mean: np.ndarray
    std: np.ndarray

    @property
    def rings(self) -> int:
        return len(self.mean) - 1

    @classmethod
    def fit(cls, patch_maps: list[np.ndarray], rings: int) -> "BorderStandardiser":
        """Learn ring statistics from the patch maps of normal images. A ring that no map
        reaches (all maps small) takes the statistics of the deepest ring that was seen.

        Parameters
        ----------
        patch_maps : list of numpy.ndarray
            (h, w) patch maps of normal images.
        rings : int
            Rings standardised apart (`ImageDetector.border_rings`).

        Returns
        -------
        BorderStandardiser
            The ring means and spreads.
        """
        if not patch_maps:
            raise DataError("border standardisation needs the patch maps of at least one normal image")
        values: list[list[np.ndarray]] = [[] for _ in range(rings + 1)]
        for patch_map in patch_maps:
            index = ring_index(patch_map.shape, rings)
            for ring in range(rings + 1):
                values[ring].append(patch_map[index == ring].ravel())
        mean, std = np.zeros(rings + 1), np.ones(rings + 1)
        for ring in range(rings + 1):
            pooled = np.concatenate(values[ring])
            if pooled.size == 0:
                mean[ring], std[ring] = mean[ring - 1], std[ring - 1]
                continue
            mean[ring], std[ring] = pooled.mean(), max(float(pooled.std()), MIN_STD)
        return cls(mean=mean, std=std)
