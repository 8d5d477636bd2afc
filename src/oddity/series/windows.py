"""Sliding windows over a (T, C) series, and the way back from window scores to step scores."""
from __future__ import annotations

import numpy as np

from oddity.core.errors import ConfigError, DataError
from oddity.metrics.series import events


def _check(width: int, stride: int) -> None:
    if width < 1:
        raise ConfigError(f"window width must be at least 1, got {width}")
    if stride < 1:
        raise ConfigError(f"window stride must be at least 1, got {stride}")


def sliding_windows(values: np.ndarray, width: int, stride: int = 1) -> np.ndarray:
    """Read-only (N, width, C) view of the windows values[i*stride : i*stride + width],
    N = (T - width) // stride + 1; no copy is made.

    Parameters
    ----------
    values : numpy.ndarray
        (T, C) series.
    width : int
        Window width.
    stride : int, default 1
        Steps between window starts.

    Returns
    -------
    numpy.ndarray
        (N, width, C) read-only view.
    """
    _check(width, stride)
    if values.ndim != 2:
        raise DataError(f"sliding_windows needs a (T, C) array, got shape {values.shape}")
    if len(values) < width:
        raise DataError(f"series of {len(values)} steps is shorter than the window ({width})")
    if len(values) - width < stride:  # one window (a row scored as it streams in)
        view = values[None, :width]
        view.flags.writeable = False
        return view
    steps, channels = values.strides
    return np.lib.stride_tricks.as_strided(
        values, shape=((len(values) - width) // stride + 1, width, values.shape[1]),
        strides=(steps * stride, steps, channels), writeable=False)


def window_scores_to_steps(window_scores: np.ndarray, length: int, width: int,
                           stride: int = 1, causal: bool = False) -> np.ndarray:
    """Per-step scores (length,) from per-window scores (N,) or (N, C).

    With `causal`, each step gets the score of the window ending at it (stride 1), so no
    step's score depends on later steps; the first `width - 1` steps, which no window ends
    at, get the lowest window score. Otherwise each step gets the
    mean score of the windows that cover it. Steps no window covers (the tail left over when
    `stride` does not divide length - width) take the score of the last window. Sums window
    offset by offset (`width` vectorised additions), not by prefix sums, which would lose small
    scores after a huge one.

    Parameters
    ----------
    window_scores : numpy.ndarray
        (N,) or (N, C) scores per window.
    length : int
        Steps of the series.
    width : int
        Window width.
    stride : int, default 1
        Steps between window starts.
    causal : bool, default False
        Score each step by the window ending at it.

    Returns
    -------
    numpy.ndarray
        (length,) or (length, C) scores per step.
    """
    _check(width, stride)
    scores = np.asarray(window_scores, dtype=np.float64)
    count = scores.shape[0]
    if causal:
        if stride != 1 or count != length - width + 1:
            raise DataError(f"causal step scores need one window per step (stride 1): got "
                            f"{count} windows of width {width} for {length} steps")
        return np.concatenate((np.broadcast_to(scores[0], (width - 1,) + scores.shape[1:]),
                               scores))
    if count == 0 or (count - 1) * stride + width > length:
        raise DataError(f"{count} windows of width {width}, stride {stride} do not fit in "
                        f"{length} steps")
    starts = np.arange(count) * stride
    totals = np.zeros((length,) + scores.shape[1:])
    covers = np.zeros(length)
    for offset in range(width):  # starts + offset are distinct, so += adds each window once
        totals[starts + offset] += scores
        covers[starts + offset] += 1.0
    covered = covers > 0
    steps = np.empty_like(totals)
    steps[covered] = totals[covered] / covers[covered].reshape((-1,) + (1,) * (scores.ndim - 1))
    steps[~covered] = scores[-1]
    return steps


def labels_to_spans(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) step index, both inclusive, of every run of True in a 1-D bool array.

    Parameters
    ----------
    labels : numpy.ndarray
        (T,) bool labels.

    Returns
    -------
    list of tuple of int
        (first, last) per run.
    """
    starts, ends = events(np.asarray(labels, dtype=bool))
    return [(int(s), int(e)) for s, e in zip(starts, ends)]
