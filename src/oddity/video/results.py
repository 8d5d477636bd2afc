"""Typed results of video detectors: scores per frame of one clip, and decisions."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class ClipScores:
    """Anomaly scores of one clip: `scores` per frame (after the detector's temporal
    smoothing; `raw_scores` before it) and `maps`, one (h, w) grid of patch scores per frame
    on the model's feature grid (None when the method does not localise)."""

    clip: str
    frame_names: list[str]
    scores: np.ndarray
    raw_scores: np.ndarray
    maps: np.ndarray | None

    def __len__(self) -> int:
        return len(self.scores)

    def to_frame(self) -> pd.DataFrame:
        """One row per frame: frame (0-based), name, score, raw_score.

        Returns
        -------
        pandas.DataFrame
            The frames.
        """
        return pd.DataFrame({"frame": np.arange(len(self)), "name": self.frame_names,
                             "score": self.scores, "raw_score": self.raw_scores})


@dataclass
class ClipPrediction(ClipScores):
    """Scores plus decisions: `labels` (True = anomalous frame, score above `threshold`) and
    `ranges`, the anomalous runs of frames as (first, last), 0-based and inclusive."""

    threshold: float = float("nan")
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """`ClipScores.to_frame` and a boolean 'anomalous' column.

        Returns
        -------
        pandas.DataFrame
            The frames.
        """
        frame = super().to_frame()
        frame["anomalous"] = self.labels
        return frame

    def ranges_frame(self) -> pd.DataFrame:
        """One row per anomalous range: first, last (0-based, inclusive), frames, peak score.

        Returns
        -------
        pandas.DataFrame
            The ranges.
        """
        rows = [{"clip": self.clip, "first": first, "last": last, "frames": last - first + 1,
                 "peak_score": float(self.scores[first:last + 1].max())} for first, last in self.ranges]
        return pd.DataFrame(rows, columns=["clip", "first", "last", "frames", "peak_score"])
