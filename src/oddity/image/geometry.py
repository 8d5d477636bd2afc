"""Image geometry: model input sizes that keep the aspect ratio, tiles, and maps back at the
original resolution.

Resizing: the short side is scaled to `image_size` and the long side by the same factor, so a
600x250 magnetic-tile crop becomes 614x256 rather than being squashed to a square (squashing
distorts defects and the texture statistics the backbone was trained on). Nothing is padded or
cropped, so a map maps back to the original image by a plain resize. The long side is capped at
`MAX_ASPECT * image_size`, beyond which the whole image is scaled down further (it keeps its
aspect ratio, only its short side shrinks below `image_size`); use tiling for such images.
Detectors that model each position separately (PaDiM) need one input shape: they use
`fixed_shape`, the median training aspect ratio at the same short side, for every image.

Resampling is numpy and scipy only (no torch), so that an exported model's preprocessing and
post-processing run without torch: `resize` applies sparse per-axis weight matrices that
reproduce torch's bilinear interpolation (`align_corners=False`; with `antialias=True` the
triangle filter widened on downscaling, as PIL and torch do).

Tiling: `tile` splits an image (in original pixels) into square tiles of that size that overlap
by a quarter; each tile is then treated as an image. Tile maps are averaged where tiles overlap.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter1d

if TYPE_CHECKING:
    import torch

MAX_ASPECT = 4.0
TILE_OVERLAP = 0.25


def keep_aspect_shape(hw: tuple[int, int], image_size: int) -> tuple[int, int]:
    """Model input (H, W): short side `image_size`, aspect ratio kept, long side capped.

    Parameters
    ----------
    hw : tuple of int
        (H, W) of the image.
    image_size : int
        Short side of the input.

    Returns
    -------
    tuple of int
        (H, W) of the input.
    """
    height, width = hw
    scale = image_size / min(height, width)
    scale = min(scale, MAX_ASPECT * image_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def fixed_shape(sizes: list[tuple[int, int]], image_size: int) -> tuple[int, int]:
    """One input (H, W) for a set of images: short side `image_size`, median aspect ratio.

    Parameters
    ----------
    sizes : list of tuple of int
        (H, W) of each image.
    image_size : int
        Short side of the input.

    Returns
    -------
    tuple of int
        (H, W) of the input.
    """
    ratios = np.array([w / h for h, w in sizes], dtype=np.float64)
    ratio = float(np.median(ratios))
    ratio = min(max(ratio, 1.0 / MAX_ASPECT), MAX_ASPECT)
    if ratio >= 1.0:
        return image_size, max(image_size, round(image_size * ratio))
    return max(image_size, round(image_size / ratio)), image_size


def standardise_contrast(pixels: np.ndarray) -> np.ndarray:
    """Map an image's intensities to one mean (0.45) and spread (std 0.225), all channels
    together so colours keep their relations. Removes illumination and exposure differences
    between images (useful for dark, low-contrast grayscale parts such as magnetic tiles), at a
    price: an anomaly that is only a global change of brightness becomes invisible.

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image.

    Returns
    -------
    numpy.ndarray
        The image with mean 0.45 and standard deviation 0.225.
    """
    mean, std = float(pixels.mean()), float(pixels.std())
    return np.clip(0.45 + (pixels - mean) * (0.225 / max(std, 1e-6)), 0.0, 1.0).astype(np.float32)


def balance_channels(pixels: np.ndarray) -> np.ndarray:
    """Grey-world colour balance: each channel scaled so its mean becomes the mean of all
    three. A white-balance (per-channel gain) change between images is then left as a change
    of overall brightness only, which `standardise_contrast` removes; a grey image is left as
    it is.

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image.

    Returns
    -------
    numpy.ndarray
        The balanced image, float32 clipped to [0, 1].
    """
    means = pixels.reshape(-1, pixels.shape[-1]).mean(axis=0)
    gains = means.mean() / np.maximum(means, 1e-6)
    return np.clip(pixels * gains.astype(np.float32), 0.0, 1.0).astype(np.float32)


def normalised_input(pixels: np.ndarray, shape: tuple[int, int], colour_balance: bool,
                     per_image_contrast: bool) -> np.ndarray:
    """`model_input` with the image's grey-world colour balance and contrast standardisation
    applied after the resize: the statistics are the image's own (per-channel sums and sums of
    squares, one read of the image), the gains and the affine map are applied to the (3, h, w)
    input. This equals `balance_channels` then `standardise_contrast` before the resize up to
    where values are clipped (after the resize here, and the balance's clipping does not enter
    the contrast statistics), at a fraction of the cost for images larger than the input.

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image.
    shape : tuple of int
        (h, w) of the input.
    colour_balance : bool
        Balance the channels (grey world).
    per_image_contrast : bool
        Map the intensities to mean 0.45 and standard deviation 0.225.

    Returns
    -------
    numpy.ndarray
        (3, h, w) float32 in [0, 1].
    """
    x = model_input(pixels, shape)
    if not (colour_balance or per_image_contrast):
        return x
    channels = pixels.reshape(-1, pixels.shape[-1])
    columns = [channels[:, c].astype(np.float64) for c in range(channels.shape[1])]
    means = np.array([column.mean() for column in columns])
    gains = means.mean() / np.maximum(means, 1e-6) if colour_balance else np.ones(len(columns))
    if colour_balance:
        x *= gains.astype(np.float32)[:, None, None]
        np.clip(x, 0.0, 1.0, out=x)
    if per_image_contrast:
        # numpy's own loops (einsum), not BLAS: the same bits on any number of threads
        squares = np.array([np.einsum("i,i->", column, column) / len(column) for column in columns])
        mean = float(np.mean(gains * means))
        std = math.sqrt(max(float(np.mean(gains**2 * squares)) - mean**2, 0.0))
        x -= np.float32(mean)
        x *= np.float32(0.225 / max(std, 1e-6))
        x += np.float32(0.45)
        np.clip(x, 0.0, 1.0, out=x)
    return x


@lru_cache(maxsize=64)
def resize_weights(size_in: int, size_out: int, antialias: bool) -> sparse.csr_array:
    """(size_out, size_in) sparse matrix of bilinear resampling weights along one axis, as
    torch's `interpolate(mode="bilinear", align_corners=False)` computes them (with
    `antialias`, the triangle filter is widened by the downscaling factor)."""
    scale = np.float32(size_in) / np.float32(size_out)  # float32 coordinates, as torch's kernels
    rows, cols, values = [], [], []
    for i in range(size_out):
        if antialias and scale > 1.0:
            centre = scale * (i + 0.5)
            first = max(int(centre - scale + 0.5), 0)
            last = min(int(centre + scale + 0.5), size_in)
            taps = np.arange(first, last)
            weights = np.maximum(0.0, 1.0 - np.abs((taps - centre + 0.5) / scale))
            weights = weights / weights.sum()
        else:
            source = max(scale * np.float32(i + 0.5) - np.float32(0.5), np.float32(0.0))
            low = min(int(source), size_in - 1)
            high = min(low + 1, size_in - 1)
            fraction = float(source - np.float32(low))
            taps, weights = np.array([low, high]), np.array([1.0 - fraction, fraction])
        rows.extend([i] * len(taps))
        cols.extend(taps.tolist())
        values.extend(weights.tolist())
    return sparse.csr_array((np.asarray(values, np.float32), (rows, cols)), shape=(size_out, size_in))


def resize(array: np.ndarray, hw: tuple[int, int], antialias: bool = False) -> np.ndarray:
    """Bilinear resize of an (H, W) or (H, W, C) float array to `hw` (float32).

    Parameters
    ----------
    array : numpy.ndarray
        (H, W) or (H, W, C) float array.
    hw : tuple of int
        Target (H, W).
    antialias : bool, default False
        Average over the source pixels when shrinking.

    Returns
    -------
    numpy.ndarray
        The resized float32 array.
    """
    array = np.asarray(array, dtype=np.float32)
    height, width = array.shape[:2]
    if (height, width) == tuple(hw):
        return array
    rest = array.shape[2:]
    rows = resize_weights(height, hw[0], antialias) @ array.reshape(height, -1)
    rows = rows.reshape(hw[0], width, -1).transpose(1, 0, 2).reshape(width, -1)
    both = resize_weights(width, hw[1], antialias) @ rows
    return np.ascontiguousarray(both.reshape(hw[1], hw[0], -1).transpose(1, 0, 2).reshape(*hw, *rest))


def model_input(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """RGB float (H, W, 3) array to a (3, h, w) float32 array resized (antialiased) to `shape`.

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image.
    shape : tuple of int
        (h, w) of the input.

    Returns
    -------
    numpy.ndarray
        (3, h, w) float32.
    """
    return np.ascontiguousarray(resize(pixels, shape, antialias=True).transpose(2, 0, 1))


def to_tensor(pixels: np.ndarray, shape: tuple[int, int]) -> "torch.Tensor":
    """`model_input` as a (1, 3, h, w) torch tensor.

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image.
    shape : tuple of int
        (h, w) of the input.

    Returns
    -------
    torch.Tensor
        (1, 3, h, w) float32.
    """
    import torch

    return torch.from_numpy(model_input(pixels, shape))[None]


def resize_map(score_map: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map to (H, W).

    Parameters
    ----------
    score_map : numpy.ndarray
        (h, w) map.
    hw : tuple of int
        Target (H, W).

    Returns
    -------
    numpy.ndarray
        (H, W) float32 map.
    """
    return resize(score_map, hw)


