"""Image readers: single files, plain folders and the MVTec AD layout.

Every reader returns `ImageSample`s that load lazily. Pixels come back as RGB float32 in
[0, 1], shape (H, W, 3), whatever the file held: grayscale and palette images are expanded,
alpha is dropped (the colour channels are kept as stored), 16-bit images are divided by 65535;
an EXIF orientation tag (photos from phones and cameras) is applied, so pixels, sizes and masks
are those of the image as it is displayed.
A file that cannot be decoded raises a `DataError` naming it; callers that pass
`skip_bad=True` get a warning and the file is left out instead. So does an image outside the
size limits, checked from the header before any pixel is decoded: a side under `MIN_SIDE`
pixels (too little to inspect) or more than `MAX_PIXELS` pixels (Pillow's decompression-bomb
limit: a small file can decode to gigabytes). Arrays given to the API obey the same limits.
Ground-truth masks must be binary: exactly one value for "normal" (0) and at most one other
for "anomalous"; a mask with more values (anti-aliased edges, JPEG noise, class labels) is
refused rather than guessed at, unless the caller names a `mask_threshold` (a fraction of the
mask's brightest value) to binarise it with.

Layouts
- MVTec AD: `ROOT/train/good/*`, `ROOT/test/<defect>/*`, masks in
  `ROOT/ground_truth/<defect>/<stem>_mask.png`; `good` is normal, every other folder anomalous.
- Plain folder to fit on: every image below the folder (recursively).
- Plain folder to score: every image below it; if it has a `good/` sub-folder, images in
  `good/` are labelled normal and images in any other sub-folder anomalous.
"""
from __future__ import annotations

import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from oddity.core.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
MIN_SIDE = 16
EXIF_ORIENTATION = 0x0112
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
NORMAL_FOLDER = "good"

T = TypeVar("T")
R = TypeVar("R")


def check_size(height: int, width: int, name: str, min_side: int = MIN_SIDE) -> None:
    """DataError unless an image of `height` x `width` has at least `min_side` pixels on each
    side and at most MAX_PIXELS pixels.

    Parameters
    ----------
    height, width : int
        The image's size.
    name : str
        The image, for the message.
    min_side : int, default 16
        Smallest side accepted.

    Raises
    ------
    DataError
        If the image is too small or too large.
    """
    if min(height, width) < min_side:
        raise DataError(f"{name}: image is {width}x{height} pixels (WxH); oddity needs at least "
                        f"{min_side} pixels on each side to inspect it; remove it or pass --skip-bad")
    if height * width > MAX_PIXELS:
        raise DataError(f"{name}: image is {width}x{height} = {height * width:,} pixels, above the "
                        f"{MAX_PIXELS:,}-pixel limit (decompression-bomb guard); downscale it or "
                        "pass --skip-bad")


def _header(path: Path, min_side: int = MIN_SIDE) -> Image.Image:
    """The opened image (header read, pixels not decoded yet), size limits checked."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image too large to decode safely ({exc}); downscale it or "
                        "pass --skip-bad") from None
    check_size(image.size[1], image.size[0], str(path), min_side)
    return image


def _open(path: Path, min_side: int = MIN_SIDE) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); replace it or pass --skip-bad")
    try:
        image = _header(path, min_side)
        image.load()
        image = ImageOps.exif_transpose(image)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image oddity can read (PNG, JPEG, BMP or TIFF expected); "
            "remove it or pass --skip-bad"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: corrupt or truncated image ({exc}); replace it or pass --skip-bad") from None
    return image


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB float32 in [0, 1], shape (H, W, 3).

    Parameters
    ----------
    path : str or pathlib.Path
        The image file (PNG, JPEG, BMP, TIFF; grey, RGBA and 16-bit converted).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) float32 in [0, 1].

    Raises
    ------
    DataError
        If the file is missing, empty, corrupt, too large or of an unsupported kind.
    """
    return image_pixels(_open(Path(path)))


