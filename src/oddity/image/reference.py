"""Golden-sample comparison: a query image inspected against one reference image of a good
part, with no training set.

Setting: anomaly detection with reference, as framed by the UMAD benchmark (Li, Chen, Xu and
Kong, "UMAD: University of Macau Anomaly Detection Benchmark Dataset", IROS 2024,
https://arxiv.org/abs/2408.12527): the query is geometrically aligned to its reference, then
what differs between the aligned pair is the anomaly.

- Alignment: `oddity.image.alignment` (feature matches + RANSAC homography, ECC refinement);
  an alignment that fails its checks raises `AlignmentError` carrying the numbers, it is never
  scored silently. `align=False` compares the images as they are.
- Comparison: the patch features PatchCore uses (EfficientNet-Lite0 stages 3 and 5, 3x3
  average-pooled, on the stride-8 grid) of the reference and of the aligned query (pixels the
  warped query does not cover are filled with the reference's, so the empty border does not
  show up as a difference); each query
  patch's distance is the smallest L2 distance to the reference patches within `radius` grid
  cells of its position (tolerates the residual misalignment and small shape differences
  between good parts). The map is upsampled and Gaussian-smoothed (sigma 4) as PatchCore's;
  pixels the warped query does not cover, and a margin of `margin` pixels (model input scale)
  inside them, get 0; the score is the map's maximum over covered pixels.

Deviations from UMAD: UMAD aligns with robot poses and learns change detection on its scenes;
we have only the two images, so alignment comes from the images and the comparison from a
frozen ImageNet backbone (nothing is trained).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_erosion

from oddity.core.errors import ConfigError, DataError
from oddity.core.persistence import staged_directory
from oddity.image import geometry
from oddity.image.alignment import Alignment, align, warp_to_reference
from oddity.image.data import as_rgb_float, read_image
from oddity.image.features import DEFAULT_INPUT_NORM, concat_on_first_grid, feature_extractor
from oddity.viz import overlay, save_png


class AlignmentError(DataError):
    """The query could not be aligned to the reference; `alignment` holds the numbers."""

    def __init__(self, message: str, alignment: Alignment):
        super().__init__(message)
        self.alignment = alignment


@dataclass
class Comparison:
    """Result of one comparison: `map` at the reference's size (0 where the query gives no
    pixels), `warped` the query in the reference's frame, `covered` where it has pixels."""

    score: float
    map: np.ndarray
    warped: np.ndarray
    covered: np.ndarray
    alignment: Alignment | None


def _pixels(image: str | os.PathLike | np.ndarray, name: str) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    return as_rgb_float(np.asarray(image), name)


