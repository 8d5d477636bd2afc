"""Candidate ways of turning PatchCore's patch distances into pixel maps, for the pixel-map
benchmark (benchmarks/run_pixel_maps.py).

A fitted model's raw patch maps (nearest-bank distances on the patch grid, before border
standardisation) are kept once per image; each candidate then changes one step of the map
pipeline (`oddity.image.spec.ImageSpec.finish`, `oddity.image.kernel.ring_standardise`):
the Gaussian sigma, the upsampling (bilinear, or nearest as anomalib's), the edge rule of the
smoothing, the values (ring-standardised, raw, or ring-centred on one common spread), a sum of
two Gaussians, or the mean distance to the k nearest bank patches. The default candidate is
exactly what `PatchCore.predict` computes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d

from oddity.core.errors import ConfigError
from oddity.image.border import ring_index
from oddity.image.geometry import resize_weights

__all__ = ["CANDIDATES", "MapCandidate", "axis_weights", "candidate_map"]

UPSAMPLING = ("bilinear", "nearest")
EDGES = ("nearest", "reflect", "constant")
VALUES = ("rings", "raw", "centred")


@dataclass(frozen=True)
class MapCandidate:
    """One way of making a pixel map from a patch map (defaults: oddity's pipeline).

    Attributes
    ----------
    label : str
        Its name in the results.
    sigmas : tuple of float
        Gaussian sigma(s) in model-input pixels; several: the mean of the maps smoothed with each.
    upsampling : {"bilinear", "nearest"}
        Patch grid to model input.
    edge : {"nearest", "reflect", "constant"}
        Edge rule of the smoothing (scipy's `mode`).
    values : {"rings", "raw", "centred"}
        Border standardisation (`rings`), none (`raw`), or each ring's mean removed and one
        common spread (the innermost ring's) for all (`centred`).
    """

    label: str
    sigmas: tuple[float, ...] = (4.0,)
    upsampling: str = "bilinear"
    edge: str = "nearest"
    values: str = "rings"


CANDIDATES: tuple[MapCandidate, ...] = (
    MapCandidate("default (sigma 4, bilinear, edge repeated, ring-standardised)"),
    MapCandidate("sigma 0", sigmas=(0.0,)),
    MapCandidate("sigma 2", sigmas=(2.0,)),
    MapCandidate("sigma 6", sigmas=(6.0,)),
    MapCandidate("sigma 8", sigmas=(8.0,)),
    MapCandidate("mean of sigma 4 and 12", sigmas=(4.0, 12.0)),
    MapCandidate("nearest upsampling + reflected edge (anomalib)", upsampling="nearest", edge="reflect"),
    MapCandidate("reflected edge", edge="reflect"),
    MapCandidate("zero edge", edge="constant"),
    MapCandidate("raw distances (no ring standardisation)", values="raw"),
    MapCandidate("ring-centred, one spread", values="centred"),
)


@lru_cache(maxsize=512)
def axis_weights(size_in: int, size_input: int, size_out: int, sigma: float, upsampling: str,
                 edge: str) -> np.ndarray:
    """(size_out, size_in) weights along one axis: upsampling to the model input, Gaussian
    smoothing there, bilinear resize to the image (as `oddity.image.geometry.map_weights`).

    Parameters
    ----------
    size_in, size_input, size_out : int
        Patch-grid, model-input and image lengths.
    sigma : float
        Gaussian sigma in model-input pixels (0: none).
    upsampling : {"bilinear", "nearest"}
        Grid to input.
    edge : {"nearest", "reflect", "constant"}
        Edge rule of the smoothing.

    Returns
    -------
    numpy.ndarray
        float64 weights.

    Raises
    ------
    ConfigError
        If `upsampling` or `edge` is unknown.
    """
    if upsampling not in UPSAMPLING or edge not in EDGES:
        raise ConfigError(f"upsampling must be one of {UPSAMPLING} and edge one of {EDGES}, "
                          f"got {upsampling!r}, {edge!r}")
    if upsampling == "bilinear":
        weights = resize_weights(size_in, size_input, False).toarray().astype(np.float64)
    else:  # torch's F.interpolate(mode="nearest"): source index floor(i * in / out)
        weights = np.zeros((size_input, size_in))
        source = np.minimum((np.arange(size_input) * size_in) // size_input, size_in - 1)
        weights[np.arange(size_input), source] = 1.0
    if sigma > 0:
        weights = gaussian_filter1d(weights, sigma, axis=0, mode=edge, truncate=4.0)
    if size_out != size_input:
        weights = resize_weights(size_input, size_out, False).toarray().astype(np.float64) @ weights
    return weights


def candidate_map(patch_map: np.ndarray, input_hw: tuple[int, int], hw: tuple[int, int],
                  border_mean: np.ndarray, border_std: np.ndarray, candidate: MapCandidate) -> np.ndarray:
    """The (H, W) pixel map of one raw patch map by one candidate.

    Parameters
    ----------
    patch_map : numpy.ndarray
        (h, w) raw patch distances (the kernel's scorer's map).
    input_hw, hw : tuple of int
        Model-input and image (H, W).
    border_mean, border_std : numpy.ndarray
        The model's ring statistics (`ImageDetector.border_`).
    candidate : MapCandidate
        The candidate.

    Returns
    -------
    numpy.ndarray
        (H, W) float32 map.

    Raises
    ------
    ConfigError
        If the candidate names an unknown rule.
    """
    index = ring_index(patch_map.shape, len(border_mean) - 1)
    values = np.asarray(patch_map, dtype=np.float64)
    if candidate.values == "rings":
        values = (values - border_mean[index]) / border_std[index]
    elif candidate.values == "centred":
        values = (values - border_mean[index]) / border_std[-1]
    elif candidate.values != "raw":
        raise ConfigError(f"values must be one of {VALUES}, got {candidate.values!r}")
    total = np.zeros(hw)
    for sigma in candidate.sigmas:
        rows = axis_weights(patch_map.shape[0], input_hw[0], hw[0], float(sigma), candidate.upsampling, candidate.edge)
        cols = axis_weights(patch_map.shape[1], input_hw[1], hw[1], float(sigma), candidate.upsampling, candidate.edge)
        total += rows @ values @ cols.T
    return (total / len(candidate.sigmas)).astype(np.float32)
