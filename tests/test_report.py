"""HTML report: files, ordering, escaping, extra sections, plots, worst errors, all-or-nothing
writing."""
from __future__ import annotations

import dataclasses
import html
import os
import re
import shutil
import stat

import numpy as np
import pytest
from PIL import Image

import oddity
from oddity.image.evaluate import evaluate
from oddity.image.synth import make_inspection_set
from oddity.report import SECTIONS, worst_errors, write_report

PLOTS = {"roc.png", "pro.png", "aupimo.png", "scores.png"}


@pytest.fixture(scope="module")
def evaluation(inspection_set):
    detector = oddity.create("test-meandiff", image_size=64).fit(inspection_set, verbose=False)
    return evaluate(detector, inspection_set, verbose=False)


@pytest.fixture(scope="module")
def full_evaluation(tmp_path_factory):
    """An evaluation with AUPIMO (8 normal test images of 128 px reach FPR 1e-5) and false
    positives at the calibrated threshold."""
    root = make_inspection_set(tmp_path_factory.mktemp("synth128") / "stripes", n_train=12,
                               n_test_good=8, n_test_defect=3, size=128, seed=1, texture="stripes")
    detector = oddity.create("test-meandiff", image_size=128).fit(root, verbose=False)
    evaluation = evaluate(detector, root, verbose=False)
    assert evaluation.aupimo is not None
    return evaluation


def referenced(page) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page.read_text())


def heat_map_section(text: str) -> str:
    return text[text.index("<h2>Heat maps</h2>"):]


def test_report_folder_holds_page_and_images(evaluation, tmp_path):
    config = {"detector": "test-meandiff", "note": "<script>alert('x')</script> & more", "nested": {"a": [1, 2]}}
    page = write_report(tmp_path / "report", evaluation, config, max_images=5)
    text = page.read_text()
    assert page == tmp_path / "report" / "index.html"
    images = referenced(page)
    assert all((page.parent / src).is_file() for src in images)
    # Every file in images/ is on the page; 5 heat-map cards as asked.
    assert sorted(images) == sorted(f"images/{p.name}" for p in (page.parent / "images").iterdir())
    assert len([src for src in images if re.fullmatch(r"images/\d{4}\.png", src)]) == 5
    assert "<script>" not in text and html.escape("<script>alert('x')</script> & more") in text
    for heading in ("Metrics", "Configuration", "Heat maps", "image AUROC", "AUPRO", "AUPIMO"):
        assert heading in text
    # Most anomalous first: captions follow descending scores.
    shown = [float(s) for s in re.findall(r"score ([0-9.e+-]+)", heat_map_section(text))]
    assert shown == sorted(shown, reverse=True) and len(shown) == 5
    assert shown[0] == pytest.approx(max(evaluation.scores), rel=1e-3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_sections_are_pluggable_and_escaped(evaluation, tmp_path):
    def extra(context):
        return "Score <histogram>", f"<p>{len(context.evaluation.scores)} scores</p>"

    def skipped(context):
        return None

    page = write_report(tmp_path / "r", evaluation, {}, sections=[*SECTIONS[:1], extra, skipped])
    text = page.read_text()
    assert "<h2>Score &lt;histogram&gt;</h2>" in text and f"<p>{len(evaluation.scores)} scores</p>" in text
    assert "Heat maps" not in text and text.count("<section>") == 2


def test_rewriting_replaces_the_report_whole(evaluation, tmp_path):
    folder = tmp_path / "r"
    write_report(folder, evaluation, {}, max_images=4)
    (folder / "stale.txt").write_text("from an earlier run")
    write_report(folder, evaluation, {}, max_images=2)
    assert not (folder / "stale.txt").exists()  # replaced whole, never merged
    assert len(list((folder / "images").glob("[0-9]*.png"))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_failure_leaves_no_partial_report(evaluation, tmp_path):
    def broken(context):
        context.save_image("half", evaluation.maps[0][:, :, None].repeat(3, 2) * 0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path / "r", evaluation, {}, sections=[*SECTIONS, broken])
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_usual_permissions(evaluation, tmp_path):
    mask = os.umask(0o022)
    try:
        page = write_report(tmp_path / "r", evaluation, {}, max_images=1)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(page.stat().st_mode) == 0o644
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in (page.parent / "images").iterdir())


def test_report_has_every_plot_and_the_page_shows_them(full_evaluation, tmp_path):
    page = write_report(tmp_path / "r", full_evaluation, {"detector": "test-meandiff"})
    text = page.read_text()
    files = {p.name for p in (page.parent / "images").iterdir()}
    assert PLOTS <= files
    assert {f"images/{name}" for name in PLOTS} <= set(referenced(page))
    for name in PLOTS:
        with Image.open(page.parent / "images" / name) as image:
            assert image.format == "PNG" and image.width >= 400
    headings = re.findall(r"<h2>([^<]+)</h2>", text)
    assert headings == ["Metrics", "Configuration", "ROC curve", "PRO curve", "AUPIMO distribution",
                        "Score histogram", "Errors at the threshold", "Heat maps"]
    metrics = full_evaluation.metrics
    assert f"Image AUROC {metrics['image_auroc']:.4f}" in text and f"AUPRO {metrics['aupro']:.4f}" in text
    assert f"mean AUPIMO {metrics['aupimo']:.4f}" in text
    # Cards show each anomalous image's AUPIMO.
    for i in np.flatnonzero(full_evaluation.labels):
        assert f"AUPIMO {full_evaluation.aupimo[i]:.3f}" in text
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.mark.parametrize("where", ["calibrated", "median anomalous"])
def test_error_grid_shows_the_worst_errors_at_the_threshold(full_evaluation, tmp_path, where):
    ev = full_evaluation
    if where != "calibrated":  # a higher threshold: missed defects, no false alarm
        ev = dataclasses.replace(ev, threshold=float(np.median(ev.scores[ev.labels == 1])))
    missed, false_alarms = worst_errors(ev.labels, ev.scores, ev.threshold, 12)
    assert (missed or false_alarms) and (bool(missed) == (where != "calibrated"))
    page = write_report(tmp_path / "r", ev, {}, max_images=0, max_errors=12, thumbnail_side=64)
    text = page.read_text()
    grid = {kind: re.search(rf"<div class='grid' id='{kind}'>(.*?)</div>", text) for kind in ("fn", "fp")}
    for kind, chosen in (("fn", missed), ("fp", false_alarms)):
        if not chosen:
            assert grid[kind] is None
            continue
        captions = re.findall(r"<span class='path'>([^<]+)</span>", grid[kind].group(1))
        assert captions == [html.escape(ev.paths[i]) for i in chosen]
        sources = re.findall(r"<img src='([^']+)'", grid[kind].group(1))
        assert sources == [f"images/{kind}-{rank:02d}.png" for rank in range(len(chosen))]
        assert grid[kind].group(1).count("class='missed'" if kind == "fn" else "class='false-positive'") == len(chosen)
        with Image.open(page.parent / sources[0]) as card:  # image and overlay, 64 px each
            assert card.height == 64 and card.width == 2 * 64 + 4
    # The light report: no heat-map grid, errors capped.
    assert "Heat maps" not in text and not list((page.parent / "images").glob("[0-9]*.png"))
    page = write_report(tmp_path / "r1", ev, {}, max_images=0, max_errors=1)
    assert len(list((page.parent / "images").glob("f[np]-*.png"))) == bool(missed) + bool(false_alarms)


def test_worst_errors_on_a_constructed_example():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.2, 0.5, 0.1, 0.7, 0.3, 0.95, 0.6, 0.5, 0.2])
    # Threshold 0.5 (flagged when > 0.5): missed 3 (0.1), 1 and 9 (0.2, test-set order), 2 (0.5
    # is not above); false alarms 6 (0.95), 4 (0.7), 7 (0.6); 8 (0.5) is not flagged.
    assert worst_errors(labels, scores, 0.5, 10) == ([3, 1, 9, 2], [6, 4, 7])
    assert worst_errors(labels, scores, 0.5, 2) == ([3, 1], [6, 4])
    assert worst_errors(labels, scores, 0.99, 10) == ([3, 1, 9, 2, 0], [])
    assert worst_errors(labels, scores, float("nan"), 10) == ([], [])


