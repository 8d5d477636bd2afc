"""Synthetic inspection data: procedural textures with drawn defects and exact masks.

Used by `oddity demo` and by tests, so that the whole pipeline runs offline on data whose
ground truth is known pixel for pixel. One data set is one "product": a texture family
(`woven` cloth, `marble` stone, wood-like `stripes`) whose colours and scale are drawn once
from the seed; every image then gets its own noise and phase, so normal images differ the way
real parts do. Defects are painted into a copy of a normal image and the mask is exactly the
set of pixels painted (`result = where(mask, painted, image)`), so masks cover every changed
pixel and nothing else. Everything is drawn from `numpy.random.default_rng([seed, index])`:
same seed, same images, whatever the order they are generated in.

Sections: noise (Perlin and fractal noise), textures, defects, synthetic anomalies for
training self-supervised detectors (DRAEM's Perlin-mask texture anomalies, CutPaste), natural
images that ship offline, and the MVTec-layout writer.

Foreign textures: DRAEM fills its anomaly masks with images from the Describable Textures
Dataset, which we cannot download. `foreign_texture` makes them instead, procedurally (one of
the texture families above in random colours, or a fractal colour cloud) or, when source
images are given (a detector's own training images), from a randomly flipped and rotated
source image; either way followed by DRAEM's strong colour augmentation (`colour_jitter`), so
a texture taken from a normal image no longer looks normal. Training-time generators take a
`numpy.random.Generator` and draw everything from it: same generator state, same anomaly.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt, map_coordinates

from oddity.core.errors import ConfigError
from oddity.core.persistence import staged_directory
from oddity.image.data import read_image

TEXTURES = ("woven", "marble", "stripes")
DEFECTS = ("scratch", "spot", "cut")


# --- noise ------------------------------------------------------------------------------
def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(shape: tuple[int, int], cells: int | tuple[int, int],
                 rng: np.random.Generator) -> np.ndarray:
    """Perlin gradient noise of shape (H, W) in about [-1, 1], with `cells` lattice cells
    along each axis (more cells, finer noise): random unit gradients at the lattice corners,
    blended with the quintic fade curve (Perlin, "Improving Noise", SIGGRAPH 2002).

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    cells : int or tuple of int
        Lattice cells per axis.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        (H, W) noise.
    """
    height, width = shape
    cells_y, cells_x = (cells, cells) if isinstance(cells, int) else cells
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(cells_y + 1, cells_x + 1))
    grad_y, grad_x = np.sin(angles), np.cos(angles)
    ys = np.arange(height) * (cells_y / height)
    xs = np.arange(width) * (cells_x / width)
    y0, x0 = ys.astype(int)[:, None], xs.astype(int)[None, :]
    fy, fx = (ys - np.floor(ys))[:, None], (xs - np.floor(xs))[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        return grad_y[y0 + dy, x0 + dx] * (fy - dy) + grad_x[y0 + dy, x0 + dx] * (fx - dx)

    u, v = _fade(fx), _fade(fy)
    top = corner(0, 0) + u * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + u * (corner(1, 1) - corner(1, 0))
    return (np.sqrt(2.0) * (top + v * (bottom - top))).astype(np.float32)


def fractal_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator,
                  octaves: int = 4, persistence: float = 0.5) -> np.ndarray:
    """Sum of `octaves` Perlin noises, each with twice the cells and `persistence` times the
    amplitude of the previous one, normalised back to about [-1, 1].

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    cells : int
        Lattice cells of the first octave.
    rng : numpy.random.Generator
        Source of randomness.
    octaves : int, default 4
        Noises summed.
    persistence : float, default 0.5
        Amplitude ratio between octaves.

    Returns
    -------
    numpy.ndarray
        (H, W) noise.
    """
    total = np.zeros(shape, dtype=np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * perlin_noise(shape, cells * 2**octave, rng)
        norm += amplitude
        amplitude *= persistence
    return total / norm


# --- textures ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TextureStyle:
    """What all images of one synthetic product share: texture family, two colours that the
    pattern blends between, pattern period (fraction of the image size) and orientation."""

    kind: str
    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]
    period: float
    angle: float


def texture_style(kind: str, rng: np.random.Generator) -> TextureStyle:
    """Draw the colours, scale and orientation of a product of texture family `kind`.

    Parameters
    ----------
    kind : str
        "woven", "marble" or "stripes".
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    TextureStyle
        The style.
    """
    if kind not in TEXTURES:
        raise ConfigError(f"unknown texture {kind!r}; choose one of: {', '.join(TEXTURES)}")
    hue = rng.uniform(0.0, 1.0)
    base = 0.5 + 0.35 * np.cos(2.0 * np.pi * (hue + np.array([0.0, 1 / 3, 2 / 3])))
    dark = tuple(float(c) for c in 0.45 * base)
    light = tuple(float(c) for c in 0.3 + 0.6 * base)
    return TextureStyle(kind, dark, light, period=float(rng.uniform(0.05, 0.09)),
                        angle=float(rng.uniform(0.0, np.pi)))


def _woven(style: TextureStyle, grid: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    y, x = grid
    period = style.period
    y = y + rng.uniform(0, period)
    x = x + rng.uniform(0, period)
    over = (np.floor(y / period) + np.floor(x / period)) % 2 == 0
    warp = np.abs(np.sin(np.pi * x / period))
    weft = np.abs(np.sin(np.pi * y / period))
    return np.where(over, warp, weft) ** 0.6


def _marble(style: TextureStyle, grid: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    shape = grid[0].shape
    veins = np.sin(2.0 * np.pi * (grid[1] * np.cos(style.angle) + grid[0] * np.sin(style.angle))
                   / (3 * style.period) + 6.0 * fractal_noise(shape, 3, rng))
    return 0.5 + 0.5 * veins


def _stripes(style: TextureStyle, grid: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    shape = grid[0].shape
    across = grid[1] * np.cos(style.angle) + grid[0] * np.sin(style.angle)
    warp = 0.6 * style.period * fractal_noise(shape, 2, rng, octaves=2)
    return 0.5 + 0.5 * np.sin(2.0 * np.pi * (across + warp) / style.period + rng.uniform(0, 2 * np.pi))


_PATTERNS: dict[str, Callable[[TextureStyle, tuple[np.ndarray, np.ndarray], np.random.Generator], np.ndarray]] = {
    "woven": _woven, "marble": _marble, "stripes": _stripes,
}


def render_texture(style: TextureStyle, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One normal image of the product `style`: RGB float32 (H, W, 3) in [0, 1]. The pattern
    (in [0, 1]) blends the two colours; fine grain noise is added on top.

    Parameters
    ----------
    style : TextureStyle
        The product's look (`texture_style`).
    shape : tuple of int
        (H, W).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        The image.
    """
    height, width = shape
    scale = float(max(height, width))
    grid = np.meshgrid(np.arange(height) / scale, np.arange(width) / scale, indexing="ij")
    pattern = _PATTERNS[style.kind](style, grid, rng)
    pattern = pattern + 0.08 * fractal_noise(shape, max(2, round(scale / 16)), rng, octaves=2)
    a, b = np.array(style.colour_a, np.float32), np.array(style.colour_b, np.float32)
    image = a + np.clip(pattern, 0.0, 1.0)[:, :, None].astype(np.float32) * (b - a)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# --- defects ----------------------------------------------------------------------------