def image_pixels(image: Image.Image) -> np.ndarray:
    """A decoded PIL image as RGB float32 in [0, 1], shape (H, W, 3) (the conversions of the
    module docstring); for images that come from memory rather than a file.

    Parameters
    ----------
    image : PIL.Image.Image
        A decoded image.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) float32 in [0, 1].
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        gray = np.clip(pixels / scale, 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.divide(np.asarray(rgb), np.float32(255.0), dtype=np.float32)  # one pass, float32 as before


def read_mask(path: str | Path, expected_hw: tuple[int, int] | None = None,
              threshold: float | None = None) -> np.ndarray:
    """Decode a ground-truth mask to bool (H, W): 0 is normal, the one other value (255, or 1,
    or any single grey level) anomalous. Without `threshold`, a mask holding more than two
    values is a DataError naming the values (see the module docstring); with it, pixels at or
    above `threshold` times the mask's brightest value are anomalous.

    Parameters
    ----------
    path : str or pathlib.Path
        The mask file.
    expected_hw : tuple of int, optional
        (H, W) the mask must have (its image's size).
    threshold : float, optional
        In (0, 1]: binarise a grey (anti-aliased) mask at this fraction of its brightest value.
        Masks that are already binary read the same with any threshold.

    Returns
    -------
    numpy.ndarray
        (H, W) bool, True = anomalous.

    Raises
    ------
    DataError
        If the mask is unreadable, not binary, has several channels or the wrong size.
    """
    path = Path(path)
    image = _open(path, min_side=1)  # a mask must match its image, which is checked
    if image.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = image.convert("L")
    values = np.asarray(image)
    if values.ndim != 2:
        raise DataError(f"{path}: mask has {values.shape[2]} channels; expected a one-channel "
                        "(grey) mask image")
    levels = np.unique(values)
    if threshold is not None:
        mask = values >= threshold * levels[-1] if levels[-1] > 0 else np.zeros(values.shape, bool)
    elif len(levels) > 2 or (len(levels) == 2 and levels[0] != 0):
        shown = ", ".join(f"{v:g}" for v in levels[:8]) + (", ..." if len(levels) > 8 else "")
        raise DataError(f"{path}: mask is not binary, it holds {len(levels)} values ({shown}); "
                        "expected 0 for normal and one value (e.g. 255) for anomalous pixels; "
                        "threshold it (e.g. `--mask-threshold 0.5`), or save masks as PNG (JPEG "
                        "blurs edges)")
    else:
        mask = values > 0
    if expected_hw is not None and mask.shape != tuple(expected_hw):
        raise DataError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is "
            f"{expected_hw[1]}x{expected_hw[0]}; masks must match their image's size"
        )
    return mask


def read_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header only.

    Parameters
    ----------
    path : str or pathlib.Path
        The image file.

    Returns
    -------
    tuple of int
        (H, W).

    Raises
    ------
    DataError
        If the header cannot be read.
    """
    path = Path(path)
    try:
        with _header(path) as image:
            width, height = image.size
            if image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # turned by 90 degrees
                width, height = height, width
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot read the image header ({exc})") from None
    return height, width


@dataclass(frozen=True)
class ImageSample:
    """One image to fit on or score: where it is and, when known, its label and mask."""

    path: Path
    label: int | None = None
    defect: str | None = None
    mask_path: Path | None = None
    mask_threshold: float | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def load(self) -> np.ndarray:
        """Decode the image file (`read_image`).

        Returns
        -------
        numpy.ndarray
            (H, W, 3) float32 in [0, 1].

        Raises
        ------
        DataError
            If the file cannot be decoded.
        """
        return read_image(self.path)

    def load_mask(self, hw: tuple[int, int]) -> np.ndarray:
        """The ground-truth mask, all False for a sample without one.

        Parameters
        ----------
        hw : tuple of int
            (H, W) of the image.

        Returns
        -------
        numpy.ndarray
            (H, W) bool mask.

        Raises
        ------
        DataError
            If the mask cannot be read or has another size.
        """
        if self.mask_path is None:
            return np.zeros(hw, dtype=bool)
        return read_mask(self.mask_path, hw, self.mask_threshold)


@dataclass(frozen=True)
class ArraySample:
    """An in-memory image given to the Python API (H, W, 3) or (H, W), float [0,1] or uint8."""

    pixels: np.ndarray
    name: str

    def load(self) -> np.ndarray:
        """Convert the array (`as_rgb_float`).

        Returns
        -------
        numpy.ndarray
            (H, W, 3) float32 in [0, 1].

        Raises
        ------
        DataError
            On an unsupported shape or pixel type.
        """
        return as_rgb_float(self.pixels, self.name)


def as_rgb_float(pixels: np.ndarray, name: str = "array") -> np.ndarray:
    """Convert an (H, W), (H, W, 1|3|4) uint8/uint16/float array to RGB float32 [0, 1].

    Parameters
    ----------
    pixels : numpy.ndarray
        The image.
    name : str, default "array"
        The image, for messages.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) float32 in [0, 1].

    Raises
    ------
    DataError
        On an unsupported shape or pixel type, or floats outside [0, 1].
    """
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise DataError(f"{name}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    check_size(array.shape[0], array.shape[1], name)
    array = array[:, :, :3] if array.shape[2] == 4 else array
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise DataError(f"{name}: float images must hold finite values in [0, 1]")
        return array.astype(np.float32)
    raise DataError(f"{name}: unsupported pixel type {array.dtype}; use uint8, uint16 or float in [0, 1]")


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _images_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p))


