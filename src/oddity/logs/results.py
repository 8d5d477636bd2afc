"""Typed containers of the logs modality: event sequences in, scores and decisions out."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class LogSequences:
    """Sequences of events (template texts in order): sessions or windows of a log.

    `labels` (1 = anomalous) when known; `lines` the source line numbers of each event when
    the sequences come from a file; `contents` the message of each event when the grouping was
    asked to keep them (for detectors that read the messages, not only their templates).
    """

    ids: list[str]
    events: list[list[str]]
    labels: np.ndarray | None = None
    lines: list[list[int]] | None = None
    contents: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: np.ndarray | list[int]) -> "LogSequences":
        """The sequences at positions `index` (in that order).

        Parameters
        ----------
        index : numpy.ndarray or list of int
            Positions.

        Returns
        -------
        LogSequences
            The selected sequences.
        """
        index = np.asarray(index, dtype=np.int64)
        return LogSequences(
            ids=[self.ids[i] for i in index], events=[self.events[i] for i in index],
            labels=None if self.labels is None else self.labels[index],
            lines=None if self.lines is None else [self.lines[i] for i in index],
            contents=None if self.contents is None else [self.contents[i] for i in index])


@dataclass
class LogScores:
    """Raw anomaly scores: one per sequence (`scores`), and per event (`event_scores`, one
    array per sequence) when the method scores events; `culprits` is the position of the
    event that made each sequence most anomalous (-1 when there is none); `explanations` one
    text per sequence saying what made it score so, when the method gives one."""

    ids: list[str]
    scores: np.ndarray
    event_scores: list[np.ndarray] | None = None
    culprits: np.ndarray | None = None
    explanations: list[str] | None = None

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class LogPrediction(LogScores):
    """Scores plus decisions: `labels` (True = anomalous, score above `threshold`)."""

    threshold: float = float("nan")
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def to_frame(self, sequences: LogSequences) -> pd.DataFrame:
        """One row per sequence: id, events, score, anomalous, the culprit event with its
        position and source line when the method names one, and the explanation when it
        gives one.

        Parameters
        ----------
        sequences : LogSequences
            The sequences predicted (for events and source lines).

        Returns
        -------
        pandas.DataFrame
            The table.
        """
        frame = pd.DataFrame({"id": self.ids, "events": [len(e) for e in sequences.events],
                              "score": self.scores, "anomalous": self.labels})
        if self.culprits is not None:
            frame["culprit_position"] = self.culprits
            frame["culprit_event"] = [events[c] if c >= 0 else "" for events, c
                                      in zip(sequences.events, self.culprits)]
            if sequences.lines is not None:
                frame["culprit_line"] = [lines[c] if c >= 0 else -1 for lines, c
                                         in zip(sequences.lines, self.culprits)]
        if self.explanations is not None:
            frame["explanation"] = self.explanations
        return frame
