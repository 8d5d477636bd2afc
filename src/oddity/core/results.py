"""Typed result objects returned by `score` and `predict` of image detectors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageScores:
    """Raw anomaly scores: one per image, and a map per image at that image's own size
    (`maps` is None when the detector does not localise, see `ImageDetector.localises`)."""

    scores: np.ndarray
    maps: list[np.ndarray] | None
    paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class ImagePrediction(ImageScores):
    """Scores plus decisions: `labels` (True = anomalous) and binary `masks` per image
    (`masks` is None, and `pixel_threshold` NaN, when there are no maps)."""

    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    masks: list[np.ndarray] | None = field(default_factory=list)
    threshold: float = float("nan")
    pixel_threshold: float = float("nan")
