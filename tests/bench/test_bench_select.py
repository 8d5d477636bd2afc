"""The model-choice benchmark: worker, summary and page on the tiny synthetic set."""
from __future__ import annotations

from oddity.bench import select as bench
from oddity.bench.common import merging_writer, read_runs
from oddity.image import select

CANDIDATES = (("test-meandiff", {"image_size": 64}), ("patchcore", {"image_size": 64}))


def test_worker_scores_every_candidate_and_the_page_shows_the_gap(inspection_set, monkeypatch, tmp_path):
    monkeypatch.setattr(select, "CANDIDATES", CANDIDATES)
    result = bench.worker(str(inspection_set), 12, 3)
    run = bench.SelectRun(dataset=str(inspection_set), max_fit=12, max_test=3, command="python x", **result)
    assert run.selection["fit_images"] + run.selection["validation_images"] == 12
    assert len(run.test) == 2 and all(0.0 <= t["image_auroc"] <= 1.0 for t in run.test)
    assert run.refit_test["pixel_auroc"] is not None
    summary = bench.summary(run)
    best = max(t["image_auroc"] for t in run.test)
    assert summary["best_auroc"] == best and summary["gap"] == best - summary["chosen_auroc"]
    merging_writer(tmp_path, "select", bench.SelectRun, bench.markdown_table)([run])
    page = (tmp_path / "select.md").read_text()
    assert "`python x`" in page and "(chosen)" in page and "at most 3 normal and 3 defective" in page
    assert read_runs(tmp_path, "select", bench.SelectRun)[0].key == run.key


def test_without_refit_the_candidates_are_still_scored_and_the_page_shows_no_refit(inspection_set, monkeypatch,
                                                                                   tmp_path):
    monkeypatch.setattr(select, "CANDIDATES", CANDIDATES)
    result = bench.worker(str(inspection_set), 12, 3, False)
    assert result["refit_test"] is None and len(result["test"]) == 2 and all(result["test"])
    run = bench.SelectRun(dataset=str(inspection_set), max_fit=12, max_test=3, command="python x", **result)
    assert bench.summary(run)["gap"] is not None
    assert "| – / –, – |" in bench.markdown_table([run])