def is_mvtec_category(root: str | Path) -> bool:
    """True if `root` looks like an MVTec AD category (has train/good and test/).

    Parameters
    ----------
    root : str or pathlib.Path
        A folder.

    Returns
    -------
    bool
        Whether it has ``train/good`` and ``test/``.
    """
    root = Path(root)
    return (root / "train" / NORMAL_FOLDER).is_dir() and (root / "test").is_dir()


def training_samples(root: str | Path) -> list[ImageSample]:
    """Normal images to fit on: `train/good` of an MVTec category, else every image below `root`.

    Parameters
    ----------
    root : str or pathlib.Path
        An MVTec category or a folder of normal images.

    Returns
    -------
    list of ImageSample
        The samples, in path order.

    Raises
    ------
    DataError
        If the folder is missing or holds no image.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    folder = root / "train" / NORMAL_FOLDER if is_mvtec_category(root) else root
    paths = [folder] if _is_image(folder) else _images_below(folder)
    if not paths:
        raise DataError(f"{folder}: no images found (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [ImageSample(path=p, label=0, defect=NORMAL_FOLDER) for p in paths]


def evaluation_samples(root: str | Path, mask_threshold: float | None = None) -> list[ImageSample]:
    """Labelled images to evaluate on: `test/` of an MVTec category (with masks), or a folder
    whose `good/` sub-folder holds normal images and other sub-folders anomalous ones.

    Parameters
    ----------
    root : str or pathlib.Path
        The category or folder.
    mask_threshold : float, optional
        Binarise grey ground-truth masks at this fraction of their brightest value (see
        `read_mask`); by default a mask that is not binary is refused when read.

    Returns
    -------
    list of ImageSample
        Labelled samples (label 1 = anomalous, with masks where given).

    Raises
    ------
    DataError
        If the folder is missing, has no images, or holds unlabelled images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    test_root = root / "test" if is_mvtec_category(root) else root
    if not (test_root / NORMAL_FOLDER).is_dir():
        raise DataError(
            f"{test_root}: cannot tell normal from anomalous images; expected a '{NORMAL_FOLDER}/' "
            "sub-folder of normal images beside one sub-folder per defect type"
        )
    samples = []
    for path in _images_below(test_root):
        defect = path.relative_to(test_root).parts[0]
        if defect == path.name:
            raise DataError(f"{path}: images directly in {test_root} have no label; move it into a sub-folder")
        mask_path = None
        if defect != NORMAL_FOLDER:
            candidate = root / "ground_truth" / defect / f"{path.stem}_mask.png"
            mask_path = candidate if candidate.is_file() else None
        samples.append(ImageSample(path, int(defect != NORMAL_FOLDER), defect, mask_path, mask_threshold))
    if not samples:
        raise DataError(f"{test_root}: no images found")
    return samples


