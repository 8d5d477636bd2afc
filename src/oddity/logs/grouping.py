"""Grouping parsed log lines into sequences: sessions by id, count windows, time windows.

- sessions: every match of a regex in the message (or the value of a field) names a session;
  a line naming several sessions (an HDFS line with two block ids) joins each of them;
  sessions are ordered by their first line;
- count windows of `size` lines every `step` lines (fixed when `step == size`, sliding when
  smaller); a last, shorter window covers the tail;
- time windows of `size` seconds every `step` seconds, from a time field (`time_format` as in
  `datetime.strptime`, or epoch seconds when none is given).

A sequence's label is 1 when any of its lines is labelled anomalous (line labels), or comes
from a table of session labels.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Iterable

import numpy as np

from oddity.core.errors import ConfigError, DataError
from oddity.logs.data import LogLine
from oddity.logs.results import LogSequences

Event = tuple[LogLine, str]  # a parsed line and its template text


@dataclass(frozen=True)
class Grouping:
    """How lines become sequences (JSON-friendly; saved in log models).

    Parameters
    ----------
    kind : {"session", "count", "time"}
        Sessions by id, count windows or time windows.
    session : str, optional
        Regex whose matches in the message are session ids (kind "session").
    session_field : str, optional
        Field whose value is the session id (kind "session"; instead of `session`).
    size : float
        Window length in lines or seconds.
    step : float, optional
        Window step (default `size`: fixed windows).
    time_field : str, optional
        Field holding the time stamp (kind "time").
    time_format : str, optional
        `strptime` format of the time stamp; epoch seconds when not given.
    """

    kind: str = "session"
    session: str | None = None
    session_field: str | None = None
    size: float = 20
    step: float | None = None
    time_field: str | None = None
    time_format: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("session", "count", "time"):
            raise ConfigError(f"grouping kind {self.kind!r}: choose session, count or time")
        if self.kind == "session" and (self.session is None) == (self.session_field is None):
            raise ConfigError("sessions need exactly one of --session REGEX or --session-field NAME")
        if self.kind == "session" and self.session is not None:
            try:
                re.compile(self.session)
            except re.error as exc:
                raise ConfigError(f"--session {self.session!r}: invalid regex ({exc})") from None
        if self.kind != "session" and not (self.size > 0 and (self.step or self.size) > 0):
            raise ConfigError(f"window size and step must be positive, got {self.size} and {self.step}")
        if self.kind == "count" and (self.size != int(self.size) or (self.step or 1) != int(self.step or 1)):
            raise ConfigError("count windows need whole numbers of lines for size and step")
        if self.kind == "time" and self.time_field is None:
            raise ConfigError("time windows need --time-field (the field holding the time stamp)")

    def to_dict(self) -> dict:
        """The fields as JSON-serialisable data.

        Returns
        -------
        dict
            Field name to value.
        """
        return asdict(self)

    def group(self, events: Iterable[Event], session_labels: dict[str, int] | None = None,
              contents: bool = False) -> LogSequences:
        """The sequences of `events` (see the module docstring).

        Parameters
        ----------
        events : iterable of (LogLine, template text)
            Parsed lines in file order.
        session_labels : dict, optional
            Session id -> label (1 anomalous), overriding line labels where given.
        contents : bool, default False
            Keep each event's message in `LogSequences.contents` (memory grows with the
            file's text, not only with its templates).

        Returns
        -------
        LogSequences

        Raises
        ------
        DataError
            No line names a session, or no line at all.
        """
        if self.kind == "session":
            sequences = _sessions(events, self, contents)
        else:
            sequences = _windows(events, self, contents)
        if session_labels is not None:
            missing = [i for i in sequences.ids if i not in session_labels]
            if len(missing) == len(sequences.ids):
                raise DataError(f"no session id is in the labels table (first id {missing[0]!r})")
            base = sequences.labels if sequences.labels is not None else np.zeros(len(sequences), np.int64)
            sequences.labels = np.array([session_labels.get(i, b) for i, b in zip(sequences.ids, base)],
                                        dtype=np.int64)
        return sequences


Row = tuple[str, int, int | None, str | None]  # template, line number, label, message


def _build(ids: list[str], rows: list[list[Row]], contents: bool) -> LogSequences:
    labelled = any(label is not None for row in rows for _, _, label, _ in row)
    labels = (np.array([int(any(label for _, _, label, _ in row)) for row in rows], dtype=np.int64)
              if labelled else None)
    return LogSequences(ids=ids, events=[[t for t, _, _, _ in row] for row in rows], labels=labels,
                        lines=[[n for _, n, _, _ in row] for row in rows],
                        contents=[[c for _, _, _, c in row] for row in rows] if contents else None)


def _sessions(events: Iterable[Event], grouping: Grouping, contents: bool) -> LogSequences:
    regex = re.compile(grouping.session) if grouping.session else None
    sessions: dict[str, list[Row]] = {}
    first: LogLine | None = None
    for line, template in events:
        first = first or line
        if regex is not None:
            keys = dict.fromkeys(m.group(0) for m in regex.finditer(line.content))
        else:
            value = line.fields.get(grouping.session_field or "")
            keys = {value: None} if value else {}
        for key in keys:
            sessions.setdefault(key, []).append((template, line.number, line.label,
                                                 line.content if contents else None))
    if first is None:
        raise DataError("no log lines to group")
    if not sessions:
        what = f"--session {grouping.session!r}" if regex else f"--session-field {grouping.session_field!r}"
        raise DataError(f"{what} names no session in any line; line {first.number} is "
                        f"{first.content[:200]!r}")
    return _build(list(sessions), list(sessions.values()), contents)


def _timestamp(line: LogLine, grouping: Grouping) -> float:
    value = line.fields.get(grouping.time_field or "")
    try:
        if grouping.time_format:
            return datetime.strptime(value or "", grouping.time_format).timestamp()
        return float(value or "")
    except ValueError:
        raise DataError(f"line {line.number}: time field {grouping.time_field!r} = {value!r} does "
                        f"not read as {grouping.time_format or 'epoch seconds'}; set --time-format") from None


def _windows(events: Iterable[Event], grouping: Grouping, contents: bool) -> LogSequences:
    rows: list[tuple[float, str, int, int | None, str | None]] = []
    for k, (line, template) in enumerate(events):
        position = float(k) if grouping.kind == "count" else _timestamp(line, grouping)
        rows.append((position, template, line.number, line.label, line.content if contents else None))
    if not rows:
        raise DataError("no log lines to group")
    positions = np.array([r[0] for r in rows])
    if grouping.kind == "time" and np.any(np.diff(positions) < 0):
        order = np.argsort(positions, kind="stable")
        rows, positions = [rows[i] for i in order], positions[order]
    size, step = grouping.size, grouping.step or grouping.size
    ids, windows = [], []
    start = positions[0]
    while True:
        lo, hi = np.searchsorted(positions, [start, start + size], side="left")
        if hi > lo:
            ids.append(f"{start:g}" if grouping.kind == "count" else datetime.fromtimestamp(start).isoformat())
            windows.append([row[1:] for row in rows[lo:hi]])
        if start + size > positions[-1]:
            break
        start += step
    return _build(ids, windows, contents)
