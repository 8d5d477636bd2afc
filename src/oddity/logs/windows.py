"""Next-event training pairs of event sequences: each event with the `history` events before it."""
from __future__ import annotations

import numpy as np

from oddity.logs.detector import PAD


def next_event_pairs(codes: list[np.ndarray], history: int, start: int,
                     end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(histories (N, history), targets (N,)) over every event of every sequence.

    Each sequence is prefixed with the code `start`, so its first event is predicted too, and
    followed by the code `end` when given, so that where it stops is predicted as well;
    histories shorter than `history` are padded on the left with `PAD`.

    Parameters
    ----------
    codes : list of numpy.ndarray
        Event codes per sequence.
    history : int
        Events of context.
    start : int
        Code of the start marker.
    end : int, optional
        Code of the end marker.

    Returns
    -------
    tuple of numpy.ndarray
        (histories, targets).
    """
    if end is not None:
        codes = [np.append(c, end) for c in codes]
    total = sum(len(c) for c in codes)
    histories = np.full((total, history), PAD, dtype=np.int64)
    targets = np.empty(total, dtype=np.int64)
    row = 0
    for c in codes:
        padded = np.concatenate([np.full(history - 1, PAD, np.int64), [start], c])
        view = np.lib.stride_tricks.sliding_window_view(padded[:-1], history)
        histories[row:row + len(c)] = view
        targets[row:row + len(c)] = c
        row += len(c)
    return histories, targets