def unlabelled_samples(inputs: Sequence[str | Path]) -> list[ImageSample]:
    """Images to score from files and/or folders (folders are searched recursively).

    Parameters
    ----------
    inputs : sequence of str or pathlib.Path
        Image files and folders.

    Returns
    -------
    list of ImageSample
        The samples (no labels).

    Raises
    ------
    DataError
        If an input is missing or a folder holds no image.
    """
    samples: list[ImageSample] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = _images_below(path)
            if not found:
                raise DataError(f"{path}: no images found in this folder")
            samples.extend(ImageSample(p) for p in found)
        elif path.is_file():
            samples.append(ImageSample(path))
        else:
            raise DataError(f"{path}: no such file or folder")
    return samples


def prefetch(items: Iterable[T], load: Callable[[T], R], depth: int = 4) -> Iterator[tuple[T, R]]:
    """Yield (item, load(item)) in order while up to `depth` loads run ahead in threads.

    Decoding (PIL releases the GIL) overlaps with model compute; the bounded queue keeps
    memory flat however many images there are.

    Parameters
    ----------
    items : iterable
        The items.
    load : callable
        Loads one item (runs in a thread).
    depth : int, default 4
        Loads running ahead.

    Yields
    ------
    tuple
        (item, load(item)), in order.
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque = deque()
        iterator = iter(items)
        for item in iterator:
            pending.append((item, pool.submit(load, item)))
            if len(pending) >= depth:
                break
        while pending:
            item, future = pending.popleft()
            nxt = next(iterator, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(load, nxt)))
            yield item, future.result()


def skip_bad_file(sample, error: DataError, skip_bad: bool, skipped: set[str] | None) -> None:
    """Raise `error` about `sample`, or under `skip_bad` warn that it is skipped (recording its
    name in `skipped` when given).

    Parameters
    ----------
    sample : ImageSample or ArraySample
        The sample that failed.
    error : DataError
        Why.
    skip_bad : bool
        Warn and go on (True) or raise.
    skipped : set of str, optional
        Names of the skipped files.

    Raises
    ------
    DataError
        `error`, unless `skip_bad`.
    """
    if not skip_bad:
        raise error
    warnings.warn(f"skipped: {error}", stacklevel=3)
    if skipped is not None:
        skipped.add(sample.name)


def load_all(samples: Sequence, skip_bad: bool, skipped: set[str] | None = None,
             load: Callable | None = None, depth: int = 4) -> Iterator[tuple[object, object]]:
    """Decode samples in order with prefetching; on `skip_bad`, warn about and skip bad files
    (their names are added to `skipped` when given). `load(sample)` (default `sample.load()`)
    runs in the prefetch threads, so preprocessing done there overlaps with the caller too;
    up to `depth` samples are loaded ahead.

    Parameters
    ----------
    samples : sequence
        Samples to decode.
    skip_bad : bool
        Skip unreadable files with a warning instead of raising.
    skipped : set of str, optional
        Receives the names of skipped files.
    load : callable, optional
        Loads one sample (default ``sample.load()``).
    depth : int, default 4
        Samples loaded ahead.

    Yields
    ------
    tuple
        (sample, loaded pixels), in order.

    Raises
    ------
    DataError
        On an unreadable file, unless `skip_bad`.
    """

    def safe_load(sample):
        try:
            return sample.load() if load is None else load(sample)
        except DataError as exc:
            skip_bad_file(sample, exc, skip_bad, skipped)
            return None

    for sample, pixels in prefetch(samples, safe_load, depth):
        if pixels is not None:
            yield sample, pixels
