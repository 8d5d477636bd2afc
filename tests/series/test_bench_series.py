"""The series benchmark runner on a tiny NAB folder: a fresh process per detector, results
written, read back and merged."""
import json
from dataclasses import asdict

from oddity.bench.common import merge_runs
from oddity.bench.series import (
    SeriesRun,
    cache_path,
    read_results,
    refresh_nab,
    run_one,
    write_results,
)
from oddity.series.evaluate import load_arrays


def test_run_write_read_merge(tmp_path, nab_root):
    run = run_one(nab_root, "rolling_zscore", {"window": 16}, timeout=300)
    assert run.error is None, run.error
    assert run.evaluation["overall"]["series"] == 3 and run.peak_rss_gb > 0
    assert "load_average" not in asdict(run)
    failed = run_one(nab_root, "window_iforest", {}, timeout=0.01)
    assert failed.error == "timed out after 0 s"
    write_results([run, failed], tmp_path, "make bench")
    table = (tmp_path / "series.md").read_text()
    assert "| **rolling_zscore** | window=16 |" in table and "failed: timed out" in table
    assert "| realTest |" in table
    document = json.loads((tmp_path / "series.json").read_text())
    document["runs"][0]["load_average"] = [1.0, 2.0]  # a field of older files, ignored on reading
    (tmp_path / "series.json").write_text(json.dumps(document))
    again = read_results(tmp_path)
    assert [r.key for r in again] == [run.key, failed.key]
    redone = SeriesRun("window_iforest", {}, error="re-measured")
    merged = merge_runs(again, [redone, SeriesRun("hypad", {})])
    assert [r.detector for r in merged] == ["rolling_zscore", "window_iforest", "hypad"]
    assert merged[1].error == "re-measured"



def test_saved_scores_give_the_same_nab_figures_without_a_refit(tmp_path, nab_root):
    run = run_one(nab_root, "rolling_zscore", {"window": 16}, timeout=300, cache_dir=tmp_path)
    assert run.error is None, run.error
    path = cache_path(tmp_path, "rolling_zscore", {"window": 16})
    assert path.name == "rolling_zscore-window=16.npz"
    evaluation = load_arrays(path, "rolling_zscore", {"window": 16})
    figures = evaluation.nab_figures()
    assert set(figures) == {"nab", "nab_level", "nab_likelihood", "nab_alerts", "nab_calibrated"}
    assert len(evaluation.series) == 3 and figures == {key: run.evaluation[key] for key in figures}
    stale = SeriesRun("rolling_zscore", {"window": 16}, evaluation={**run.evaluation,
                                                                     "nab": {"standard": 0.0}})
    assert refresh_nab([stale], tmp_path)[0].evaluation["nab"] == run.evaluation["nab"]
    write_results([stale], tmp_path, "make bench")
    table = (tmp_path / "series.md").read_text()
    assert "rolling_zscore (window=16), likelihood" in table and "(b) calibrated" in table
