"""Evaluation plots: one function per figure, each returning a matplotlib `Figure`.

Figures are built with `matplotlib.figure.Figure`, never pyplot: no display, no global figure
registry to leak memory in long runs, and the PNG is rendered by Agg. `save_figure` writes a
figure as PNG atomically. The plotted data carry a `gid` (`"roc"`, `"pro"`, `"threshold"`,
`"operating-point"`, ...) so that tests, and readers of the code, can find each artist.
`save_figure(..., colours=N)` writes a palette PNG instead, for files that get committed.

- `roc_figure`: image-level ROC curve (scikit-learn's `roc_curve`), the calibrated threshold
  marked as the operating point.
- `pro_figure`: the per-region-overlap curve up to its FPR limit (`oddity.metrics.pro_curve`),
  thinned for drawing, with the AUPRO in the legend.
- `aupimo_figure`: box plot of per-image AUPIMO, one box per defect type plus "all".
- `score_histogram_figure`: image scores of normal and anomalous test images on shared bins,
  with the calibrated threshold as a vertical line.
"""
from __future__ import annotations

import io
import os
from typing import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from sklearn.metrics import roc_curve

from oddity.core.persistence import atomic_write
from oddity.viz import save_palette_png

NORMAL_COLOUR = "tab:blue"
ANOMALOUS_COLOUR = "tab:red"
THRESHOLD_COLOUR = "black"
FIGSIZE = (5.0, 3.6)  # inches; at DPI 100 a 500x360 PNG of 15-40 KB
DPI = 100


def _figure(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, object]:
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.add_subplot()


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = DPI,
                colours: int | None = None) -> None:
    """Write `figure` as a PNG file atomically (no partial file on failure); with `colours`,
    as a palette PNG of at most that many colours (a plot: about 8 KB instead of 25 KB).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        The PNG file.
    dpi : int, default 100
        Resolution.
    colours : int, optional
        Palette size (None: full colour).
    """
    if colours is None:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi,
                                                      metadata={"Software": None}))
        return
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as rendered:
        save_palette_png(path, rendered, colours)


def roc_figure(labels: np.ndarray, scores: np.ndarray, threshold: float = float("nan")) -> Figure:
    """Image-level ROC curve of `scores` against `labels` (1 = anomalous), the points of
    scikit-learn's `roc_curve` joined by straight lines, with the chance diagonal and, when
    `threshold` is finite, the operating point `score > threshold` marked.

    Parameters
    ----------
    labels : numpy.ndarray
        (N,) 0/1, 1 = anomalous.
    scores : numpy.ndarray
        (N,) scores.
    threshold : float, default nan
        The operating point (not marked when not finite).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    fpr, tpr, _ = roc_curve(labels, scores)
    area = float(np.trapezoid(tpr, fpr))
    figure, ax = _figure()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, gid="chance")
    ax.plot(fpr, tpr, color=ANOMALOUS_COLOUR, linewidth=1.8, label=f"AUROC {area:.3f}", gid="roc")
    if np.isfinite(threshold):
        flagged = scores > threshold
        point = (float(flagged[~labels].mean()), float(flagged[labels].mean()))
        ax.plot(*point, marker="o", color=THRESHOLD_COLOUR, linestyle="none",
                label=f"threshold {threshold:.4g}: FPR {point[0]:.2f}, TPR {point[1]:.2f}",
                gid="operating-point")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false positive rate (normal images flagged)",
           ylabel="true positive rate", title="Image-level ROC")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return figure


def thin_curve(x: np.ndarray, y: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most about `max_points` vertices of a monotone curve for drawing: the first and last
    vertex and those where x or y crosses one of `max_points // 2` evenly spaced levels, so
    both steep and flat stretches keep their shape.

    Parameters
    ----------
    x, y : numpy.ndarray
        The vertices of a monotone curve.
    max_points : int, default 2000
        About how many to keep.

    Returns
    -------
    tuple of numpy.ndarray
        The kept x and y.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.size <= max_points:
        return x, y
    levels = max(2, max_points // 2)
    keep = np.concatenate((
        [0, x.size - 1],
        np.searchsorted(x, np.linspace(x[0], x[-1], levels)),
        np.searchsorted(y, np.linspace(y[0], y[-1], levels)),
    ))
    keep = np.unique(np.clip(keep, 0, x.size - 1))
    return x[keep], y[keep]


def pro_figure(fpr: np.ndarray, pro: np.ndarray, aupro: float | None = None,
               fpr_limit: float = 0.3, max_points: int = 2000) -> Figure:
    """The PRO curve (per-region overlap against pixel FPR) up to `fpr_limit`, as returned by
    `oddity.metrics.pro_curve`, thinned to about `max_points` vertices; `aupro` in the legend.

    Parameters
    ----------
    fpr, pro : numpy.ndarray
        The curve.
    aupro : float, optional
        Shown in the legend.
    fpr_limit : float, default 0.3
        Right end of the x axis.
    max_points : int, default 2000
        Vertices drawn at most.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    x, y = thin_curve(fpr, pro, max_points)
    figure, ax = _figure()
    label = f"AUPRO {aupro:.3f} (FPR <= {fpr_limit:g})" if aupro is not None else "PRO"
    ax.plot(x, y, color=ANOMALOUS_COLOUR, linewidth=1.8, label=label, gid="pro")
    ax.fill_between(x, y, color=ANOMALOUS_COLOUR, alpha=0.12, linewidth=0)
    ax.set(xlim=(0, fpr_limit), ylim=(-0.01, 1.01), xlabel="false positive rate (normal pixels)",
           ylabel="per-region overlap", title="PRO curve")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return figure


