"""From per-window values back to per-step values by direct summation.

`oddity.series.windows.window_scores_to_steps` uses prefix sums, which lose the small values
after a huge one (catastrophic cancellation): forecast residuals and reconstruction errors
can span many orders of magnitude on real data (a channel that was flat in the history).
This sums window by window instead, at the cost of `width` vectorised additions.
"""
from __future__ import annotations

import numpy as np


def covering_mean(window_values: np.ndarray, length: int) -> np.ndarray:
    """(length, ...) mean, for each step, over the windows that cover it. `window_values` is
    (N, width, ...): window i covers steps i .. i + width - 1 (stride 1) and holds its value
    for each of them (broadcast a per-window score with `values[:, None]` and np.broadcast_to).
    """
    count, width = window_values.shape[:2]
    totals = np.zeros((length,) + window_values.shape[2:])
    covers = np.zeros(length)
    for j in range(width):
        totals[j:j + count] += window_values[:, j]
        covers[j:j + count] += 1.0
    return totals / covers.reshape((-1,) + (1,) * (totals.ndim - 1))


def pooled_window_mean(values: np.ndarray, width: int) -> np.ndarray:
    """(T, ...) for each step, the mean over the windows of `width` steps covering it of each
    window's mean of `values` (T, ...): a triangular-weighted moving average."""
    count = len(values) - width + 1
    window_means = np.zeros((count,) + values.shape[1:])
    for j in range(width):
        window_means += values[j:j + count]
    window_means /= width
    return covering_mean(np.broadcast_to(window_means[:, None], (count, width) + values.shape[1:]),
                         len(values))
