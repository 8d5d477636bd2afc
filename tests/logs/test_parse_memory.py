"""Parsing streams: memory stays bounded by the parser's caches and templates, not the file."""
from __future__ import annotations

import tracemalloc

from oddity.logs import masking, parser as parser_module
from oddity.logs.data import ReadReport
from oddity.logs.parser import TemplateParser
from oddity.logs.parsing import LogSource, matched, mine
from oddity.logs.synth import FORMAT, write_session_log


def _peak_bytes(path) -> int:
    """Peak traced memory of mining `path` and matching it again, as `oddity parse` / fit do."""
    source, template_parser = LogSource(format=FORMAT), TemplateParser()
    tracemalloc.start()
    try:
        mine(path, source, template_parser)
        lines = sum(1 for _ in matched(path, source, template_parser, ReadReport(str(path))))
        assert lines > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_parse_peak_memory_does_not_grow_with_the_file(tmp_path, monkeypatch):
    # small caches, so that a small file already fills them, as a large file fills the defaults
    monkeypatch.setattr(masking, "CACHE_SIZE", 300)
    monkeypatch.setattr(parser_module, "MATCH_CACHE", 300)
    small, large = tmp_path / "small.log", tmp_path / "large.log"
    write_session_log(small, 300, seed=0)
    write_session_log(large, 600, seed=0)
    assert large.stat().st_size > 1.9 * small.stat().st_size
    peak_small, peak_large = _peak_bytes(small), _peak_bytes(large)
    # twice the lines, about the same peak (bounded caches); what grows with the file is
    # at most a few counters
    assert peak_large < 1.15 * peak_small + 50_000, (peak_small, peak_large)