def aupimo_figure(values: Mapping[str, np.ndarray]) -> Figure:
    """Box plot of per-image AUPIMO, one box per group (`values`: group name -> AUPIMO of its
    anomalous images; NaN entries dropped); with several groups a box "all" comes first.
    Each image is drawn as a dot over its box (fixed jitter), the mean as a triangle.

    Parameters
    ----------
    values : mapping of str to numpy.ndarray
        Group name to AUPIMO of its anomalous images.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    groups = {name: np.asarray(v, np.float64)[~np.isnan(np.asarray(v, np.float64))]
              for name, v in values.items()}
    groups = {name: v for name, v in groups.items() if v.size}
    if len(groups) > 1:
        groups = {"all": np.concatenate(list(groups.values())), **groups}
    names = list(groups)
    figure, ax = _figure((max(FIGSIZE[0], 1.1 * len(names) + 1.5), FIGSIZE[1]))
    if not names:
        ax.text(0.5, 0.5, "no AUPIMO values", ha="center", va="center", transform=ax.transAxes)
        return figure
    ax.boxplot([groups[n] for n in names], showmeans=True, widths=0.5, showfliers=False,
               medianprops={"color": THRESHOLD_COLOUR},
               meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": THRESHOLD_COLOUR})
    rng = np.random.default_rng(0)
    for position, name in enumerate(names, start=1):
        v = groups[name]
        ax.plot(position + rng.uniform(-0.15, 0.15, v.size), v, "o", color=ANOMALOUS_COLOUR,
                alpha=0.45, markersize=3.5, gid=f"points:{name}")
    overall = groups.get("all", groups[names[0]])
    ax.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={groups[n].size})" for n in names])
    ax.set(ylim=(-0.03, 1.03), ylabel="AUPIMO per image",
           title=f"AUPIMO over anomalous images (mean {overall.mean():.3f})")
    ax.tick_params(axis="x", labelsize="small")
    ax.grid(axis="y", alpha=0.3)
    return figure


def score_histogram_figure(labels: np.ndarray, scores: np.ndarray, threshold: float = float("nan"),
                           bins: int = 40, log: bool | None = None) -> Figure:
    """Histograms of the image scores of normal and anomalous test images on the same bins,
    and the image threshold (`score > threshold` is flagged) as a vertical line. `log`: bins
    spaced evenly on a log axis; by default when every score is positive and the largest is
    more than 10 times the smallest, so that a few very high scores do not squash the rest
    (where normal and anomalous scores meet) into one or two bins.

    Parameters
    ----------
    labels : numpy.ndarray
        (N,) 0/1, 1 = anomalous.
    scores : numpy.ndarray
        (N,) scores.
    threshold : float, default nan
        Drawn when finite.
    bins : int, default 40
        Number of bins.
    log : bool, optional
        Log-spaced bins (default: decided from the scores).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    low, high = float(scores.min()), float(scores.max())
    if np.isfinite(threshold):
        low, high = min(low, threshold), max(high, threshold)
    if log is None:
        log = low > 0 and high > 10 * low
    if log and not low > 0:
        raise ValueError("a log axis needs positive scores (and threshold)")
    if high <= low:
        high = low + 1.0
    edges = np.geomspace(low, high, bins + 1) if log else np.linspace(low, high, bins + 1)
    figure, ax = _figure()
    for mask, colour, name in ((~labels, NORMAL_COLOUR, "normal"), (labels, ANOMALOUS_COLOUR, "anomalous")):
        ax.hist(scores[mask], bins=edges, color=colour, alpha=0.55, label=f"{name} ({int(mask.sum())})",
                gid=f"hist:{name}")
    if np.isfinite(threshold):
        ax.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.4,
                   label=f"threshold {threshold:.4g}", gid="threshold")
    if log:
        ax.set_xscale("log")
    ax.set(xlabel="image anomaly score" + (" (log scale)" if log else ""), ylabel="test images",
           title="Score distribution")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return figure
