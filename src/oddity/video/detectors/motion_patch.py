"""motion_patch: a memory bank of normal spatio-temporal patches (appearance + motion).

A video counterpart of PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly
Detection", CVPR 2022, https://arxiv.org/abs/2106.08265), with dense optical flow (Farneback,
"Two-Frame Motion Estimation Based on Polynomial Expansion", SCIA 2003,
https://doi.org/10.1007/3-540-45103-X_50) as the motion cue. A feature baseline in the spirit
of the attribute-based kNN detectors of Reiss & Hoshen ("Attribute-based Representations for
Accurate and Interpretable Video Anomaly Detection", 2022, https://arxiv.org/abs/2212.00789).

- Appearance: PatchCore's patch features of each frame (EfficientNet-Lite0 stages 3 and 5,
  3x3 local averaging, on the stride-8 grid; `oddity.image.features`).
- Motion: Farneback flow from the previous frame to this one, on the gray frame at
  `flow_scale` of the model resolution (default half); per grid cell the mean horizontal and
  vertical flow and the mean flow magnitude, averaged over the same 3x3 neighbourhood. With
  `motion_peak` the magnitude is instead the cell's largest, max-pooled over the
  neighbourhood, so that a figure smaller than a cell is not diluted by the still ground
  around it. The first frame of a clip has no previous frame: its motion is zero.
- Perspective (option `perspective`): with a fixed camera over a ground plane, pixel speeds
  grow linearly towards the bottom of the frame. The fit draws a line through the median
  speed of the moving patches of each grid row; the motion block is divided by that typical
  speed at the patch's row (floored at a quarter of the line's largest value), so that a far
  cyclist is as fast, to the bank, as a near one.
- Position (option, off by default): the patch's row and column on the grid, as fractions of
  the grid's height and width. With a fixed camera, what is normal depends on where it happens
  (perspective makes far walkers small and slow); `position_weight` > 0 lets the bank say so.
- Each block is divided by its spread over the fit patches (root mean squared distance to its
  mean), then multiplied by its weight (appearance 1, `motion_weight`, `position_weight`), so
  that at weight 1 the cues weigh the same whatever their units.
- Memory bank: PatchCore's greedy k-center coreset over the patches of every `frame_stride`-th
  frame of the normal clips (`oddity.image.detectors.patchcore.streamed_coreset`), searched
  exactly with faiss. The map is each patch's distance to its nearest bank patch, the frame
  score the largest of them; temporal smoothing and thresholds are `VideoDetector`'s.

Deviations from PatchCore, with reasons:
- No Eq. 7 re-weighting of the frame score: plain max, as the video task asks for one score per
  frame cheaply and temporal smoothing already damps single-patch outliers.
- Smaller bank (1% coreset, at most 4096 patches): scoring must keep up with video (every frame
  searches the bank with all its patches).
- Block spreads are measured on the first chunk of fit patches (all of them unless there are
  more than `coreset_chunk`), so the fit stays one streamed pass.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import faiss
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.image.detectors.patchcore import patch_chunks, streamed_coreset
from oddity.image.features import check_layers, concat_on_first_grid, feature_extractor
from oddity.video.data import Clip
from oddity.video.detector import VideoDetector

FLOW_PARAMS = {"pyr_scale": 0.5, "levels": 2, "winsize": 9, "iterations": 2, "poly_n": 5,
               "poly_sigma": 1.1, "flags": 0}
MOTION_CHANNELS = 3  # mean dx, mean dy, mean magnitude per cell
POSITION_CHANNELS = 2  # row, column as fractions of the grid
FLAT = np.array([1.0, 0.0, 1.0], np.float32)  # perspective off: the same speed at every row


def cell_motion(previous: np.ndarray | None, current: np.ndarray, grid: tuple[int, int],
                flow_scale: float, peak: bool = False) -> np.ndarray:
    """(grid h, grid w, 3) mean flow dx, dy and magnitude per cell, in pixels of the model
    input, from two gray frames at `flow_scale` of that resolution (zeros without a previous
    frame).

    Parameters
    ----------
    previous : numpy.ndarray or None
        The previous gray frame (None for the first frame).
    current : numpy.ndarray
        The current gray frame.
    grid : tuple of int
        (h, w) of the patch grid.
    flow_scale : float
        The gray frames' resolution as a fraction of the model input.
    peak : bool, default False
        The magnitude channel is the cell's largest flow magnitude rather than its mean.

    Returns
    -------
    numpy.ndarray
        (h, w, 3) motion features per cell.
    """
    if previous is None:
        return np.zeros((*grid, MOTION_CHANNELS), np.float32)
    flow = cv2.calcOpticalFlowFarneback(previous, current, None, **FLOW_PARAMS) / flow_scale
    magnitude = np.sqrt((flow * flow).sum(axis=2, keepdims=True))
    motion = cv2.resize(np.concatenate([flow, magnitude], axis=2), grid[::-1], interpolation=cv2.INTER_AREA)
    if peak:
        motion[:, :, 2] = F.adaptive_max_pool2d(torch.from_numpy(magnitude[None, :, :, 0]), grid)[0].numpy()
    return motion


def perspective_fit(rows: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
    """[intercept, slope, floor] of the typical speed of moving patches as a line in the grid
    row (0 = top, 1 = bottom): a fixed camera over a ground plane sees speeds grow linearly
    towards the bottom. Moving = faster than a quarter of the 99th percentile; per row the
    median speed of the moving patches, the line weighted by their counts; the floor (a
    quarter of the line's largest value) keeps rows above the scene's movers finite.
    A flat [1, 0, 1] when fewer than two rows have moving patches.

    Parameters
    ----------
    rows : numpy.ndarray
        (N,) grid row of each fit patch, as a fraction of the grid height.
    magnitudes : numpy.ndarray
        (N,) flow magnitude of each fit patch.

    Returns
    -------
    numpy.ndarray
        (3,) float32 [intercept, slope, floor].
    """
    moving = magnitudes > 0.25 * np.percentile(magnitudes, 99)
    values, medians, counts = [], [], []
    for row in np.unique(rows):
        speeds = magnitudes[moving & (rows == row)]
        if len(speeds) >= 10:
            values.append(row)
            medians.append(np.median(speeds))
            counts.append(len(speeds))
    if len(values) < 2 or max(medians) <= 0:
        return FLAT
    slope, intercept = np.polyfit(values, medians, 1, w=np.sqrt(counts))
    top = max(intercept, intercept + slope)
    return np.array([intercept, slope, 0.25 * top], np.float32)


def perspective_speed(line: np.ndarray, rows: torch.Tensor) -> torch.Tensor:
    """The typical speed at each grid row of a `perspective_fit` line.

    Parameters
    ----------
    line : numpy.ndarray
        [intercept, slope, floor] from `perspective_fit`.
    rows : torch.Tensor
        Grid rows as fractions of the grid height.

    Returns
    -------
    torch.Tensor
        The speeds, at least the floor.
    """
    return (line[0] + line[1] * rows).clamp_min(float(line[2]))


@register("motion_patch")
class MotionPatch(VideoDetector):
    """Nearest-neighbour distance of appearance + optical-flow patches to a bank of normal ones.

    Attributes
    ----------
    memory_bank_ : numpy.ndarray
        Coreset of the scaled appearance + motion patch features of the training clips, one
        per row.
    block_scales_ : numpy.ndarray
        Spread of the appearance, motion and position blocks of the features on the first
        training chunk; each block is divided by its spread and multiplied by its weight.

    Examples
    --------
    >>> import os, tempfile
    >>> import oddity
    >>> from oddity.video.data import evaluation_clips
    >>> from oddity.video.synth import make_video_set
    >>> folder = tempfile.TemporaryDirectory()
    >>> root = make_video_set(os.path.join(folder.name, "squares"), train_clips=3,
    ...                       test_clips=1, frames=24)  # a moving square, then faster in the test
    >>> detector = oddity.create("motion_patch", image_size=64, frame_stride=1, smoothing_window=1)
    >>> detector = detector.fit(root, verbose=False)
    >>> clip = evaluation_clips(root)[0]
    >>> result = detector.score(clip, verbose=False)[0]
    >>> result.maps.shape, bool(result.scores[clip.labels].min() > result.scores[~clip.labels].max())
    ((24, 8, 8), True)
    >>> folder.cleanup()
    """

    def __init__(self, *, backbone: str = "efficientnet_lite0",
                 layers: tuple[str, ...] = ("stage3", "stage5"), local_pool: int = 3,
                 motion_weight: float = 1.0, position_weight: float = 0.0, flow_scale: float = 0.5,
                 perspective: bool = False, motion_peak: bool = False, frame_stride: int = 4, coreset_ratio: float = 0.01,
                 max_bank_size: int = 4096, coreset_chunk: int = 1 << 20, batch_size: int = 8,
                 **common: Any):
        super().__init__(**common)
        self.backbone = backbone
        self.layers = layers
        self.local_pool = local_pool
        self.motion_weight = motion_weight
        self.position_weight = position_weight
        self.flow_scale = flow_scale
        self.perspective = bool(perspective)
        self.motion_peak = bool(motion_peak)
        self.frame_stride = frame_stride
        self.coreset_ratio = coreset_ratio
        self.max_bank_size = max_bank_size
        self.coreset_chunk = coreset_chunk
        self.batch_size = batch_size
        self.block_scales_: np.ndarray | None = None
        self.perspective_: np.ndarray = FLAT
        self.memory_bank_: np.ndarray | None = None
        self._index: faiss.Index | None = None

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_layers(self.layers)
        if self.motion_weight < 0:
            raise ConfigError(f"motion_weight must be 0 (appearance only) or positive, got {self.motion_weight}")
        if self.position_weight < 0:
            raise ConfigError(f"position_weight must be 0 (off) or positive, got {self.position_weight}")
        if not 0.0 < self.flow_scale <= 1.0:
            raise ConfigError(f"flow_scale must lie in (0, 1] (fraction of the model input), got {self.flow_scale}")
        if self.frame_stride < 1:
            raise ConfigError(f"frame_stride must be a positive number of frames, got {self.frame_stride}")
        if not 0.0 < self.coreset_ratio <= 1.0:
            raise ConfigError(f"coreset_ratio must lie in (0, 1], got {self.coreset_ratio}")
        if self.max_bank_size < 1 or self.coreset_chunk < 1 or self.batch_size < 1:
            raise ConfigError("max_bank_size, coreset_chunk and batch_size must be positive")

    # --- patches -------------------------------------------------------------------------
    def _patches(self, frames: list[np.ndarray], grays: list[tuple[np.ndarray | None, np.ndarray]]
                 ) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, h*w, C + 5) unscaled appearance, motion and position patches of a batch, and
        the grid."""
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode():
            appearance = concat_on_first_grid(feature_extractor(self.backbone, self.layers)(x),
                                              self.local_pool)
        grid = (int(appearance.shape[-2]), int(appearance.shape[-1]))
        motion = torch.from_numpy(np.stack([cell_motion(p, c, grid, self.flow_scale, self.motion_peak)
                                            for p, c in grays]))
        motion = motion.permute(0, 3, 1, 2)
        if self.local_pool > 1:
            pooled = F.avg_pool2d(motion, self.local_pool, stride=1, padding=self.local_pool // 2,
                                  count_include_pad=False)
            if self.motion_peak:
                pooled[:, 2] = F.max_pool2d(motion[:, 2], self.local_pool, stride=1, padding=self.local_pool // 2)
            motion = pooled
        rows = torch.linspace(0, 1, grid[0]).view(1, 1, -1, 1).expand(len(frames), 1, *grid)
        columns = torch.linspace(0, 1, grid[1]).view(1, 1, 1, -1).expand(len(frames), 1, *grid)
        patches = torch.cat([appearance.float(), motion, rows, columns], dim=1)
        return patches.permute(0, 2, 3, 1).reshape(len(frames), grid[0] * grid[1], -1), grid

    def _batches(self, clip: Clip, stride: int, verbose: bool, desc: str
                 ) -> Iterator[tuple[torch.Tensor, tuple[int, int]]]:
        """Patches of every `stride`-th frame of the clip, `batch_size` frames at a time."""
        frames: list[np.ndarray] = []
        grays: list[tuple[np.ndarray | None, np.ndarray]] = []
        previous: np.ndarray | None = None
        with tqdm(total=len(clip), desc=f"{desc} {clip.id}", unit="frame", disable=not verbose,
                  leave=False) as bar:
            for number, frame in enumerate(self.model_frames(clip)):
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                size = (max(1, round(gray.shape[1] * self.flow_scale)), max(1, round(gray.shape[0] * self.flow_scale)))
                gray = cv2.resize(gray, size,
                                  interpolation=cv2.INTER_AREA)
                if number % stride == 0:
                    frames.append(frame)
                    grays.append((previous, gray))
                if len(frames) == self.batch_size:
                    yield self._patches(frames, grays)
                    frames, grays = [], []
                previous = gray
                bar.update(1)
            if frames:
                yield self._patches(frames, grays)

    def _blocks(self, channels: int) -> list[slice]:
        """Channel slices of the appearance, motion and position blocks."""
        motion = channels - MOTION_CHANNELS - POSITION_CHANNELS
        return [slice(0, motion), slice(motion, channels - POSITION_CHANNELS),
                slice(channels - POSITION_CHANNELS, channels)]

    def _normalised(self, patches: torch.Tensor) -> torch.Tensor:
        """Motion divided by the typical speed at the patch's row (`perspective`)."""
        if not self.perspective:
            return patches
        motion = self._blocks(patches.shape[-1])[1]
        speed = perspective_speed(self.perspective_, patches[..., -POSITION_CHANNELS])
        patches = patches.clone()
        patches[..., motion] /= speed.unsqueeze(-1)
        return patches

    def _scaled(self, patches: torch.Tensor) -> torch.Tensor:
        assert self.block_scales_ is not None
        patches = self._normalised(patches)
        scales = torch.ones(patches.shape[-1])
        weights = (1.0, self.motion_weight, self.position_weight)
        for block, weight, spread in zip(self._blocks(patches.shape[-1]), weights, self.block_scales_):
            scales[block] = weight / float(spread)
        return patches * scales

    def _set_scales(self, patches: torch.Tensor) -> None:
        spreads = []
        for block in self._blocks(patches.shape[-1]):
            values = patches[:, block]
            spread = float((values - values.mean(0)).pow(2).sum(1).mean().sqrt())
            spreads.append(spread if spread > 1e-12 else 1.0)  # a still training set: no motion spread
        self.block_scales_ = np.array(spreads, dtype=np.float32)

    # --- hooks ---------------------------------------------------------------------------
    def _fit_clips(self, clips: list[Clip], verbose: bool) -> None:
        self.block_scales_, self.perspective_ = None, FLAT

        def patch_sets() -> Iterator[torch.Tensor]:
            for clip in clips:
                for patches, _ in self._batches(clip, self.frame_stride, verbose, "fit"):
                    yield patches.reshape(-1, patches.shape[-1])

        def scaled_chunks() -> Iterator[torch.Tensor]:
            for chunk in patch_chunks(patch_sets(), self.coreset_chunk):
                if self.block_scales_ is None:
                    if self.perspective:
                        self.perspective_ = perspective_fit(
                            chunk[:, -POSITION_CHANNELS].numpy(), chunk[:, -POSITION_CHANNELS - 1].numpy())
                    self._set_scales(self._normalised(chunk))
                yield self._scaled(chunk)

        bank = streamed_coreset(scaled_chunks(), self.coreset_ratio, self.max_bank_size, self.seed,
                                verbose=verbose)
        self._build_index(bank.numpy())

    def _build_index(self, bank: np.ndarray) -> None:
        self.memory_bank_ = np.ascontiguousarray(bank, dtype=np.float32)
        self._index = faiss.IndexFlatL2(self.memory_bank_.shape[1])
        self._index.add(self.memory_bank_)

    def _score_clip(self, clip: Clip, verbose: bool) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None
        maps = []
        for patches, grid in self._batches(clip, 1, verbose, "score"):
            queries = np.ascontiguousarray(self._scaled(patches).reshape(-1, patches.shape[-1]).numpy())
            squared, _ = self._index.search(queries, 1)
            maps.append(np.sqrt(np.maximum(squared[:, 0], 0.0)).reshape(len(patches), *grid))
        stacked = np.concatenate(maps).astype(np.float32)
        return stacked.reshape(len(stacked), -1).max(axis=1), stacked

    # --- persistence -----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.memory_bank_ is not None and self.block_scales_ is not None
        return values, {**arrays, "memory_bank": self.memory_bank_, "block_scales": self.block_scales_,
                        "perspective": self.perspective_}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        if arrays.get("memory_bank", np.zeros(0)).ndim != 2 or arrays.get("block_scales", np.zeros(0)).shape != (3,):
            raise DataError("model file has no 2-D 'memory_bank' or no 3 'block_scales'")
        self.block_scales_ = arrays["block_scales"].astype(np.float32)
        self.perspective_ = arrays.get("perspective", FLAT).astype(np.float32)
        if self.perspective_.shape != (3,):
            raise DataError("model file's 'perspective' must hold 3 numbers (intercept, slope, floor)")
        self._build_index(arrays["memory_bank"])
