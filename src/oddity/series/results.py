"""Typed result objects returned by `score` and `predict` of series detectors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class SeriesScores:
    """Raw anomaly scores of a series (higher = more anomalous).

    Attributes
    ----------
    index : pandas.Index
        The time steps scored (timestamps or integers).
    scores : numpy.ndarray
        (T,) one score per time step.
    channel_scores : numpy.ndarray or None
        (T, C) one score per step and channel, when the method attributes them to channels.
    columns : list of str
        The channel names, in the fitted order.
    """

    index: pd.Index
    scores: np.ndarray
    channel_scores: np.ndarray | None
    columns: list[str]

    def __len__(self) -> int:
        return len(self.scores)

    def to_frame(self) -> pd.DataFrame:
        """Scores as a DataFrame.

        Returns
        -------
        pandas.DataFrame
            Over `index`: column 'score', then 'score_<channel>' for each channel.
        """
        frame = pd.DataFrame({"score": self.scores}, index=self.index)
        if self.channel_scores is not None:
            for i, column in enumerate(self.columns):
                frame[f"score_{column}"] = self.channel_scores[:, i]
        return frame


@dataclass
class SeriesPrediction(SeriesScores):
    """Scores plus the decisions of the calibrated threshold.

    Attributes
    ----------
    threshold : float
        The threshold calibrated at fit time; with online calibration the per-step
        `thresholds` move away from it.
    labels : numpy.ndarray
        (T,) booleans, True where the step's score is above the threshold in force at that
        step (`thresholds`).
    spans : list of tuple
        The anomalous ranges as (first, last) index values, both inclusive.
    levels : numpy.ndarray
        Each score's calibrated level, 1 - p-value in [0, 1) (comparable across series).
    """

    threshold: float = float("nan")
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    spans: list[tuple[Any, Any]] = field(default_factory=list)
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_frame(self) -> pd.DataFrame:
        """Scores and decisions as a DataFrame.

        Returns
        -------
        pandas.DataFrame
            The scores (see `SeriesScores.to_frame`), then 'threshold', 'level' and a boolean
            'anomalous' column.
        """
        frame = super().to_frame()
        frame["threshold"] = self.thresholds
        frame["level"] = self.levels
        frame["anomalous"] = self.labels
        return frame