class GoldenSample:
    """A reference image of a good part, to compare query images against (its features are
    computed once)."""

    def __init__(self, reference: str | os.PathLike | np.ndarray, *, image_size: int = 256,
                 radius: int = 2, margin: int = 8, smoothing_sigma: float = 4.0,
                 backbone: str = "efficientnet_lite0", layers: tuple[str, ...] = ("stage3", "stage5"),
                 input_norm: str = DEFAULT_INPUT_NORM, features: str = "orb", ecc: bool = True, min_inliers: int = 15):
        if radius < 0:
            raise ConfigError(f"radius must be 0 or more grid cells, got {radius}")
        if image_size < 32:
            raise ConfigError(f"image_size must be at least 32 pixels, got {image_size}")
        if min_inliers < 4:
            raise ConfigError(f"min_inliers must be at least 4 (a homography needs four point "
                              f"pairs), got {min_inliers}")
        self.reference = _pixels(reference, "reference")
        self.image_size, self.radius, self.margin = image_size, radius, margin
        self.smoothing_sigma, self.backbone, self.layers = smoothing_sigma, backbone, tuple(layers)
        self.input_norm = input_norm
        self.features, self.ecc, self.min_inliers = features, ecc, min_inliers
        self.input_hw = geometry.keep_aspect_shape(self.reference.shape[:2], image_size)
        self._reference_patches = self._embed(self.reference)

    def settings(self) -> dict[str, Any]:
        """The comparison's settings (recorded beside its outputs).

        Returns
        -------
        dict
            Setting name to value.
        """
        return {"image_size": self.image_size, "radius": self.radius, "margin": self.margin,
                "smoothing_sigma": self.smoothing_sigma, "backbone": self.backbone,
                "layers": list(self.layers), "input_norm": self.input_norm, "features": self.features, "ecc": self.ecc,
                "min_inliers": self.min_inliers}

    def _embed(self, pixels: np.ndarray) -> torch.Tensor:
        """(C, h, w) patch features of an image at the model input size."""
        with torch.inference_mode():
            x = geometry.to_tensor(pixels, self.input_hw)
            return concat_on_first_grid(feature_extractor(self.backbone, self.layers, self.input_norm)(x), 3)[0]

    def _patch_distances(self, query: torch.Tensor) -> np.ndarray:
        """(h, w) distance of each query patch to the nearest reference patch within
        `radius` cells (positions off the grid do not count)."""
        channels, height, width = query.shape
        size = 2 * self.radius + 1
        neighbours = F.unfold(self._reference_patches[None], size, padding=self.radius)
        neighbours = neighbours.view(channels, size * size, height * width)
        on_grid = F.unfold(torch.ones(1, 1, height, width), size, padding=self.radius).view(size * size, -1) > 0
        squared = (neighbours - query.reshape(channels, 1, -1)).square().sum(0)
        squared = squared.masked_fill(~on_grid, float("inf"))
        return squared.min(0).values.sqrt().view(height, width).numpy()

    def compare(self, query: str | os.PathLike | np.ndarray, *, align_query: bool = True) -> Comparison:
        """Align `query` to the reference (unless `align_query` is False) and score it; raises
        `AlignmentError` when the alignment fails its checks.

        Parameters
        ----------
        query : str, os.PathLike or numpy.ndarray
            The image to inspect.
        align_query : bool, default True
            Align it to the reference first.

        Returns
        -------
        Comparison
            Score, map and alignment.

        Raises
        ------
        AlignmentError
            If the alignment fails its checks.
        """
        pixels = _pixels(query, "query")
        hw = self.reference.shape[:2]
        alignment = None
        if align_query:
            alignment = align(self.reference, pixels, features=self.features, ecc=self.ecc,
                              min_inliers=self.min_inliers)
            if not alignment.ok:
                raise AlignmentError(f"query not aligned to the reference: {alignment.problem}; "
                                     "check that both show the same part, or compare without alignment (align_query=False, --no-align)", alignment)
            warped, covered = warp_to_reference(pixels, alignment, hw)
        else:
            if pixels.shape[:2] != hw:  # the reference's frame, as an alignment would give
                pixels = cv2.resize(pixels, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
            warped, covered = pixels, np.ones(hw, dtype=bool)
        # Uncovered pixels take the reference's: no artificial edge for the features to see.
        filled = np.where(covered[..., None], warped, self.reference)
        with torch.inference_mode():
            distances = self._patch_distances(self._embed(filled))
        score_map = geometry.patch_map_to_image(distances, self.input_hw, hw, self.smoothing_sigma)
        valid = self._valid(covered)
        if not valid.any():
            assert alignment is not None  # without alignment every pixel is covered
            raise AlignmentError("the aligned query covers no part of the reference", alignment)
        score_map = np.where(valid, score_map, 0.0).astype(np.float32)
        return Comparison(score=float(score_map[valid].max()), map=score_map, warped=warped,
                          covered=covered, alignment=alignment)

    def _valid(self, covered: np.ndarray) -> np.ndarray:
        """Covered pixels at least `margin` model-input pixels away from uncovered ones."""
        if covered.all() or self.margin == 0:
            return covered
        scale = max(covered.shape) / max(self.input_hw)
        return binary_erosion(covered, iterations=max(1, round(self.margin * scale)), border_value=1)


def compare(reference: str | os.PathLike | np.ndarray, query: str | os.PathLike | np.ndarray,
            *, align_query: bool = True, **settings: Any) -> Comparison:
    """One-off comparison of `query` against `reference` (see `GoldenSample`).

    Parameters
    ----------
    reference, query : str, os.PathLike or numpy.ndarray
        The golden image and the image to inspect.
    align_query : bool, default True
        Align the query first.
    **settings
        `GoldenSample` parameters.

    Returns
    -------
    Comparison
        Score, map and alignment.

    Raises
    ------
    AlignmentError
        If the alignment fails its checks.
    """
    return GoldenSample(reference, **settings).compare(query, align_query=align_query)


def write_comparison(out_dir: str | os.PathLike, comparison: Comparison, inputs: dict[str, str],
                     settings: dict[str, Any]) -> Path:
    """Write heatmap.png (the map over the warped query), warped.png and comparison.json
    (score, alignment, settings, inputs) into `out_dir`, staged; return the JSON's path.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder (created or replaced whole).
    comparison : Comparison
        What `compare` returned.
    inputs : dict
        The input paths, recorded.
    settings : dict
        The settings, recorded.

    Returns
    -------
    pathlib.Path
        The path of comparison.json.
    """
    low, high = float(comparison.map.min()), float(comparison.map.max())
    document = {"score": comparison.score, "inputs": inputs, "settings": settings,
                "alignment": comparison.alignment.to_dict() if comparison.alignment else None,
                "map_range": [low, high], "covered_fraction": float(comparison.covered.mean())}
    with staged_directory(out_dir) as stage:
        save_png(stage / "heatmap.png", overlay(comparison.warped, comparison.map, (low, max(high, low + 1e-6))))
        save_png(stage / "warped.png", comparison.warped)
        (stage / "comparison.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return Path(out_dir) / "comparison.json"