def _contrast_colour(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour far from the mean of `region`: dark on light material, light on dark."""
    tint = rng.uniform(0.0, 0.25, size=3)
    return (tint if region.mean() > 0.45 else 1.0 - tint).astype(np.float32)


def _scratch(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thin curved line: a quadratic Bezier curve, 1-3 px wide at 128 px, light or dark."""
    height, width = image.shape[:2]
    size = min(height, width)
    start = rng.uniform(0.2, 0.8, 2) * (height, width)
    direction = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.3, 0.5) * size
    end = start + length * np.array([np.sin(direction), np.cos(direction)])
    bend = (start + end) / 2 + rng.uniform(-0.25, 0.25, 2) * length
    t = np.linspace(0.0, 1.0, int(4 * length))[:, None]
    points = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t**2 * end
    points = np.round(points).astype(int)
    inside = (points[:, 0] >= 0) & (points[:, 0] < height) & (points[:, 1] >= 0) & (points[:, 1] < width)
    line = np.zeros((height, width), dtype=bool)
    line[points[inside, 0], points[inside, 1]] = True
    half_width = rng.uniform(0.5, 1.2) * max(1.0, size / 128)
    mask = distance_transform_edt(~line) <= half_width
    painted = np.broadcast_to(_contrast_colour(image[mask], rng), image.shape)
    return painted, mask


