"""Evaluation plots: the data drawn are the data computed (sklearn ROC, PRO curve, AUPIMO,
threshold line), thinning keeps the curve's shape, PNGs are written atomically."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from oddity.metrics import aupro, pro_curve
from oddity.plots import (aupimo_figure, pro_figure, roc_figure, save_figure, score_histogram_figure,
                          thin_curve)


def artist(figure, gid):
    found = [a for a in figure.axes[0].get_children() if a.get_gid() == gid]
    assert len(found) == 1, f"no single artist with gid {gid!r}"
    return found[0]


@pytest.fixture
def labelled_scores():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(30, int), np.ones(20, int)]
    scores = np.round(rng.normal(size=50) + 1.2 * labels, 1)  # rounded: ties included
    return labels, scores


def test_roc_figure_draws_sklearns_curve_and_the_operating_point(labelled_scores):
    labels, scores = labelled_scores
    figure = roc_figure(labels, scores, threshold=0.5)
    fpr, tpr, _ = roc_curve(labels, scores)
    np.testing.assert_array_equal(artist(figure, "roc").get_xdata(), fpr)
    np.testing.assert_array_equal(artist(figure, "roc").get_ydata(), tpr)
    point = artist(figure, "operating-point")
    assert point.get_xdata()[0] == pytest.approx(np.mean(scores[labels == 0] > 0.5))
    assert point.get_ydata()[0] == pytest.approx(np.mean(scores[labels == 1] > 0.5))
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert f"AUROC {roc_auc_score(labels, scores):.3f}" in legend
    # Without a threshold there is no operating point.
    assert not [a for a in roc_figure(labels, scores).axes[0].lines if a.get_gid() == "operating-point"]


def test_histogram_draws_both_classes_on_shared_bins_and_the_threshold(labelled_scores):
    labels, scores = labelled_scores
    figure = score_histogram_figure(labels, scores, threshold=0.75, bins=10)
    line = artist(figure, "threshold")
    assert list(line.get_xdata()) == [0.75, 0.75]
    bars = {name: [p for p in figure.axes[0].patches if p.get_gid() == f"hist:{name}"]
            for name in ("normal", "anomalous")}
    # The bar heights are the counts of each class; both classes use the same bin edges.
    for name, label in (("normal", 0), ("anomalous", 1)):
        heights = [p.get_height() for p in bars[name]]
        edges = np.linspace(scores.min(), scores.max(), 11)
        np.testing.assert_array_equal(heights, np.histogram(scores[labels == label], edges)[0])
    assert [p.get_x() for p in bars["normal"]] == [p.get_x() for p in bars["anomalous"]]
    # A threshold outside the scores widens the axis so that the line stays visible.
    wide = score_histogram_figure(labels, scores, threshold=scores.max() + 5)
    assert wide.axes[0].get_xlim()[1] >= scores.max() + 5
    assert figure.axes[0].get_xscale() == "linear"  # scores of both signs


def test_histogram_of_scores_spanning_decades_uses_log_bins():
    labels = np.r_[np.zeros(20, int), np.ones(10, int)]
    scores = np.r_[np.linspace(30, 60, 20), 80, 90, 100, 120, 150, 200, 250, 700, 900, 1250]
    figure = score_histogram_figure(labels, scores, threshold=56.0, bins=20)
    assert figure.axes[0].get_xscale() == "log"
    assert list(artist(figure, "threshold").get_xdata()) == [56.0, 56.0]
    edges = np.geomspace(30, 1250, 21)
    heights = [p.get_height() for p in figure.axes[0].patches if p.get_gid() == "hist:normal"]
    np.testing.assert_array_equal(heights, np.histogram(scores[:20], edges)[0])
    assert score_histogram_figure(labels, scores, 56.0, log=False).axes[0].get_xscale() == "linear"
    with pytest.raises(ValueError, match="positive"):
        score_histogram_figure(labels, scores - 100, log=True)


def test_thin_curve_keeps_ends_and_shape():
    x = np.concatenate(([0.0], np.repeat(np.linspace(0, 0.3, 50_000), 2)))
    y = np.concatenate(([0.0], np.repeat(np.sqrt(np.linspace(0, 1, 50_000)), 2)))
    tx, ty = thin_curve(x, y, 1000)
    assert tx.size <= 1002 and (tx[0], ty[0]) == (0.0, 0.0) and (tx[-1], ty[-1]) == (x[-1], y[-1])
    assert np.all(np.diff(tx) >= 0) and np.all(np.diff(ty) >= 0)
    # Thinned vertices are vertices of the curve, dense enough to follow it closely.
    assert np.max(np.abs(np.interp(x, tx, ty) - y)) < 0.03
    small = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    assert thin_curve(*small, 1000)[0] is small[0]


def test_pro_figure_draws_the_integrated_curve():
    rng = np.random.default_rng(2)
    masks = np.zeros((4, 40, 40), bool)
    masks[2, 5:15, 5:12] = masks[3, 20:30, 18:33] = True
    maps = rng.random(masks.shape) + 0.6 * masks
    value = aupro(maps, masks)
    fpr, pro = pro_curve(maps, masks)
    figure = pro_figure(fpr, pro, value, max_points=400)
    line = artist(figure, "pro")
    x, y = line.get_xdata(), line.get_ydata()
    assert x.size <= 402 and x[-1] == pytest.approx(0.3) and figure.axes[0].get_xlim() == (0.0, 0.3)
    assert np.trapezoid(y, x) / 0.3 == pytest.approx(value, abs=0.01)  # thinned, still the same area
    assert f"AUPRO {value:.3f}" in line.get_label()


def test_aupimo_box_plot_per_defect_with_all_first():
    values = {"crack": np.array([0.9, 0.8, np.nan]), "hole": np.array([0.1, 0.3, 0.2, 0.4]),
              "empty": np.array([np.nan])}
    figure = aupimo_figure(values)
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks == ["all\n(n=6)", "crack\n(n=2)", "hole\n(n=4)"]
    np.testing.assert_array_equal(artist(figure, "points:crack").get_ydata(), [0.9, 0.8])
    assert sorted(artist(figure, "points:all").get_ydata()) == [0.1, 0.2, 0.3, 0.4, 0.8, 0.9]
    assert "mean 0.450" in figure.axes[0].get_title()
    single = aupimo_figure({"scratch": np.array([0.5, 1.0])})
    assert [t.get_text() for t in single.axes[0].get_xticklabels()] == ["scratch\n(n=2)"]


def test_save_figure_writes_png_atomically(labelled_scores, tmp_path):
    figure = roc_figure(*labelled_scores)
    save_figure(figure, tmp_path / "sub" / "roc.png")
    with Image.open(tmp_path / "sub" / "roc.png") as image:
        assert image.format == "PNG" and image.size == (500, 360)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    save_figure(figure, tmp_path / "sub" / "small.png", colours=64)
    with Image.open(tmp_path / "sub" / "small.png") as image:
        assert image.mode == "P" and len(image.getcolors()) <= 64 and image.size == (500, 360)
    assert (tmp_path / "sub" / "small.png").stat().st_size < (tmp_path / "sub" / "roc.png").stat().st_size

    figure.savefig = broken
    with pytest.raises(RuntimeError):
        save_figure(figure, tmp_path / "other.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
