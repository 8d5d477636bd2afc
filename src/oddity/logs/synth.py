"""A synthetic log of block sessions (HDFS-like) with known anomalous sessions, for tests,
examples and the memory benchmark.

A normal session allocates a block, receives it on three nodes, and each node reports receipt,
a terminating responder and a stored-block update, in a slightly shuffled order; sessions
interleave in the file. An anomalous session either hits an exception (a message never seen
in normal sessions) or stops after the first receipt (cut short).

A second generator writes a log of events that carry field values (`write_field_log`), with
anomalous lines that pair an event with another event's value.
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


FIELD_FORMAT = "<Label> <Date> <Time> <Level> <Component>: <Content>"
_FIELD_EVENTS = (  # (component, message with a {} for its field value, the values it takes)
    ("sshd", "accepted connection from {}", [f"10.0.0.{k}" for k in range(1, 7)]),
    ("backup", "wrote archive {}", [f"/var/backup/{name}.tar" for name in ("db", "web", "mail")]),
    ("cron", "ran job {}", ["/usr/bin/logrotate", "/usr/bin/updatedb"]),
    ("sudo", "session opened state=OK user={}", ["admin", "ops"]),
    ("kernel", "eth0 link up", []),
)


def write_field_log(path: str | os.PathLike, n_lines: int, anomaly_rate: float = 0.01,
                    seed: int = 0) -> list[int]:
    """Write a log whose messages carry field values (addresses, paths, users), each event
    with its own values; an anomalous line pairs an event with a value that only another
    event takes: cron running a backup archive, or a backup written to a cron program.
    Lines are labelled in their first field ('-' normal, 'ANOMALY'), format `FIELD_FORMAT`.

    Parameters
    ----------
    path : path-like
        File to write.
    n_lines : int
        Number of lines.
    anomaly_rate : float
        Share of anomalous lines.
    seed : int
        Random seed.

    Returns
    -------
    list of int
        The 1-based numbers of the anomalous lines.
    """
    rng = np.random.default_rng(seed)
    swapped = {1: 2, 2: 1}  # backup <-> cron paths
    anomalous = []
    with Path(path).open("w", encoding="utf-8") as handle:
        for number in range(1, n_lines + 1):
            k = int(rng.integers(len(_FIELD_EVENTS)))
            component, message, values = _FIELD_EVENTS[k]
            odd = k in swapped and rng.random() < anomaly_rate * len(_FIELD_EVENTS) / len(swapped)
            if odd:
                values = _FIELD_EVENTS[swapped[k]][2]
                anomalous.append(number)
            value = values[int(rng.integers(len(values)))] if values else ""
            clock = number * 2
            handle.write(f"{'ANOMALY' if odd else '-'} 081109 {(clock // 3600) % 24:02d}{(clock // 60) % 60:02d}"
                         f"{clock % 60:02d} INFO {component}: {message.format(value)}\n")
    return anomalous