def patch_map_to_image(patch_map: np.ndarray, input_hw: tuple[int, int],
                       original_hw: tuple[int, int], sigma: float) -> np.ndarray:
    """Patch scores (h, w) -> map at the model input size, Gaussian-smoothed with `sigma`
    there (as PatchCore and PaDiM do, sigma = 4 at their 224-256 px inputs), then resized to
    the original image size.

    Parameters
    ----------
    patch_map : numpy.ndarray
        (h, w) patch scores.
    input_hw : tuple of int
        (H, W) of the model input.
    original_hw : tuple of int
        (H, W) of the image.
    sigma : float
        Gaussian sigma in input pixels (0: no smoothing).

    Returns
    -------
    numpy.ndarray
        (H, W) float32 map at the image's size.
    """
    rows = map_weights(patch_map.shape[0], input_hw[0], original_hw[0], float(sigma))
    cols = map_weights(patch_map.shape[1], input_hw[1], original_hw[1], float(sigma)).T.copy()
    # einsum's own loops, not BLAS: a BLAS product splits differently with its thread count
    # and so changes the last bits, where a map must not depend on the machine's cores
    tall = np.einsum("ij,jk->ik", rows, np.asarray(patch_map, dtype=np.float32), optimize=False)
    return np.einsum("ij,jk->ik", tall, cols, optimize=False)


