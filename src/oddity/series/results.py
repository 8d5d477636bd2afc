"""Typed result objects returned by `score` and `predict` of series detectors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class SeriesScores:
    """Raw anomaly scores: one per time step (`scores`, shape (T,)), and one per step and
    channel (`channel_scores`, (T, C)) when the method attributes them to channels."""

    index: pd.Index
    scores: np.ndarray
    channel_scores: np.ndarray | None
    columns: list[str]

    def __len__(self) -> int:
        return len(self.scores)

    def to_frame(self) -> pd.DataFrame:
        """Scores as a DataFrame over `index`: column 'score', then 'score_<channel>' each."""
        frame = pd.DataFrame({"score": self.scores}, index=self.index)
        if self.channel_scores is not None:
            for i, column in enumerate(self.columns):
                frame[f"score_{column}"] = self.channel_scores[:, i]
        return frame


@dataclass
class SeriesPrediction(SeriesScores):
    """Scores plus decisions: `labels` (True = anomalous step: score above the threshold in
    force at that step, `thresholds`), `spans`, the anomalous ranges as (first, last) index
    values, both inclusive, and `levels`, each score's calibrated level 1 - p-value in [0, 1)
    (comparable across series). `threshold` is the one calibrated at fit time; with online
    calibration the per-step `thresholds` move away from it."""

    threshold: float = float("nan")
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    spans: list[tuple[Any, Any]] = field(default_factory=list)
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_frame(self) -> pd.DataFrame:
        """Scores (see `SeriesScores.to_frame`), then 'threshold', 'level' and a boolean
        'anomalous' column."""
        frame = super().to_frame()
        frame["threshold"] = self.thresholds
        frame["level"] = self.levels
        frame["anomalous"] = self.labels
        return frame
