"""Image benchmark runner: the child writes the light report, image.md links and shows it."""
from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image

from oddity.bench.image import (REPORT_COLOURS, REPORT_ERRORS, REPORT_THUMBNAIL, Run, worker,
                                markdown_table, report_folder_name, run_one, write_results)


def test_report_folder_names():
    assert report_folder_name("/data/mvtec_ad/bottle", "patchcore", {}) == "bottle-patchcore"
    assert (report_folder_name("bottle", "patchcore", {"image_size": 64, "coreset_ratio": 0.01})
            == "bottle-patchcore-coreset_ratio=0.01-image_size=64")
    assert report_folder_name("x", "padim", {"layers": ["stage2", "stage3"]}) == "x-padim-layers=_stage2_stage3_"


def testworker_writes_the_light_report(inspection_set, tmp_path):
    result = worker(str(inspection_set), "test-meandiff", {"image_size": 64}, str(tmp_path / "plots" / "r"))
    page = tmp_path / "plots" / "r" / "index.html"
    assert result["report"] == str(page) and result["report_seconds"] > 0
    assert set(result["metrics"]) >= {"aupimo", "image_f1max", "aupro"}
    text = page.read_text()
    assert "Heat maps" not in text and "ROC curve" in text and "Errors at the threshold" in text
    images = {p.name for p in (page.parent / "images").iterdir()}
    assert {"roc.png", "pro.png", "scores.png"} <= images
    cards = [name for name in images if re.fullmatch(r"f[np]-\d\d\.png", name)]
    assert len(cards) <= 2 * REPORT_ERRORS
    assert cards  # the tiny set has errors at its threshold
    for name in cards:
        with Image.open(page.parent / "images" / name) as card:
            assert card.height == min(REPORT_THUMBNAIL, 64)  # 64 px test images, never enlarged
    for path in (page.parent / "images").iterdir():  # small files: palette PNGs
        with Image.open(path) as image:
            assert image.mode == "P" and len(image.getcolors()) <= REPORT_COLOURS
    json.dumps(result)  # travels from the child as JSON


def test_markdown_links_reports_and_shows_plots(tmp_path):
    folder = tmp_path / "plots" / "bottle-patchcore"
    (folder / "images").mkdir(parents=True)
    for name in ("roc", "pro", "scores"):  # no aupimo.png: not shown
        (folder / "images" / f"{name}.png").write_bytes(b"png")
    metrics = {"image_auroc": 1.0, "aupimo": 0.5, "image_f1max": 0.9}
    runs = [Run("/d/bottle", "patchcore", {}, metrics, 12.0, 1.5, report=str(folder / "index.html")),
            Run("/d/bottle", "padim", {}, metrics, 3.0, 1.0),
            Run("/d/tile", "padim", {}, error="boom")]
    write_results(runs, tmp_path, "make bench")
    text = (tmp_path / "image.md").read_text()
    row = next(line for line in text.splitlines() if "**patchcore**" in line)
    assert row.endswith("| [plots](plots/bottle-patchcore/index.html) |") and "| 0.500 |" in row
    header = next(line for line in text.splitlines() if line.startswith("| dataset"))
    assert all(line.count("|") == header.count("|") for line in text.splitlines()
               if line.startswith("| bottle") and "failed" not in line)
    assert "![roc](plots/bottle-patchcore/images/roc.png)" in text
    assert "![pro](plots/bottle-patchcore/images/pro.png)" in text and "aupimo.png" not in text
    assert text.count("### ") == 1  # only the run with a report
    document = json.loads((tmp_path / "image.json").read_text())
    assert document["runs"][0]["report"] == "plots/bottle-patchcore/index.html"
    assert document["runs"][1]["report"] is None
    assert "[plots]" not in markdown_table(runs[1:], "make bench")


def test_run_one_writes_the_report_from_a_fresh_process(inspection_set, tmp_path):
    report_dir = tmp_path / "plots" / report_folder_name(inspection_set, "patchcore", {"image_size": 64})
    run = run_one(inspection_set, "patchcore", {"image_size": 64}, timeout=600, report_dir=report_dir)
    assert run.error is None, run.error
    assert run.report == str(report_dir / "index.html") and (report_dir / "images" / "roc.png").is_file()
    assert run.metrics["image_auroc"] > 0.8 and "aupimo" in run.metrics
    assert run.peak_rss_gb > 0 and run.report_seconds > 0


def test_merge_runs_replaces_re_measured_rows_and_keeps_the_rest():
    from oddity.bench.common import merge_runs
    from oddity.bench.image import Run

    old = [Run("data/bottle", "patchcore", {}, {"image_auroc": 0.5}), Run("data/bottle", "padim", {})]
    new = [Run("data/bottle", "patchcore", {}, {"image_auroc": 0.9}), Run("data/tile", "padim", {})]
    merged = merge_runs(old, new)
    assert [(Path(r.dataset).name, r.detector) for r in merged] == [
        ("bottle", "patchcore"), ("bottle", "padim"), ("tile", "padim")]
    assert merged[0].metrics["image_auroc"] == 0.9


def testworker_scores_a_zero_shot_detector_on_the_test_split_alone(inspection_set):
    result = worker(str(inspection_set), "musc", {"image_size": 64})
    assert result["fit_seconds"] < 0.1  # nothing fitted, train/ never read
    assert result["metrics"]["test_images"] == 10 and result["metrics"]["pixel_auroc"] is not None
