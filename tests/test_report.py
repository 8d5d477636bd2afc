"""HTML report: files, ordering, escaping, extra sections, all-or-nothing writing."""
from __future__ import annotations

import html
import os
import re
import stat

import pytest

import oddity
from oddity.image.evaluate import evaluate
from oddity.report import SECTIONS, write_report


@pytest.fixture(scope="module")
def evaluation(inspection_set):
    detector = oddity.create("test-meandiff", image_size=64).fit(inspection_set, verbose=False)
    return evaluate(detector, inspection_set, verbose=False)


def test_report_folder_holds_page_and_images(evaluation, tmp_path):
    config = {"detector": "test-meandiff", "note": "<script>alert('x')</script> & more", "nested": {"a": [1, 2]}}
    page = write_report(tmp_path / "report", evaluation, config, max_images=5)
    text = page.read_text()
    assert page == tmp_path / "report" / "index.html"
    images = re.findall(r"<img src='([^']+)'", text)
    assert len(images) == 5 and all((page.parent / src).is_file() for src in images)
    assert len(list((page.parent / "images").iterdir())) == 5
    assert "<script>" not in text and html.escape("<script>alert('x')</script> & more") in text
    for heading in ("Metrics", "Configuration", "Heat maps", "image AUROC", "AUPRO"):
        assert heading in text
    # Most anomalous first: captions follow descending scores.
    shown = [float(s) for s in re.findall(r"score ([0-9.e+-]+)", text)]
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


def test_rewriting_replaces_the_report_but_keeps_other_files(evaluation, tmp_path):
    folder = tmp_path / "r"
    write_report(folder, evaluation, {}, max_images=4)
    (folder / "mine.txt").write_text("keep me")
    write_report(folder, evaluation, {}, max_images=2)
    assert (folder / "mine.txt").read_text() == "keep me"
    assert len(list((folder / "images").iterdir())) == 2


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
