"""HTML evaluation report: a self-contained folder with index.html and its PNG images.

The page is a list of sections. A section is a function that takes the `ReportContext` (the
evaluation, the configuration and helpers that save images and figures beside the page) and
returns its heading and HTML body, or None to leave the section out; `SECTIONS` lists them in
page order: metrics, configuration, ROC curve, PRO curve, AUPIMO distribution, score
histogram, worst errors at the calibrated threshold, heat maps. To add one, write the function
and add it to `SECTIONS`; figures come from `oddity.plots` (one function per plot), this module
only assembles. All text that comes from data (paths, parameters, notes) goes through
`html.escape`. The folder is staged and moved into place at the end, so an interrupted run
leaves no partial report. `write_report(..., max_images=0)` leaves out the heat-map grid (the
light report the benchmark commits: plots and the worst-error grid only).
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from oddity.core.persistence import staged_directory
from oddity.image import geometry
from oddity.image.data import read_image
from oddity.image.evaluate import Evaluation, metric_rows
from oddity.viz import centred_range, outline, overlay, save_png, shrink_mask, side_by_side, thumbnail

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IMAGE_FOLDER = "images"
THUMBNAIL_SIDE = 256
PRO_FPR_LIMIT = 0.3  # the FPR limit of the AUPRO in `evaluate`


@dataclass
class ReportContext:
    """What a section may use: the evaluation, the configuration to show, the folder the page
    is written to, how many images the heat-map grid may hold, how many images of each kind of
    error the error grid may hold, the long side of image thumbnails in pixels, and the number
    of palette colours PNGs are reduced to (None: full colour)."""

    evaluation: Evaluation
    config: dict[str, Any]
    folder: Path
    max_images: int
    max_errors: int = 12
    thumbnail_side: int = THUMBNAIL_SIDE
    png_colours: int | None = None

    def save_image(self, name: str, image: np.ndarray) -> str:
        """Save an RGB float image as images/<name>.png; return its path relative to the page.

        Parameters
        ----------
        name : str
            File stem.
        image : numpy.ndarray
            (H, W, 3) float RGB.

        Returns
        -------
        str
            Path relative to the page.
        """
        relative = f"{IMAGE_FOLDER}/{name}.png"
        save_png(self.folder / relative, image, self.png_colours)
        return relative

    def save_figure(self, name: str, figure: Figure) -> str:
        """Save a matplotlib figure as images/<name>.png; return its path relative to the page.

        Parameters
        ----------
        name : str
            File stem.
        figure : matplotlib.figure.Figure
            The figure.

        Returns
        -------
        str
            Path relative to the page.
        """
        from oddity.plots import save_figure

        relative = f"{IMAGE_FOLDER}/{name}.png"
        save_figure(figure, self.folder / relative, colours=self.png_colours)
        return relative


Section = Callable[[ReportContext], "tuple[str, str] | None"]


def _table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def metrics_section(context: ReportContext) -> tuple[str, str]:
    """The metric table, followed by the evaluation's notes (e.g. why pixel metrics are n/a).

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str
        (title, HTML).
    """
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in context.evaluation.notes)
    return "Metrics", _table(metric_rows(context.evaluation.metrics)) + notes


def config_section(context: ReportContext) -> tuple[str, str]:
    """The configuration: detector, parameters, thresholds, data; nested values as JSON.

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str
        (title, HTML).
    """
    rows = [(str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in context.config.items()]
    return "Configuration", _table(rows)


def _card(context: ReportContext, name: str, index: int, value_range: tuple[float, float]) -> str:
    """A figure with image and heat-map overlay side by side (saved as images/<name>.png), the
    ground truth outlined, and a caption: defect, score, decision, AUPIMO if known, path. The
    image alone when the detector gives no maps (`evaluation.maps` is None)."""
    evaluation = context.evaluation
    path, score, truth = evaluation.paths[index], float(evaluation.scores[index]), evaluation.masks[index]
    image = thumbnail(read_image(path), context.thumbnail_side)
    if evaluation.maps is None:
        source = context.save_image(name, image)
    else:
        heat = overlay(image, geometry.resize_map(evaluation.maps[index], image.shape[:2]), value_range)
        if truth is not None and truth.any():
            small_truth = shrink_mask(truth, image.shape[:2])
            image, heat = outline(image, small_truth), outline(heat, small_truth)
        source = context.save_image(name, side_by_side(image, heat))
    anomalous = bool(evaluation.labels[index])
    flagged = score > evaluation.threshold
    verdict = "correct" if flagged == anomalous else ("false-positive" if flagged else "missed")
    per_image = evaluation.aupimo[index] if evaluation.aupimo is not None else float("nan")
    aupimo = f" &middot; AUPIMO {per_image:.3f}" if np.isfinite(per_image) else ""
    caption = (f"<b>{html.escape(evaluation.defects[index])}</b> score {score:.4g}"
               f" &middot; {'flagged' if flagged else 'passed'}{aupimo}"
               f"<br><span class='path'>{html.escape(path)}</span>")
    return (f"<figure class='{verdict}'><img src='{html.escape(source)}' loading='lazy' "
            f"alt='{html.escape(Path(path).name)}'><figcaption>{caption}</figcaption></figure>")


def heatmap_section(context: ReportContext) -> tuple[str, str] | None:
    """Image and heat-map overlay side by side for the highest-scoring images first, the
    ground truth outlined in white on both; cards of wrong decisions (at the calibrated threshold) are
    framed red (missed defect) or orange (false alarm). Left out when `max_images` is 0 or the
    detector gives no maps.

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str or None
        (title, HTML), or None when the section is left out.
    """
    evaluation = context.evaluation
    if context.max_images <= 0 or evaluation.maps is None:
        return None
    order = np.argsort(-evaluation.scores, kind="stable")[: context.max_images]
    value_range = centred_range(evaluation.maps, evaluation.pixel_threshold)
    cards = "".join(_card(context, f"{rank:04d}", int(i), value_range) for rank, i in enumerate(order))
    intro = (f"<p>{len(order)} of {len(evaluation.scores)} test images, most anomalous first. Colour "
             f"scale {value_range[0]:.4g} (blue) to {value_range[1]:.4g} (red), pixel threshold "
             f"{evaluation.pixel_threshold:.4g} in the middle; image threshold {evaluation.threshold:.4g}."
             "</p>")
    return "Heat maps", intro + f"<div class='grid'>{cards}</div>"


def _plot(source: str, alt: str, caption: str) -> str:
    return (f"<figure class='plot'><img src='{html.escape(source)}' alt='{html.escape(alt)}'>"
            f"<figcaption>{caption}</figcaption></figure>")


def roc_section(context: ReportContext) -> tuple[str, str]:
    """Image-level ROC curve with the operating point of the calibrated threshold.

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str
        (title, HTML).
    """
    from oddity.plots import roc_figure

    evaluation = context.evaluation
    source = context.save_figure("roc", roc_figure(evaluation.labels, evaluation.scores, evaluation.threshold))
    caption = (f"Image AUROC {evaluation.metrics['image_auroc']:.4f}; the dot is the calibrated "
               f"image threshold {evaluation.threshold:.4g} (an image is flagged when its score is above it).")
    return "ROC curve", _plot(source, "image-level ROC curve", caption)


def _known_pixels(evaluation: Evaluation) -> tuple[list[np.ndarray], list[np.ndarray]]:
    known = [i for i, mask in enumerate(evaluation.masks) if mask is not None]
    return [evaluation.maps[i] for i in known], [np.asarray(evaluation.masks[i], bool) for i in known]


def pro_section(context: ReportContext) -> tuple[str, str] | None:
    """The PRO curve up to FPR 0.3 with the AUPRO; left out when the evaluation has no AUPRO.

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str or None
        (title, HTML), or None when the section is left out.
    """
    from oddity.metrics import pro_curve
    from oddity.plots import pro_figure

    evaluation = context.evaluation
    value = evaluation.metrics.get("aupro")
    if value is None:
        return None
    fpr, pro = pro_curve(*_known_pixels(evaluation), fpr_limit=PRO_FPR_LIMIT)
    source = context.save_figure("pro", pro_figure(fpr, pro, value, PRO_FPR_LIMIT))
    caption = (f"AUPRO {value:.4f}: the area under the curve divided by {PRO_FPR_LIMIT:g}. PRO is the mean, "
               "over ground-truth regions, of the fraction of each region found at a pixel threshold.")
    return "PRO curve", _plot(source, "PRO curve", caption)


def aupimo_section(context: ReportContext) -> tuple[str, str] | None:
    """Box plot of per-image AUPIMO over the anomalous images, one box per defect type when
    there are several; a line saying why when AUPIMO was not computed, nothing without masks.

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str or None
        (title, HTML), or None when the section is left out.
    """
    from oddity.plots import aupimo_figure

    evaluation = context.evaluation
    if evaluation.aupimo is None:
        reasons = [n for n in evaluation.notes if n.startswith("AUPIMO")]
        if not reasons:
            return None
        return "AUPIMO", "".join(f"<p class='note'>{html.escape(n)}</p>" for n in reasons)
    groups: dict[str, list[float]] = {}
    for defect, value in zip(evaluation.defects, evaluation.aupimo):
        if np.isfinite(value):
            groups.setdefault(defect, []).append(float(value))
    source = context.save_figure("aupimo", aupimo_figure({k: np.array(v) for k, v in groups.items()}))
    values = np.concatenate([np.array(v) for v in groups.values()])
    caption = (f"{values.size} anomalous images, mean AUPIMO {values.mean():.4f}, median "
               f"{np.median(values):.4f}; {int(np.sum(values < 0.5))} below 0.5. AUPIMO is the share of an "
               "image's defect pixels found at shared FPRs from 1e-5 to 1e-4 on a log scale.")
    return "AUPIMO distribution", _plot(source, "AUPIMO per image", caption)


def histogram_section(context: ReportContext) -> tuple[str, str]:
    """Histogram of image scores, normal against anomalous, with the calibrated threshold line.

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str
        (title, HTML).
    """
    from oddity.plots import score_histogram_figure

    evaluation = context.evaluation
    source = context.save_figure("scores", score_histogram_figure(evaluation.labels, evaluation.scores,
                                                                  evaluation.threshold))
    normal, anomalous = evaluation.scores[evaluation.labels == 0], evaluation.scores[evaluation.labels == 1]
    caption = (f"{normal.size} normal images (scores {normal.min():.4g} to {normal.max():.4g}), "
               f"{anomalous.size} anomalous ({anomalous.min():.4g} to {anomalous.max():.4g}); "
               f"dashed line: image threshold {evaluation.threshold:.4g}.")
    return "Score histogram", _plot(source, "score histogram", caption)


def worst_errors(labels: np.ndarray, scores: np.ndarray, threshold: float,
                 limit: int) -> tuple[list[int], list[int]]:
    """Indices of the worst wrong decisions at `threshold` (flagged when `score > threshold`):
    false negatives (anomalous, not flagged) lowest score first, and false positives (normal,
    flagged) highest score first, at most `limit` of each; ties keep test-set order. No
    errors are defined when the threshold is not finite.

    Parameters
    ----------
    labels : numpy.ndarray
        (N,) 0/1, 1 = anomalous.
    scores : numpy.ndarray
        (N,) scores.
    threshold : float
        The image threshold.
    limit : int
        Most of each kind.

    Returns
    -------
    tuple of list of int
        (false negatives, false positives).
    """
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    if not np.isfinite(threshold) or limit <= 0:
        return [], []
    flagged = scores > threshold
    missed = np.flatnonzero(labels & ~flagged)
    false_alarms = np.flatnonzero(~labels & flagged)
    missed = missed[np.argsort(scores[missed], kind="stable")][:limit]
    false_alarms = false_alarms[np.argsort(-scores[false_alarms], kind="stable")][:limit]
    return [int(i) for i in missed], [int(i) for i in false_alarms]


def errors_section(context: ReportContext) -> tuple[str, str] | None:
    """Grids of the worst false negatives (missed defects, lowest scores first) and false
    positives (false alarms, highest first) at the calibrated image threshold, with overlays.

    Parameters
    ----------
    context : ReportContext
        The evaluation, configuration and output folder.

    Returns
    -------
    tuple of str or None
        (title, HTML), or None when the section is left out.
    """
    evaluation = context.evaluation
    if not np.isfinite(evaluation.threshold) or context.max_errors <= 0:
        return None
    missed, false_alarms = worst_errors(evaluation.labels, evaluation.scores, evaluation.threshold,
                                        context.max_errors)
    value_range = (centred_range(evaluation.maps, evaluation.pixel_threshold)
                   if evaluation.maps is not None else (0.0, 1.0))
    labels = evaluation.labels.astype(bool)
    flagged = evaluation.scores > evaluation.threshold
    parts = [f"<p>At the calibrated image threshold {evaluation.threshold:.4g}: "
             f"{int(np.sum(labels & ~flagged))} of {int(labels.sum())} anomalous images missed, "
             f"{int(np.sum(~labels & flagged))} of {int((~labels).sum())} normal images flagged. "
             "Same colour scale as the heat maps; ground truth outlined in white.</p>"]
    for kind, title, chosen in (("fn", "Worst false negatives (missed defects, lowest score first)", missed),
                                ("fp", "Worst false positives (false alarms, highest score first)", false_alarms)):
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if not chosen:
            parts.append("<p class='note'>none</p>")
            continue
        cards = "".join(_card(context, f"{kind}-{rank:02d}", i, value_range) for rank, i in enumerate(chosen))
        parts.append(f"<div class='grid' id='{kind}'>{cards}</div>")
    return "Errors at the threshold", "".join(parts)


SECTIONS: list[Section] = [metrics_section, config_section, roc_section, pro_section, aupimo_section,
                           histogram_section, errors_section, heatmap_section]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }
th { background: #f4f4f4; font-weight: 600; }
.note { color: #666; font-style: italic; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; padding: 6px; border: 3px solid #ddd; width: 400px; }
figure.missed { border-color: #d62728; }
figure.false-positive { border-color: #ff9f1c; }
figure img { display: block; width: 100%; }
figure.plot { border: none; width: 500px; max-width: 100%; }
figcaption { font-size: 0.85em; margin-top: 4px; word-break: break-all; }
.path { color: #666; }
"""