def _spot(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A stain: a blob with a wavy outline, filled with a contrasting colour over a trace of
    the texture below it."""
    height, width = image.shape[:2]
    size = min(height, width)
    centre = rng.uniform(0.2, 0.8, 2) * (height, width)
    radius = rng.uniform(0.05, 0.1) * size
    yy, xx = np.mgrid[:height, :width]
    angle = np.arctan2(yy - centre[0], xx - centre[1])
    wobble = sum(rng.uniform(0.05, 0.15) * np.sin(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    mask = np.hypot(yy - centre[0], xx - centre[1]) <= radius * (1.0 + wobble)
    colour = _contrast_colour(image[mask], rng)
    return 0.25 * image + 0.75 * colour, mask


def _cut(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A cut: a thin straight slot in which the material is dark and displaced, as if the
    strip had been pushed along the cut."""
    height, width = image.shape[:2]
    size = min(height, width)
    centre = rng.uniform(0.25, 0.75, 2) * (height, width)
    direction = rng.uniform(0, np.pi)
    along_axis = np.array([np.sin(direction), np.cos(direction)])
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    along = (yy - centre[0]) * along_axis[0] + (xx - centre[1]) * along_axis[1]
    across = -(yy - centre[0]) * along_axis[1] + (xx - centre[1]) * along_axis[0]
    half_length = rng.uniform(0.12, 0.25) * size
    half_width = rng.uniform(0.015, 0.03) * size + 0.75
    mask = (np.abs(along) <= half_length) & (np.abs(across) <= half_width)
    shift = rng.uniform(0.05, 0.1) * size * along_axis
    shifted = np.stack([map_coordinates(image[:, :, c], [yy - shift[0], xx - shift[1]], order=1, mode="reflect")
                        for c in range(3)], axis=2)
    return 0.35 * shifted, mask


_DEFECT_PAINTERS: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "scratch": _scratch, "spot": _spot, "cut": _cut,
}


def draw_defect(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint a defect of `kind` (scratch, spot or cut) on a copy of an (H, W, 3) float image:
    (defective image, bool mask of exactly the painted pixels).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, 3) float image.
    kind : str
        "scratch", "spot" or "cut".
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    tuple of numpy.ndarray
        (defective image, mask).
    """
    if kind not in _DEFECT_PAINTERS:
        raise ConfigError(f"unknown defect {kind!r}; choose from: {', '.join(DEFECTS)}")
    painted, mask = _DEFECT_PAINTERS[kind](image, rng)
    result = np.where(mask[:, :, None], np.clip(painted, 0.0, 1.0), image).astype(np.float32)
    return result, mask


# --- synthetic anomalies for training ----------------------------------------------------
def _rotate(array: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate an (H, W) or (H, W, C) float array about its centre, mirroring at the border."""
    height, width = array.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), degrees, 1.0)
    return cv2.warpAffine(array, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator, *, threshold: float = 0.5,
                max_exponent: int = 6) -> np.ndarray:
    """DRAEM's anomaly shape: Perlin noise with 2**a x 2**b lattice cells (a, b drawn from
    0..max_exponent-1, so blobs from image-sized to fine speckle), rotated by a random angle in
    [-90, 90] degrees, thresholded at `threshold`. A bool (H, W) mask, which may be empty
    (the noise can stay below the threshold); DRAEM then trains on a normal sample.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    rng : numpy.random.Generator
        Source of randomness.
    threshold : float, default 0.5
        Noise level above which the mask is set.
    max_exponent : int, default 6
        Exponents of the lattice are drawn below it.

    Returns
    -------
    numpy.ndarray
        (H, W) bool mask.
    """
    if max_exponent < 1:
        raise ConfigError(f"max_exponent must be at least 1, got {max_exponent}")
    cells = tuple(int(2 ** e) for e in rng.integers(0, max_exponent, size=2))
    noise = perlin_noise(shape, cells, rng)  # type: ignore[arg-type]
    return _rotate(noise, float(rng.uniform(-90.0, 90.0))) > threshold


def _hue_saturation(image: np.ndarray, hue_degrees: float, saturation: float) -> np.ndarray:
    hsv = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0] + hue_degrees) % 360.0
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * saturation, 0.0, 1.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _equalize(image: np.ndarray) -> np.ndarray:
    levels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return np.stack([cv2.equalizeHist(np.ascontiguousarray(levels[:, :, c])) for c in range(3)],
                    axis=2).astype(np.float32) / 255.0


def _posterize(image: np.ndarray, bits: int) -> np.ndarray:
    levels = 2**bits
    return np.floor(np.clip(image, 0.0, 1.0) * (levels - 1e-6)) / (levels - 1)


