"""The model input size chosen from the training images: ``image_size="auto"``.

A detector sees each image (or tile) resized so that its short side is the input size. A
defect of d pixels then covers d x scale input pixels, with scale = input size / short side,
and d x scale / 8 cells of a stride-8 feature map: on a 1000 px part scored at 256 px a
20 px defect falls below one cell and is averaged away. The rule keeps the scale at or above
`MIN_SCALE` (so such a defect keeps at least a cell) within a speed budget:

    size = min(MAX_SIZE, max(BASE_SIZE, 32 * round(MIN_SCALE * s / 32)))

where s is the median short side of the training images (of their tiles when tiling), read
from the file headers. Images up to 2 x BASE_SIZE (512 px) score at BASE_SIZE, as with a
fixed size; larger ones at half their short side, rounded to a multiple of 32, up to
MAX_SIZE, the speed budget (4 times the input pixels of BASE_SIZE; the cost in images/s is in
docs/images.md, "Resolution"). Beyond 2 x MAX_SIZE the scale falls below `MIN_SCALE` again:
tile such images explicitly (``tile``), at about one model call per tile. The resolved size is
saved with the model and used as it is on load.
"""
from __future__ import annotations

import numbers

import numpy as np

from oddity.core.errors import ConfigError

AUTO = "auto"
BASE_SIZE = 256  # input short side of images up to 2 x BASE_SIZE: what the detectors were tuned at
MIN_SCALE = 0.5  # smallest input / image short-side ratio kept for larger images
MAX_SIZE = 512  # speed budget: largest input short side chosen automatically
SIZE_STEP = 32  # chosen sizes are multiples of the backbones' largest stride
MIN_SIZE = 32  # smallest input short side a detector accepts


def check_image_size(image_size: object) -> None:
    """Check an `image_size` parameter: ``"auto"`` or a whole number of pixels >= `MIN_SIZE`.

    Parameters
    ----------
    image_size : object
        The value given.

    Raises
    ------
    ConfigError
        If it is neither.
    """
    if image_size == AUTO:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral):
        raise ConfigError(f"image_size must be 'auto' or a whole number of pixels, got {image_size!r}")
    if image_size < MIN_SIZE:
        raise ConfigError(f"image_size must be at least {MIN_SIZE} pixels (or 'auto'), got {image_size}")


def auto_size(sizes: list[tuple[int, int]], tile: int | None = None) -> int:
    """The input short side the rule of the module docstring picks for these images.

    Parameters
    ----------
    sizes : list of tuple of int
        (H, W) of each training image; none (a zero-shot detector) gives `BASE_SIZE`.
    tile : int, optional
        Tile side in image pixels, when images are tiled: a tile's short side is at most this.

    Returns
    -------
    int
        The input short side in pixels.
    """
    if not sizes:
        return BASE_SIZE
    short = float(np.median([min(h, w, tile or h) for h, w in sizes]))
    return min(MAX_SIZE, max(BASE_SIZE, SIZE_STEP * round(MIN_SCALE * short / SIZE_STEP)))


def describe(sizes: list[tuple[int, int]], size: int, tile: int | None = None) -> str:
    """One line saying what `auto_size` chose and why, for the fit output.

    Parameters
    ----------
    sizes : list of tuple of int
        (H, W) of the training images.
    size : int
        The chosen input short side.
    tile : int, optional
        Tile side, when tiling.

    Returns
    -------
    str
        The line.
    """
    short = int(np.median([min(h, w, tile or h) for h, w in sizes])) if sizes else 0
    what = f"tiles of {tile} px" if tile else "training images"
    return (f"image_size auto: {what} have a median short side of {short} px -> model input "
            f"short side {size} px (scale {size / max(short, 1):.2f}; rule: min({MAX_SIZE}, "
            f"max({BASE_SIZE}, {MIN_SCALE} x short side)))")