def write_report(folder: str | os.PathLike, evaluation: Evaluation, config: dict[str, Any], *,
                 title: str = "oddity evaluation", max_images: int = 120, max_errors: int = 12,
                 thumbnail_side: int = THUMBNAIL_SIDE, png_colours: int | None = None,
                 sections: Sequence[Section] = SECTIONS) -> Path:
    """Write the report into `folder` (index.html and images/) and return the page's path.
    `max_images`: cards in the heat-map grid (0 leaves the grid out); `max_errors`: cards of
    each kind of error (false negatives, false positives); `thumbnail_side`: long side of the
    images on the cards, in pixels; `png_colours`: reduce every PNG to a palette of this many
    colours (about 3x smaller files, for reports that get committed).

    Parameters
    ----------
    folder : str or os.PathLike
        Output folder (created or replaced whole).
    evaluation : Evaluation
        What `oddity.image.evaluate.evaluate` returned.
    config : dict
        The configuration shown (detector, parameters, data).
    title : str, default "oddity evaluation"
        Page title.
    max_images : int, default 120
        Cards in the heat-map grid.
    max_errors : int, default 12
        Cards of each kind of error.
    thumbnail_side : int, default 256
        Long side of the card images.
    png_colours : int, optional
        Palette size of every PNG.
    sections : sequence of callable
        The sections, in order.

    Returns
    -------
    pathlib.Path
        The page (index.html).

    Raises
    ------
    OutputError
        If `folder` may not be written.
    """
    folder = Path(folder)
    with staged_directory(folder) as stage:
        context = ReportContext(evaluation, config, stage, max_images, max_errors, thumbnail_side,
                                png_colours)
        parts = []
        for section in sections:
            made = section(context)
            if made is not None:
                heading, body = made
                parts.append(f"<section><h2>{html.escape(heading)}</h2>{body}</section>")
        page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>\n")
        (stage / "index.html").write_text(page, encoding="utf-8")
    return folder / "index.html"
