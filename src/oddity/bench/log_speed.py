"""Parse speed and memory of the template parser, with nothing else imported (so that the
peak RSS of a fresh process measures the parse, not unrelated libraries)."""
from __future__ import annotations

import resource
import time
from pathlib import Path

from oddity.logs.data import read_raw
from oddity.logs.parser import TemplateParser


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_throughput(path: Path, line_format: str) -> dict[str, float]:
    """Lines per second of the whole parse of `path` (read, split, mask, mine), the peak RSS
    before and after it (MB), and the file size (bytes)."""
    before = _rss_mb()
    parser = TemplateParser()
    start = time.perf_counter()
    lines = sum(1 for line in read_raw(path, line_format) if parser.learn(line.content) is not None)
    seconds = time.perf_counter() - start
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds,
            "bytes": path.stat().st_size, "rss_before_mb": before, "peak_rss_mb": _rss_mb()}
