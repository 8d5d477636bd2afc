"""A synthetic log of block sessions (HDFS-like) with known anomalous sessions, for tests,
examples and the memory benchmark.

A normal session allocates a block, receives it on three nodes, and each node reports receipt,
a terminating responder and a stored-block update, in a slightly shuffled order; sessions
interleave in the file. An anomalous session either hits an exception (a message never seen
in normal sessions) or stops after the first receipt (cut short).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FORMAT = "<Date> <Time> <Pid> <Level> <Component>: <Content>"
SESSION = r"blk_-?\d+"


def _ip(rng: np.random.Generator) -> str:
    return f"10.{rng.integers(250)}.{rng.integers(250)}.{rng.integers(250)}:{rng.integers(50000, 50020)}"


def _session(block: str, anomalous: bool, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(level, component, message) lines of one session, in order."""
    size = int(rng.integers(1_000_000, 67_108_864))
    lines = [("INFO", "dfs.FSNamesystem", f"BLOCK* NameSystem.allocateBlock: /user/root/rand/_t/part-{rng.integers(100):05d}. {block}")]
    lines += [("INFO", "dfs.DataNode$DataXceiver", f"Receiving block {block} src: /{_ip(rng)} dest: /{_ip(rng)}")
              for _ in range(3)]
    tail = []
    for k in range(3):
        tail += [("INFO", "dfs.DataNode$PacketResponder", f"Received block {block} of size {size} from /{_ip(rng)}"),
                 ("INFO", "dfs.DataNode$PacketResponder", f"PacketResponder {k} for block {block} terminating"),
                 ("INFO", "dfs.FSNamesystem", f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {_ip(rng)} "
                                               f"is added to {block} size {size}")]
    order = np.argsort(np.arange(len(tail)) + rng.uniform(0, 2.5, len(tail)), kind="stable")
    tail = [tail[i] for i in order]
    if anomalous and rng.random() < 0.5:
        cut = int(rng.integers(2, len(tail)))
        tail.insert(cut, ("WARN", "dfs.DataNode$DataXceiver",
                          f"writeBlock {block} received exception java.io.IOException: Connection reset by peer"))
    elif anomalous:
        tail = tail[:1]
    return lines + tail


def write_session_log(path: str | os.PathLike, n_sessions: int, anomaly_rate: float = 0.05,
                      seed: int = 0) -> dict[str, int]:
    """Write a synthetic session log to `path`; return each session id's label (1 anomalous).

    Parameters
    ----------
    path : path-like
        File to write (format `FORMAT`, sessions found by the regex `SESSION`).
    n_sessions : int
        Number of block sessions.
    anomaly_rate : float
        Share of anomalous sessions.
    seed : int
        Random seed.

    Returns
    -------
    dict
        Session id -> label.
    """
    rng = np.random.default_rng(seed)
    labels: dict[str, int] = {}
    pending: list[list[tuple[str, str, str]]] = []
    clock = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for _ in range(n_sessions):
            block = f"blk_{int(rng.integers(-2**62, 2**62))}"
            labels[block] = int(rng.random() < anomaly_rate)
            pending.append(_session(block, bool(labels[block]), rng))
            while len(pending) > 3 or (pending and _ == n_sessions - 1):
                k = int(rng.integers(len(pending)))
                level, component, message = pending[k].pop(0)
                clock += int(rng.integers(0, 3))
                hh, mm, ss = (clock // 3600) % 24, (clock // 60) % 60, clock % 60
                handle.write(f"081109 {hh:02d}{mm:02d}{ss:02d} {rng.integers(10, 999)} {level} "
                             f"{component}: {message}\n")
                if not pending[k]:
                    pending.pop(k)
    return labels
