"""What happens to an image before and after a detector's kernel, as data.

`ImageSpec` holds the model input rule (short side `image_size` with the aspect ratio kept, or
one fixed `input_shape`), tiling, the per-image colour balance and contrast options (applied to
the image before its resize, or with the image's statistics to the model input after it), map
smoothing and whether the detector localises. It is saved in the model's JSON (`state.pipeline`) and in an exported
model's metadata.json, and it is the one implementation of pre- and post-processing for every
engine (the in-process torch kernel, onnxruntime): numpy and scipy only, no torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from oddity.core.errors import ModelFileError
from oddity.image import geometry

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ImageSpec:
    """Pre- and post-processing of one detector (see module docstring)."""

    image_size: int
    input_shape: tuple[int, int] | None = None  # None: keep each image's aspect ratio
    tile: int | None = None
    per_image_contrast: bool = False
    colour_balance: bool = False
    normalise_after_resize: bool = False  # balance and contrast applied to the model input, not the image
    smoothing_sigma: float = 4.0
    localises: bool = True

    def input_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Model input (h, w) for an image or tile of (H, W) pixels.

        Parameters
        ----------
        hw : tuple of int
            (H, W) of the image or tile.

        Returns
        -------
        tuple of int
            (h, w) of the model input.
        """
        if self.input_shape is not None:
            return tuple(self.input_shape)  # type: ignore[return-value]
        return geometry.keep_aspect_shape(hw, self.image_size)

    def boxes(self, hw: tuple[int, int]) -> list[Box]:
        """(top, left, bottom, right) of the parts an image is scored in: tiles, or itself.

        Parameters
        ----------
        hw : tuple of int
            (H, W) of the image.

        Returns
        -------
        list of tuple of int
            The boxes.
        """
        if self.tile is None:
            return [(0, 0, hw[0], hw[1])]
        return geometry.tile_boxes(hw, self.tile)

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """The (3, h, w) float32 array the kernel sees for an (H, W, 3) image or tile.

        Parameters
        ----------
        pixels : numpy.ndarray
            (H, W, 3) float image or tile.

        Returns
        -------
        numpy.ndarray
            (3, h, w) float32.
        """
        if self.normalise_after_resize:
            return geometry.normalised_input(pixels, self.input_hw(pixels.shape[:2]), self.colour_balance,
                                             self.per_image_contrast)
        if self.colour_balance:
            pixels = geometry.balance_channels(pixels)
        if self.per_image_contrast:
            pixels = geometry.standardise_contrast(pixels)
        return geometry.model_input(pixels, self.input_hw(pixels.shape[:2]))

    def prepare(self, pixels: np.ndarray) -> list[np.ndarray]:
        """Model inputs of every part of an (H, W, 3) image.

        Parameters
        ----------
        pixels : numpy.ndarray
            (H, W, 3) float image.

        Returns
        -------
        list of numpy.ndarray
            (3, h, w) float32 input per part, in `boxes` order.
        """
        return [self.model_input(pixels[t:b, l:r]) for t, l, b, r in self.boxes(pixels.shape[:2])]

    def finish(self, hw: tuple[int, int], scores: list[float],
               patch_maps: list[np.ndarray]) -> tuple[float, np.ndarray | None]:
        """Image score (largest over parts) and, for a detector that localises, its map at the
        image's (H, W): each part's patch map upsampled to its model input, smoothed there with
        `smoothing_sigma`, resized to the part, and the parts averaged where they overlap.

        Parameters
        ----------
        hw : tuple of int
            (H, W) of the image.
        scores : list of float
            The kernel's score of each part.
        patch_maps : list of numpy.ndarray
            The kernel's patch map of each part.

        Returns
        -------
        tuple
            (image score, (H, W) map or None).
        """
        score = float(max(scores))
        if not self.localises:
            return score, None
        boxes = self.boxes(hw)
        maps = []
        for (top, left, bottom, right), patch_map in zip(boxes, patch_maps):
            part_hw = (bottom - top, right - left)
            maps.append(geometry.patch_map_to_image(patch_map, self.input_hw(part_hw), part_hw,
                                                    self.smoothing_sigma))
        return score, maps[0] if len(maps) == 1 else geometry.stitch(maps, boxes, hw)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-serialisable data (`from_dict` reads it back).

        Returns
        -------
        dict
            Field name to value.
        """
        values = asdict(self)
        values["input_shape"] = list(self.input_shape) if self.input_shape else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "model") -> ImageSpec:
        """Read a spec written by `to_dict`; a missing or unknown field is a ModelFileError.

        Parameters
        ----------
        values : dict
            Fields written by `to_dict`.
        source : str, default "model"
            What they were read from, for the message.

        Returns
        -------
        ImageSpec
            The spec.

        Raises
        ------
        ModelFileError
            If a field is missing or unknown.
        """
        try:
            spec = cls(**values)
        except TypeError as exc:
            raise ModelFileError(f"{source}: its image pipeline description is invalid ({exc}); "
                                 "export or save the model again") from None
        shape = spec.input_shape
        return cls(**{**values, "input_shape": tuple(shape) if shape else None})
