"""Uploaded images: sniffed, bounded and decoded in memory, never trusted from their names.

The type of an upload is read from its first bytes (PNG, JPEG, BMP or TIFF signatures); the
file name and the declared content type are ignored. The pixel count is read from the header
and refused above the limit before anything is decoded, so a small file that would expand to
gigabytes (a decompression bomb) costs nothing. Pixels come back as oddity's images do
(`oddity.image.data.image_pixels`): RGB float32 in [0, 1].
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from oddity.image.data import image_pixels
from oddity.serve.errors import Refusal

SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "PNG"),
    (b"\xff\xd8\xff", "image/jpeg", "JPEG"),
    (b"BM", "image/bmp", "BMP"),
    (b"II*\x00", "image/tiff", "TIFF"),
    (b"MM\x00*", "image/tiff", "TIFF"),
)


@dataclass(frozen=True)
class Upload:
    """A decoded upload: its bytes as received, sniffed media type and RGB pixels."""

    name: str
    data: bytes
    media_type: str
    pixels: np.ndarray

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])


def sniff(data: bytes) -> tuple[str, str] | None:
    """The image type of `data`, read from its leading bytes.

    Parameters
    ----------
    data : bytes
        The file as received.

    Returns
    -------
    tuple of (str, str) or None
        (media type, PIL format), e.g. ``("image/png", "PNG")``; None if not a PNG, JPEG,
        BMP or TIFF image.

    Examples
    --------
    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...")
    ('image/png', 'PNG')
    >>> sniff(b"<html>") is None
    True
    """
    for signature, media_type, pil_format in SIGNATURES:
        if data.startswith(signature):
            return media_type, pil_format
    return None


def check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image of more than `max_pixels` pixels or with no pixels.

    Parameters
    ----------
    name : str
        The client's name for the file, used in messages only.
    width : int
        Image width from its header.
    height : int
        Image height from its header.
    max_pixels : int
        Largest width x height accepted.

    Raises
    ------
    Refusal
        422 if width or height is not positive; 413 if width x height exceeds `max_pixels`.
    """
    if width <= 0 or height <= 0:
        raise Refusal(422, "empty_image", f"{name}: the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise Refusal(413, "too_many_pixels",
                      f"{name}: {width}x{height} = {width * height} pixels, more than the limit of "
                      f"{max_pixels}; send a smaller image or raise --max-pixels")


def decode_upload(name: str, data: bytes, max_pixels: int) -> Upload:
    """Sniff, bound and decode one uploaded image.

    Parameters
    ----------
    name : str
        The client's name for the file, used in messages only.
    data : bytes
        The file as received.
    max_pixels : int
        Largest width x height accepted.

    Returns
    -------
    Upload

    Raises
    ------
    Refusal
        415 if the bytes are not a PNG, JPEG, BMP or TIFF image; 413 if the image has too many
        pixels; 422 if it is empty, corrupt or truncated.
    """
    if not data:
        raise Refusal(422, "empty_file", f"{name}: the file is empty (0 bytes)")
    sniffed = sniff(data)
    if sniffed is None:
        raise Refusal(415, "unsupported_type",
                      f"{name}: not a PNG, JPEG, BMP or TIFF image (checked from its content, "
                      "not its name); convert it to PNG")
    media_type, pil_format = sniffed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[pil_format])
            check_pixels(name, *image.size, max_pixels)
            image.load()
            pixels = image_pixels(image)
    except Refusal:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Refusal(413, "too_many_pixels", f"{name}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise Refusal(422, "corrupt_image", f"{name}: corrupt or truncated {pil_format} image ({exc})") from None
    return Upload(name=name, data=data, media_type=media_type, pixels=pixels)


def encode_png(pixels: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of an image array, with fast compression (level 1).

    Parameters
    ----------
    pixels : numpy.ndarray
        RGB uint8 (H, W, 3) or grey (H, W) array; with `palette`, an (H, W) uint8 array of
        indices into it.
    palette : numpy.ndarray, optional
        (256, 3) uint8 colours; the PNG is then a palette image (a third of the bytes to
        filter and compress).

    Returns
    -------
    bytes
        The PNG file.
    """
    image = Image.fromarray(pixels)
    if palette is not None:
        image = image.convert("P")
        image.putpalette(np.asarray(palette, np.uint8).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
