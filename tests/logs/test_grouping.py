"""Grouping parsed lines into sessions and windows."""
from __future__ import annotations

import pytest

from oddity.core.errors import ConfigError, DataError
from oddity.logs.data import LogLine
from oddity.logs.grouping import Grouping


def _events(contents, labels=None, fields=None):
    return [(LogLine(k + 1, c, (fields or [{}] * len(contents))[k], None if labels is None else labels[k]),
             f"T{c.split()[0]}") for k, c in enumerate(contents)]


def test_sessions_by_regex_join_every_named_session():
    events = _events(["a blk_1", "b blk_2", "c blk_1 blk_2", "d nothing"], labels=[0, 0, 1, 0])
    sequences = Grouping("session", session=r"blk_-?\d+").group(events)
    assert sequences.ids == ["blk_1", "blk_2"]
    assert sequences.events == [["Ta", "Tc"], ["Tb", "Tc"]]
    assert sequences.lines == [[1, 3], [2, 3]]
    assert sequences.labels.tolist() == [1, 1]
    labelled = Grouping("session", session=r"blk_-?\d+").group(events, {"blk_1": 0, "blk_2": 1})
    assert labelled.labels.tolist() == [0, 1]


def test_sessions_by_field_and_errors():
    events = _events(["a", "b", "c"], fields=[{"pid": "7"}, {"pid": "8"}, {"pid": "7"}])
    assert Grouping("session", session_field="pid").group(events).events == [["Ta", "Tc"], ["Tb"]]
    with pytest.raises(DataError, match="names no session in any line; line 1 is 'a'"):
        Grouping("session", session=r"blk_\d+").group(events)
    with pytest.raises(ConfigError, match="exactly one"):
        Grouping("session")
    with pytest.raises(ConfigError, match="invalid regex"):
        Grouping("session", session="(")


def test_count_windows_fixed_and_sliding():
    events = _events([f"e{i}" for i in range(7)])
    fixed = Grouping("count", size=3).group(events)
    assert [len(e) for e in fixed.events] == [3, 3, 1]
    sliding = Grouping("count", size=4, step=2).group(events)
    assert [s[0] for s in sliding.lines] == [1, 3, 5]
    assert [len(e) for e in sliding.events] == [4, 4, 3]
    assert sliding.labels is None


def test_time_windows_from_epoch_or_format():
    times = [{"t": str(v)} for v in (0, 10, 59, 61, 200)]
    windows = Grouping("time", size=60, time_field="t").group(_events(list("abcde"), fields=times))
    assert [len(e) for e in windows.events] == [3, 1, 1]
    stamps = [{"t": f"2024-01-01 00:0{m}:00"} for m in (0, 1, 2)]
    windows = Grouping("time", size=120, step=60, time_field="t", time_format="%Y-%m-%d %H:%M:%S")
    assert [len(e) for e in windows.group(_events(list("abc"), fields=stamps)).events] == [2, 2]
    with pytest.raises(DataError, match="does not read as epoch seconds"):
        Grouping("time", size=5, time_field="t").group(_events(["a"], fields=[{"t": "noon"}]))
    with pytest.raises(ConfigError, match="time-field"):
        Grouping("time", size=5)
