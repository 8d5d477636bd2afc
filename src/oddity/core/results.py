"""Typed result objects returned by `score` and `predict` of image detectors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageScores:
    """Raw anomaly scores of images (higher = more anomalous).

    Attributes
    ----------
    scores : numpy.ndarray
        (N,) one score per image.
    maps : list of numpy.ndarray or None
        One (H, W) anomaly map per image at that image's own size; None when the detector
        does not localise (see `ImageDetector.localises`).
    paths : list of str
        The name of each image (its path, or ``array[i]``).
    """

    scores: np.ndarray
    maps: list[np.ndarray] | None
    paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class ImagePrediction(ImageScores):
    """Scores plus the decisions of the calibrated thresholds.

    Attributes
    ----------
    labels : numpy.ndarray
        (N,) booleans, True where the score is above `threshold`.
    masks : list of numpy.ndarray or None
        Boolean (H, W) masks, True where the map is above `pixel_threshold`; None when
        there are no maps.
    threshold : float
        The image threshold used.
    pixel_threshold : float
        The pixel threshold used (NaN when there are no maps).
    """

    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    masks: list[np.ndarray] | None = field(default_factory=list)
    threshold: float = float("nan")
    pixel_threshold: float = float("nan")