def _autocontrast(image: np.ndarray) -> np.ndarray:
    low, high = image.min(axis=(0, 1)), image.max(axis=(0, 1))
    return (image - low) / np.maximum(high - low, 1e-6)


# DRAEM's anomaly-source augmentations (imgaug in the paper's code), the colour ones here.
_COLOUR_OPS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "gamma": lambda im, rng: np.clip(im, 0.0, 1.0) ** rng.uniform(0.5, 2.0),
    "brightness": lambda im, rng: im * rng.uniform(0.8, 1.2) + rng.uniform(-30, 30) / 255.0,
    "hue_saturation": lambda im, rng: _hue_saturation(im, rng.uniform(-70, 70), rng.uniform(0.5, 1.5)),
    "solarize": lambda im, rng: np.where(im > rng.uniform(32, 128) / 255.0, 1.0 - im, im),
    "posterize": lambda im, rng: _posterize(im, int(rng.integers(1, 6))),
    "invert": lambda im, rng: 1.0 - im,
    "autocontrast": lambda im, rng: _autocontrast(im),
    "equalize": lambda im, rng: _equalize(im),
}


def colour_jitter(image: np.ndarray, rng: np.random.Generator, count: int = 3) -> np.ndarray:
    """DRAEM's strong augmentation of an anomaly source: `count` distinct operations drawn
    from gamma, brightness, hue/saturation, solarize, posterize, invert, autocontrast and
    equalize, applied in random order to an (H, W, 3) float image; result in [0, 1].

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, 3) float image.
    rng : numpy.random.Generator
        Source of randomness.
    count : int, default 3
        Operations applied.

    Returns
    -------
    numpy.ndarray
        The augmented image.
    """
    names = list(_COLOUR_OPS)
    for index in rng.choice(len(names), size=min(count, len(names)), replace=False):
        image = np.clip(_COLOUR_OPS[names[index]](image, rng), 0.0, 1.0).astype(np.float32)
    return image


