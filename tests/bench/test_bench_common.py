"""The parts every benchmark runner shares: a run in a fresh process, the loop over runs."""
from __future__ import annotations

from dataclasses import dataclass

from oddity.bench.common import run_all, run_in_child


def test_run_in_child_returns_the_workers_result_or_its_error():
    result, error = run_in_child("oddity.bench.common:cell", [0.12345, 2], timeout=60)
    assert (result, error) == ("0.12", None)
    result, error = run_in_child("oddity.bench.common:cell", [], timeout=60)
    assert result is None and "TypeError" in error


@dataclass
class Row:
    name: str
    value: int
    command: str = ""

    @property
    def key(self) -> str:
        return self.name


def test_run_all_writes_merged_results_after_every_run(capsys):
    written = []
    previous = [Row("a", 1), Row("b", 2)]
    jobs = [("row b", lambda: Row("b", 20)), ("row c", lambda: Row("c", 30))]
    runs = run_all(jobs, previous, "make bench", written.append, lambda run: f"value {run.value}")
    assert [(r.name, r.value, r.command) for r in runs] == [("b", 20, "make bench"), ("c", 30, "make bench")]
    assert [[(r.name, r.value) for r in rows] for rows in written] == [
        [("a", 1), ("b", 20)], [("a", 1), ("b", 20), ("c", 30)]]
    assert "row c ...\n  value 30" in capsys.readouterr().out
