"""Series detectors whose memory learns from the stream it scores (CAD OSE, ARTime).

Such a detector has no training phase: `fit` learns a per-channel range from the history and
keeps the history in the model file. `score` replays the given rows through fresh memories,
one per channel; `update` continues memories that first replay the fitted history, so rows
streamed after the history score as they would in one call with it. The threshold is
calibrated on the held-out tail scored after the steps before it (memories started on the tail
alone would spend it warming up).

A subclass provides `new_memories()` (objects with `step(value) -> float`) and may override
`memory_inputs` (what a memory steps on: the values, or codes of them).
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from oddity.core.errors import ConfigError
from oddity.core.thresholds import calibrate_threshold, held_out_count
from oddity.series.detector import SeriesDetector


class Memory(Protocol):
    """One channel's online memory."""

    def step(self, value: Any) -> float:
        """Learn one step and return its score."""


class ReplayDetector(SeriesDetector):
    """Base of detectors whose per-channel memories learn from the stream they score.

    Attributes
    ----------
    low_, high_ : numpy.ndarray
        Per-channel range: the history's minimum and maximum, widened by the subclass's
        `range_margin` (`learn_range`).
    history_ : numpy.ndarray
        The fitted rows, replayed into the memories that `update` continues.
    """

    low_: np.ndarray | None = None
    high_: np.ndarray | None = None
    history_: np.ndarray | None = None
    memories_: list[Memory] | None = None  # the `update` stream's memories
    range_margin: float

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`; `range_margin` in [0, 10]."""
        super().validate_params()
        if not 0.0 <= self.range_margin <= 10.0:
            raise ConfigError(f"range_margin must be in [0, 10], got {self.range_margin}")

    def new_memories(self) -> list[Memory]:
        """One fresh memory per channel.

        Returns
        -------
        list of Memory
            The memories, in channel order.
        """
        raise NotImplementedError

    def memory_inputs(self, values: np.ndarray) -> np.ndarray:
        """What the memories step on: the values themselves (a subclass may code them).

        Parameters
        ----------
        values : numpy.ndarray
            (T, C) values.

        Returns
        -------
        numpy.ndarray
            (T, C) inputs, one column per memory.
        """
        return values

    def learn_range(self, values: np.ndarray) -> None:
        """Set `low_` and `high_` from `values`, widened on each side by `range_margin` of
        the span, and forget the `update` stream's memories.

        Parameters
        ----------
        values : numpy.ndarray
            (T, C) rows the range is learned from.
        """
        low, high = values.min(axis=0), values.max(axis=0)
        margin = self.range_margin * (high - low)
        self.low_, self.high_ = low - margin, high + margin
        self.memories_ = None

    def keep_history(self, frame: pd.DataFrame) -> None:
        """Keep the fitted rows and calibrate the threshold on the held-out tail scored after
        the steps before it.

        Parameters
        ----------
        frame : pandas.DataFrame
            The fitted history, as `SeriesDetector.fit` read it.
        """
        self.history_ = frame.to_numpy(dtype=np.float64)
        held_out = held_out_count(len(frame), self.calibration_fraction, self.min_length,
                                  small_sets="in-sample")
        if held_out:
            scores = self._score_values(self.history_)[0][-held_out:]
            self.threshold_ = calibrate_threshold(scores, self.target_fpr)
            self.calibration_scores_ = scores[-self.calibration_window:]

    def _run(self, values: np.ndarray, memories: list[Memory]) -> tuple[np.ndarray, np.ndarray]:
        inputs = self.memory_inputs(values)
        channel = np.array([[memory.step(value) for value in column.tolist()]
                            for memory, column in zip(memories, inputs.T)]).T.reshape(values.shape)
        return channel.max(axis=1), channel

    def _score_series(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(values, self.new_memories())

    def _score_stream(self, values: np.ndarray, index: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.memories_ is None:
            assert self.history_ is not None
            self.memories_ = self.new_memories()
            self._run(self.history_, self.memories_)
        return self._run(values, self.memories_)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.low_ is not None and self.high_ is not None and self.history_ is not None
        return values, {**arrays, "low": self.low_, "high": self.high_, "history": self.history_}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.low_, self.high_, self.history_ = arrays["low"], arrays["high"], arrays["history"]
        self.memories_ = None
