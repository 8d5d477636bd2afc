"""Parse speed and memory of the template parser, with nothing else imported (so that the
peak RSS of a fresh process measures the parse, not unrelated libraries)."""
from __future__ import annotations

import time
from pathlib import Path

from oddity.logs.data import read_raw
from oddity.logs.parser import TemplateParser


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MB, from /proc (Linux): unlike
    `getrusage`, the peak is not inherited from the process that started this one."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def parse_throughput(path: Path, line_format: str) -> dict[str, float]:
    """Parse speed and memory of the template parser on one raw log file.

    Lines per second of mining `path` (read, split, mask, mine) and of matching it against
    the mined templates as a loaded model does (predict), per second of wall-clock time and per
    second of this process's CPU time (which other processes on the machine do not inflate);
    the resident memory before (MB), its peak after both passes, and the file size (bytes).

    Parameters
    ----------
    path : pathlib.Path
        A raw log file.
    line_format : str
        Its loghub-style line format, e.g. ``'<Date> <Time> <Level> <Component>: <Content>'``.

    Returns
    -------
    dict of str to float
        `lines`, `seconds`, `lines_per_s`, `match_lines_per_s`, `cpu_lines_per_s`,
        `match_cpu_lines_per_s`, `bytes`, `rss_before_mb` and `peak_rss_mb`.
    """
    before = _rss_mb("VmRSS")
    parser = TemplateParser()
    start, cpu = time.perf_counter(), time.process_time()
    lines = sum(1 for line in read_raw(path, line_format) if parser.learn(line.content) is not None)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    parser = TemplateParser.from_dict(parser.to_dict())  # as predict loads it: caches empty
    start, cpu = time.perf_counter(), time.process_time()
    matched = sum(1 for line in read_raw(path, line_format) if parser.match(line.content) is not None)
    match_seconds, match_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds,
            "match_lines_per_s": matched / match_seconds,
            "cpu_lines_per_s": lines / cpu_seconds, "match_cpu_lines_per_s": matched / match_cpu_seconds,
            "bytes": path.stat().st_size, "rss_before_mb": before, "peak_rss_mb": _rss_mb("VmHWM")}
