"""Shared machinery of video detectors: input handling, calibration, temporal smoothing.

A method subclasses `VideoDetector` and writes two hooks, nothing else:
- `_fit_clips(clips, verbose)`: learn normal from a list of normal `Clip`s (stream their
  frames with `self.model_frames(clip)`);
- `_score_clip(clip, verbose)`: return (raw score per frame (T,), maps (T, h, w) or None),
  higher = more anomalous.
It extends `_get_state` / `_set_state` with its learned arrays (calling super()).

Post-processing, the same for every method: `smoothing_window` > 1 replaces each frame's score
by the mean of the last `smoothing_window` raw scores (a causal window: a frame's score never
depends on later frames, so a live stream is scored as it comes; the first frames of a clip
average what there is). `fit` holds out the last `calibration_fraction` of the normal clips
(whole clips, at least one when there are two or more), fits on the rest, and calibrates the
frame threshold on the held-out clips' smoothed scores (`oddity.core.thresholds`,
split-conformal at `target_fpr` per frame; frames of a clip are not independent, so the rate
holds per frame on average rather than with the conformal guarantee). With a single clip the
threshold is calibrated on the fitted clip itself and marked 'in-sample'.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any, ClassVar

import cv2
import numpy as np

from oddity.core.checks import check_calibration, check_seed
from oddity.core.detector import Detector
from oddity.core.errors import ConfigError, DataError
from oddity.core.thresholds import Threshold, calibrate_threshold
from oddity.metrics.series import events
from oddity.video.data import Clip, find_clips, training_clips
from oddity.video.results import ClipPrediction, ClipScores

VideoInput = Any  # a path (clip, folder of clips or dataset), a Clip, or a list of those


def as_clips(data: VideoInput, for_fit: bool) -> list[Clip]:
    """Normalise what a user passes to fit/score into a list of clips.

    Parameters
    ----------
    data : str, path, Clip or list
        A clip, a folder of clips or a dataset, a `Clip`, or a list of those.
    for_fit : bool
        Read a dataset's training clips (True) or every clip found.

    Returns
    -------
    list of Clip
        The clips.

    Raises
    ------
    DataError
        If no clip is given or an item is neither a path nor a `Clip`.
    """
    if isinstance(data, Clip):
        return [data]
    if isinstance(data, (str, os.PathLike)):
        return training_clips(data) if for_fit else find_clips(data)
    items = list(data)
    if not items:
        raise DataError("no clips given")
    clips: list[Clip] = []
    for item in items:
        if isinstance(item, Clip):
            clips.append(item)
        elif isinstance(item, (str, os.PathLike)):
            clips.extend(find_clips(item))
        else:
            raise DataError(f"clips must be paths or Clip objects, not {type(item).__name__}")
    return clips


def smooth_scores(scores: np.ndarray, window: int) -> np.ndarray:
    """Causal moving mean: each value becomes the mean of itself and the `window - 1` before
    it (fewer at the start).

    Parameters
    ----------
    scores : numpy.ndarray
        (T,) raw frame scores.
    window : int
        Frames averaged (1: unchanged).

    Returns
    -------
    numpy.ndarray
        (T,) smoothed scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if window <= 1 or scores.size == 0:
        return scores.copy()
    sums = np.cumsum(np.concatenate(([0.0], scores)))
    ends = np.arange(1, scores.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def anomalous_ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame, 0-based and inclusive, of every run of anomalous frames.

    Parameters
    ----------
    labels : numpy.ndarray
        (T,) bool label per frame.

    Returns
    -------
    list of tuple of int
        (first, last) per run.
    """
    starts, ends = events(np.asarray(labels, dtype=bool))
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


class VideoDetector(Detector):
    """Base of all video detectors (see the module docstring for the hooks).

    Parameters
    ----------
    image_size : int, default 160
        Short side of the model input in pixels; the aspect ratio is kept. At least 32.
    smoothing_window : int, default 5
        Frames of the temporal smoothing of the scores (1: off).
    target_fpr : float, default 0.01
        False-positive rate per frame the calibrated threshold aims at.
    calibration_fraction : float, default 0.15
        Share of the clips, the last ones, held out to calibrate the threshold.
    seed : int, default 0
        Seed of every random step.

    Attributes
    ----------
    threshold_ : Threshold
        Threshold on the frame score calibrated by `fit` (in-sample when there is one clip).
    """

    modality: ClassVar[str] = "video"

    def __init__(self, *, image_size: int = 160, smoothing_window: int = 5,
                 target_fpr: float = 0.01, calibration_fraction: float = 0.15, seed: int = 0):
        self.image_size = image_size
        self.smoothing_window = smoothing_window
        self.target_fpr = target_fpr
        self.calibration_fraction = calibration_fraction
        self.seed = seed

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        if self.image_size < 32:
            raise ConfigError(f"image_size must be at least 32 pixels, got {self.image_size}")
        if self.smoothing_window < 1:
            raise ConfigError(f"smoothing_window must be 1 (off) or more frames, got {self.smoothing_window}")
        check_calibration(self.target_fpr, self.calibration_fraction)
        check_seed(self.seed)

    # --- hooks for subclasses --------------------------------------------------------------
    def _fit_clips(self, clips: list[Clip], verbose: bool) -> None:
        raise NotImplementedError

    def _score_clip(self, clip: Clip, verbose: bool) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    # --- frames ------------------------------------------------------------------------------
    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """Size of the model input for a frame: short side `image_size`, aspect kept.

        Parameters
        ----------
        height, width : int
            The frame's size.

        Returns
        -------
        tuple of int
            (height, width) of the model input.
        """
        scale = self.image_size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def model_frames(self, clip: Clip) -> Iterator[np.ndarray]:
        """The clip's frames resized to the model input, streamed.

        Parameters
        ----------
        clip : Clip
            The clip to read.

        Yields
        ------
        numpy.ndarray
            (h, w, 3) RGB uint8 frame at `model_size`.
        """
        size: tuple[int, int] | None = None
        for frame in clip.frames():
            if size is None:
                size = self.model_size(*frame.shape[:2])
            if frame.shape[:2] != size:
                frame = cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA)
            yield frame

    # --- public API ------------------------------------------------------------------------
    def fit(self, data: VideoInput, *, verbose: bool = True) -> VideoDetector:
        """Learn normal from normal clips, then calibrate the frame threshold on held-out clips
        (see the module docstring).

        Parameters
        ----------
        data : str, path, Clip or list
            A clip (video file or folder of frames), a folder of clips or a dataset, a `Clip`,
            or a list of those.
        verbose : bool, default True
            Show progress bars.

        Returns
        -------
        VideoDetector
            self, fitted.

        Raises
        ------
        ConfigError
            If a hyper-parameter is invalid.
        DataError
            If no clip can be read.
        """
        self.validate_params()
        clips = as_clips(data, for_fit=True)
        held_out = math.ceil(len(clips) * self.calibration_fraction) if len(clips) > 1 else 0
        held_out = min(held_out, len(clips) - 1)
        fit_clips = clips[: len(clips) - held_out]
        self._fit_clips(fit_clips, verbose)
        calibration = clips[len(fit_clips):] or fit_clips
        scores = np.concatenate([self._scores(clip, verbose).scores for clip in calibration])
        threshold = calibrate_threshold(scores, self.target_fpr)
        if not held_out:
            threshold = Threshold(**{**threshold.to_dict(), "method": "in-sample"})
        self.threshold_ = threshold
        return self

    def _scores(self, clip: Clip, verbose: bool) -> ClipScores:
        raw, maps = self._score_clip(clip, verbose)
        raw = np.asarray(raw, dtype=np.float64)
        assert raw.ndim == 1 and np.isfinite(raw).all(), f"{self.name}: bad frame scores"
        names = clip.frame_names()
        if len(names) != len(raw):  # a video container may misstate its frame count
            names = [str(i) for i in range(len(raw))]
        return ClipScores(clip.id, names, smooth_scores(raw, self.smoothing_window), raw, maps)

    def score(self, data: VideoInput, *, verbose: bool = True) -> list[ClipScores]:
        """Anomaly scores per frame (and maps) of every clip in `data`.

        Parameters
        ----------
        data : str, path, Clip or list
            A clip (video file or folder of frames), a folder of clips or a dataset, a `Clip`,
            or a list of those.
        verbose : bool, default True
            Show progress bars.

        Returns
        -------
        list of ClipScores
            One per clip: smoothed and raw scores per frame, maps where the method has them.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        return [self._scores(clip, verbose) for clip in as_clips(data, for_fit=False)]

    def predict(self, data: VideoInput, *, verbose: bool = True) -> list[ClipPrediction]:
        """Scores plus anomalous frames (smoothed score above the threshold) and ranges.

        Parameters
        ----------
        data : str, path, Clip or list
            A clip (video file or folder of frames), a folder of clips or a dataset, a `Clip`,
            or a list of those.
        verbose : bool, default True
            Show progress bars.

        Returns
        -------
        list of ClipPrediction
            One per clip: the scores, the threshold, a label per frame and anomalous ranges.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        results = self.score(data, verbose=verbose)
        assert self.threshold_ is not None
        threshold = self.threshold_.value
        return [ClipPrediction(**vars(result), threshold=threshold, labels=result.scores > threshold,
                               ranges=anomalous_ranges(result.scores > threshold))
                for result in results]