def test_report_without_masks_leaves_pixel_plots_out(inspection_set, tmp_path):
    root = tmp_path / "nomasks"
    shutil.copytree(inspection_set, root, ignore=shutil.ignore_patterns("ground_truth"))
    detector = oddity.create("test-meandiff", image_size=64).fit(inspection_set, verbose=False)
    page = write_report(tmp_path / "r", evaluate(detector, root, verbose=False), {}, max_images=2)
    text = page.read_text()
    assert "PRO curve" not in text and "AUPIMO" not in text.replace("AUPIMO (mean", "")
    assert {"roc.png", "scores.png"} <= {p.name for p in (page.parent / "images").iterdir()}
    assert not {"pro.png", "aupimo.png"} & {p.name for p in (page.parent / "images").iterdir()}


def test_aupimo_section_says_why_it_is_missing(evaluation, tmp_path):
    page = write_report(tmp_path / "r", evaluation, {}, max_images=0)
    text = page.read_text()
    assert "<h2>AUPIMO</h2>" in text and "AUPIMO not computed" in text
    assert not (page.parent / "images" / "aupimo.png").exists()


def test_histogram_threshold_is_the_detectors(full_evaluation, tmp_path, monkeypatch):
    import oddity.plots

    drawn = {}
    original = oddity.plots.score_histogram_figure

    def spy(labels, scores, threshold=float("nan"), **kwargs):
        figure = original(labels, scores, threshold, **kwargs)
        line = [a for a in figure.axes[0].lines if a.get_gid() == "threshold"]
        drawn["x"] = line[0].get_xdata()[0]
        return figure

    monkeypatch.setattr(oddity.plots, "score_histogram_figure", spy)
    write_report(tmp_path / "r", full_evaluation, {}, max_images=0, max_errors=0)
    assert drawn["x"] == full_evaluation.threshold and np.isfinite(drawn["x"])