def procedural_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A texture made from nothing: a random texture family (woven, marble, stripes) in
    random colours, or a fractal colour cloud (independent fractal noise per channel, coarse
    to fine); RGB float32 (H, W, 3) in [0, 1].

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        The texture.
    """
    kind = int(rng.integers(0, len(TEXTURES) + 1))
    if kind < len(TEXTURES):
        return render_texture(texture_style(TEXTURES[kind], rng), shape, rng)
    cells = int(2 ** rng.integers(1, 5))
    cloud = np.stack([fractal_noise(shape, cells, rng, octaves=3) for _ in range(3)], axis=2)
    return np.clip(0.5 + 0.6 * cloud, 0.0, 1.0).astype(np.float32)


def foreign_texture(shape: tuple[int, int], rng: np.random.Generator,
                    sources: Sequence[np.ndarray] = ()) -> np.ndarray:
    """A texture to fill a synthetic anomaly (our stand-in for DTD, see the module doc): with
    no `sources`, or with probability 1/2, a procedural texture; otherwise a random source
    image, randomly flipped and turned by a multiple of 90 degrees, resized to `shape`. Then
    `colour_jitter` (3 operations). RGB float32 (H, W, 3) in [0, 1].

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    rng : numpy.random.Generator
        Source of randomness.
    sources : sequence of numpy.ndarray
        Images to take textures from.

    Returns
    -------
    numpy.ndarray
        The texture.
    """
    if not sources or rng.random() < 0.5:
        texture = procedural_texture(shape, rng)
    else:
        texture = np.rot90(sources[int(rng.integers(len(sources)))], k=int(rng.integers(4)))
        if rng.random() < 0.5:
            texture = texture[:, ::-1]
        texture = cv2.resize(np.ascontiguousarray(texture, dtype=np.float32), shape[::-1],
                             interpolation=cv2.INTER_AREA)
    return colour_jitter(texture, rng)


def texture_anomaly(image: np.ndarray, rng: np.random.Generator, *, sources: Sequence[np.ndarray] = (),
                    opacity: tuple[float, float] = (0.1, 1.0), max_exponent: int = 6,
                    min_change: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """DRAEM's simulated anomaly on an (H, W, 3) float image: a `perlin_mask` M filled with a
    `foreign_texture` A at opacity beta ~ U(opacity): (1 - M) I + M ((1 - beta) I + beta A).
    Returns (anomalous image, bool mask M); M may be empty (see `perlin_mask`). With
    `min_change` > 0 the mask keeps only the pixels whose largest channel change exceeds it:
    a texture taken from a training image can match the image where it lands (white
    background on white background), and a pixel that did not change is no anomaly to learn.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, 3) float image.
    rng : numpy.random.Generator
        Source of randomness.
    sources : sequence of numpy.ndarray
        Images to take textures from.
    opacity : tuple of float
        Range of beta.
    max_exponent : int, default 6
        See `perlin_mask`.
    min_change : float, default 0.0
        Smallest channel change a masked pixel must show.

    Returns
    -------
    tuple of numpy.ndarray
        (anomalous image, mask).
    """
    mask = perlin_mask(image.shape[:2], rng, max_exponent=max_exponent)
    if not mask.any():
        return image.astype(np.float32, copy=True), mask
    texture = foreign_texture(image.shape[:2], rng, sources)
    beta = rng.uniform(*opacity)
    blended = (1.0 - beta) * image + beta * texture
    if min_change > 0:
        mask &= np.abs(blended - image).max(axis=2) > min_change
    return np.where(mask[:, :, None], blended, image).astype(np.float32), mask


def cut_paste(image: np.ndarray, rng: np.random.Generator, *, source: np.ndarray | None = None,
              area: tuple[float, float] = (0.02, 0.15), aspect: tuple[float, float] = (0.3, 3.3),
              jitter: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """CutPaste (Li, Sohn, Yoon and Pfister, "CutPaste: Self-Supervised Learning for Anomaly
    Detection and Localization", CVPR 2021): a rectangle of `area` (fraction of the image) and
    `aspect` ratio (log-uniform) is cut from `source` (default: the image itself; another
    training image works too and is resized to the image's size), colour-jittered (brightness,
    contrast, saturation and hue, each by up to `jitter`, as the paper's ColorJitter) and
    pasted at another random place. Returns (image, bool mask of the pasted rectangle).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, 3) float image.
    rng : numpy.random.Generator
        Source of randomness.
    source : numpy.ndarray, optional
        Image the patch is cut from.
    area : tuple of float
        Range of the patch's area, as a fraction of the image.
    aspect : tuple of float
        Range of its aspect ratio.
    jitter : float, default 0.1
        Colour-jitter strength.

    Returns
    -------
    tuple of numpy.ndarray
        (image, mask).
    """
    height, width = image.shape[:2]
    if source is None:
        source = image
    elif source.shape[:2] != (height, width):
        source = cv2.resize(np.ascontiguousarray(source, dtype=np.float32), (width, height),
                            interpolation=cv2.INTER_AREA)
    ratio = float(np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1]))))
    patch_area = rng.uniform(*area) * height * width
    patch_h = int(np.clip(round(np.sqrt(patch_area / ratio)), 1, height))
    patch_w = int(np.clip(round(np.sqrt(patch_area * ratio)), 1, width))
    top, left = int(rng.integers(height - patch_h + 1)), int(rng.integers(width - patch_w + 1))
    patch = np.asarray(source[top:top + patch_h, left:left + patch_w], dtype=np.float32)
    patch = patch * rng.uniform(1 - jitter, 1 + jitter)
    patch = patch.mean() + (patch - patch.mean()) * rng.uniform(1 - jitter, 1 + jitter)
    grey = patch.mean(axis=2, keepdims=True)
    patch = grey + (patch - grey) * rng.uniform(1 - jitter, 1 + jitter)
    patch = _hue_saturation(np.clip(patch, 0.0, 1.0), rng.uniform(-jitter, jitter) * 360.0, 1.0)
    top, left = int(rng.integers(height - patch_h + 1)), int(rng.integers(width - patch_w + 1))
    result = image.astype(np.float32, copy=True)
    result[top:top + patch_h, left:left + patch_w] = np.clip(patch, 0.0, 1.0)
    mask = np.zeros((height, width), dtype=bool)
    mask[top:top + patch_h, left:left + patch_w] = True
    return result, mask


# --- natural images -----------------------------------------------------------------------
# Photographs, micrographs and material textures inside scikit-image's wheel (skimage/data/);
# the module's other images need pooch and a download, so they are never asked for.
NATURAL_IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png",
                  "coins.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "page.png",
                  "text.png", "clock_motion.png", "brick.png", "grass.png", "gravel.png",
                  "cell.png", "color.png", "retina.jpg", "horse.png", "logo.png",
                  "microaneurysms.png", "motorcycle_left.png")


def natural_images(cover: tuple[int, int]) -> list[np.ndarray]:
    """The NATURAL_IMAGES found in the installed scikit-image (read from its files, never
    through its downloader), RGB float32 (H, W, 3) in [0, 1], each resized (aspect kept) to
    the smallest size that covers `cover` = (height, width). Missing files, or no
    scikit-image at all, give fewer images or none.

    Parameters
    ----------
    cover : tuple of int
        (height, width) each image must cover.

    Returns
    -------
    list of numpy.ndarray
        The images.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "data"
    images = []
    for name in NATURAL_IMAGES:
        if not (folder / name).is_file():
            continue
        image = read_image(folder / name)
        scale = max(c / s for c, s in zip(cover, image.shape[:2]))
        size = tuple(max(c, round(s * scale)) for c, s in zip(cover, image.shape[:2]))
        resized = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        images.append(np.clip(resized, 0.0, 1.0))
    return images


# --- data sets --------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthImage:
    """One generated image: its split ('train'/'test'), folder ('good' or the defect name),
    file stem, RGB float pixels and, for defects, the bool mask."""

    split: str
    folder: str
    stem: str
    pixels: np.ndarray
    mask: np.ndarray | None = None


def inspection_images(*, n_train: int = 40, n_test_good: int = 10, n_test_defect: int = 5,
                      size: int = 128, seed: int = 0, texture: str = "woven",
                      defects: Sequence[str] = DEFECTS) -> Iterator[SynthImage]:
    """Generate a synthetic product in memory: `n_train` normal training images, `n_test_good`
    normal test images and `n_test_defect` test images per defect kind, all `size` x `size`.

    Parameters
    ----------
    n_train, n_test_good, n_test_defect : int
        Image counts (defective ones per kind).
    size : int, default 128
        Side in pixels.
    seed : int, default 0
        Seed of everything.
    texture : str, default "woven"
        Texture family.
    defects : sequence of str
        Defect kinds.

    Yields
    ------
    SynthImage
        Image, split, label and mask.
    """
    for name, count in (("n_train", n_train), ("n_test_good", n_test_good), ("n_test_defect", n_test_defect)):
        if count < 0:
            raise ConfigError(f"{name} must be >= 0, got {count}")
    if size < 32:
        raise ConfigError(f"size must be at least 32 pixels, got {size}")
    style = texture_style(texture, np.random.default_rng([seed, 0]))
    plan = ([("train", "good")] * n_train + [("test", "good")] * n_test_good
            + [("test", kind) for kind in defects for _ in range(n_test_defect)])
    counters: dict[tuple[str, str], int] = {}
    for index, (split, folder) in enumerate(plan, start=1):
        rng = np.random.default_rng([seed, index])
        number = counters[split, folder] = counters.get((split, folder), -1) + 1
        pixels = render_texture(style, (size, size), rng)
        mask = None
        if folder != "good":
            pixels, mask = draw_defect(pixels, folder, rng)
        yield SynthImage(split, folder, f"{number:03d}", pixels, mask)


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG")


def make_inspection_set(root: str | os.PathLike, *, n_train: int = 40, n_test_good: int = 10,
                        n_test_defect: int = 5, size: int = 128, seed: int = 0,
                        texture: str = "woven", defects: Sequence[str] = DEFECTS) -> Path:
    """Write a synthetic product in the MVTec AD layout under `root` (train/good, test/good,
    test/<defect>, ground_truth/<defect>/<stem>_mask.png) and return `root`. The set is
    staged and moved into place at the end, so an interrupted run leaves no partial set.

    Parameters
    ----------
    root : str or os.PathLike
        The category folder to create.
    n_train, n_test_good, n_test_defect : int
        Image counts (defective ones per kind).
    size : int, default 128
        Side in pixels.
    seed : int, default 0
        Seed of everything.
    texture : str, default "woven"
        Texture family.
    defects : sequence of str
        Defect kinds.

    Returns
    -------
    pathlib.Path
        `root`.
    """
    root = Path(root)
    with staged_directory(root) as stage:
        for item in inspection_images(n_train=n_train, n_test_good=n_test_good,
                                      n_test_defect=n_test_defect, size=size, seed=seed,
                                      texture=texture, defects=defects):
            folder = stage / item.split / item.folder
            folder.mkdir(parents=True, exist_ok=True)
            _save_png(np.round(item.pixels * 255).astype(np.uint8), folder / f"{item.stem}.png")
            if item.mask is not None:
                mask_folder = stage / "ground_truth" / item.folder
                mask_folder.mkdir(parents=True, exist_ok=True)
                _save_png(item.mask.astype(np.uint8) * 255, mask_folder / f"{item.stem}_mask.png")
    return root