@lru_cache(maxsize=256)
def map_weights(size_in: int, size_input: int, size_out: int, sigma: float) -> np.ndarray:
    """(size_out, size_in) weights of `patch_map_to_image` along one axis: the three linear
    steps (bilinear upsampling to the model input, Gaussian smoothing there with scipy's kernel
    and repeated edges, bilinear resize to the image) composed in float64 into one matrix, so
    a map is finished by two small matrix products instead of three passes over the image.

    Parameters
    ----------
    size_in : int
        Patch-map length along the axis.
    size_input : int
        Model-input length.
    size_out : int
        Image length.
    sigma : float
        Gaussian sigma in input pixels (0: no smoothing).

    Returns
    -------
    numpy.ndarray
        (size_out, size_in) float32 weights.
    """
    weights = resize_weights(size_in, size_input, False).toarray().astype(np.float64)
    if sigma > 0:  # smoothing each column of the upsampling matrix = smoothing matrix @ it
        weights = gaussian_filter1d(weights, sigma, axis=0, mode="nearest", truncate=4.0)
    if size_out != size_input:
        weights = resize_weights(size_input, size_out, False).toarray().astype(np.float64) @ weights
    return weights.astype(np.float32)


def tile_boxes(hw: tuple[int, int], tile: int) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of overlapping square tiles covering an (H, W) image.

    Parameters
    ----------
    hw : tuple of int
        (H, W) of the image.
    tile : int
        Side of a tile.

    Returns
    -------
    list of tuple of int
        The tiles' boxes.
    """

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        step = tile * (1.0 - TILE_OVERLAP)
        count = math.ceil((length - tile) / step) + 1
        return [round(i * (length - tile) / (count - 1)) for i in range(count)]

    height, width = hw
    return [
        (top, left, min(top + tile, height), min(left + tile, width))
        for top in starts(height)
        for left in starts(width)
    ]


def stitch(maps: list[np.ndarray], boxes: list[tuple[int, int, int, int]], hw: tuple[int, int]) -> np.ndarray:
    """Average tile maps into one (H, W) map.

    Parameters
    ----------
    maps : list of numpy.ndarray
        One map per tile, at the tile's size.
    boxes : list of tuple of int
        (top, left, bottom, right) of each tile.
    hw : tuple of int
        Target (H, W).

    Returns
    -------
    numpy.ndarray
        (H, W) map, tiles averaged where they overlap.
    """
    total = np.zeros(hw, dtype=np.float32)
    count = np.zeros(hw, dtype=np.float32)
    for tile_map, (top, left, bottom, right) in zip(maps, boxes):
        total[top:bottom, left:right] += tile_map
        count[top:bottom, left:right] += 1.0
    return total / count
