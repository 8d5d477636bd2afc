"""Typed result objects returned by `score` and `predict` of image detectors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageScores:
    """Raw anomaly scores: one per image, and a map per image at that image's own size."""

    scores: np.ndarray
    maps: list[np.ndarray]
    paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class ImagePrediction(ImageScores):
    """Scores plus decisions: `labels` (True = anomalous) and binary `masks` per image."""

    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    masks: list[np.ndarray] = field(default_factory=list)
    threshold: float = float("nan")
    pixel_threshold: float = float("nan")
