"""HTML evaluation report: a self-contained folder with index.html and its PNG images.

The page is a list of sections. A section is a function that takes the `ReportContext` (the
evaluation, the configuration and a helper that saves images beside the page) and returns its
heading and HTML body, or None to leave the section out; `SECTIONS` lists them in page order. To add
one (curves, histograms, per-image AUPIMO), write the function and add it to `SECTIONS`. All
text that comes from data (paths, parameters, notes) goes through `html.escape`. The folder is
staged and moved into place at the end, so an interrupted run leaves no partial report.
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from oddity.core.persistence import staged_directory
from oddity.image import geometry
from oddity.image.data import read_image
from oddity.image.evaluate import Evaluation, metric_rows
from oddity.viz import centred_range, outline, overlay, save_png, shrink_mask, side_by_side, thumbnail

IMAGE_FOLDER = "images"
THUMBNAIL_SIDE = 256


@dataclass
class ReportContext:
    """What a section may use: the evaluation, the configuration to show, the folder the page
    is written to, and how many images the heat-map grid may hold."""

    evaluation: Evaluation
    config: dict[str, Any]
    folder: Path
    max_images: int

    def save_image(self, name: str, image: np.ndarray) -> str:
        """Save an RGB float image as images/<name>.png; return its path relative to the page."""
        relative = f"{IMAGE_FOLDER}/{name}.png"
        save_png(self.folder / relative, image)
        return relative


Section = Callable[[ReportContext], "tuple[str, str] | None"]


def _table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def metrics_section(context: ReportContext) -> tuple[str, str]:
    """The metric table, followed by the evaluation's notes (e.g. why pixel metrics are n/a)."""
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in context.evaluation.notes)
    return "Metrics", _table(metric_rows(context.evaluation.metrics)) + notes


def config_section(context: ReportContext) -> tuple[str, str]:
    """The configuration: detector, parameters, thresholds, data; nested values as JSON."""
    rows = [(str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in context.config.items()]
    return "Configuration", _table(rows)


def _card(context: ReportContext, rank: int, index: int, value_range: tuple[float, float]) -> str:
    evaluation = context.evaluation
    path, score, truth = evaluation.paths[index], float(evaluation.scores[index]), evaluation.masks[index]
    image = thumbnail(read_image(path), THUMBNAIL_SIDE)
    heat = overlay(image, geometry.resize_map(evaluation.maps[index], image.shape[:2]), value_range)
    if truth is not None and truth.any():
        small_truth = shrink_mask(truth, image.shape[:2])
        image, heat = outline(image, small_truth), outline(heat, small_truth)
    source = context.save_image(f"{rank:04d}", side_by_side(image, heat))
    anomalous = bool(evaluation.labels[index])
    flagged = score > evaluation.threshold
    verdict = "correct" if flagged == anomalous else ("false-positive" if flagged else "missed")
    caption = (f"<b>{html.escape(evaluation.defects[index])}</b> score {score:.4g}"
               f" &middot; {'flagged' if flagged else 'passed'}"
               f"<br><span class='path'>{html.escape(path)}</span>")
    return (f"<figure class='{verdict}'><img src='{html.escape(source)}' loading='lazy' "
            f"alt='{html.escape(Path(path).name)}'><figcaption>{caption}</figcaption></figure>")


def heatmap_section(context: ReportContext) -> tuple[str, str]:
    """Image and heat-map overlay side by side for the highest-scoring images first, the
    ground truth outlined in white on both; cards of wrong decisions (at the calibrated threshold) are
    framed red (missed defect) or orange (false alarm)."""
    evaluation = context.evaluation
    order = np.argsort(-evaluation.scores, kind="stable")[: context.max_images]
    value_range = centred_range(evaluation.maps, evaluation.pixel_threshold)
    cards = "".join(_card(context, rank, int(i), value_range) for rank, i in enumerate(order))
    intro = (f"<p>{len(order)} of {len(evaluation.scores)} test images, most anomalous first. Colour "
             f"scale {value_range[0]:.4g} (blue) to {value_range[1]:.4g} (red), pixel threshold "
             f"{evaluation.pixel_threshold:.4g} in the middle; image threshold {evaluation.threshold:.4g}."
             "</p>")
    return "Heat maps", intro + f"<div class='grid'>{cards}</div>"


SECTIONS: list[Section] = [metrics_section, config_section, heatmap_section]

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
figcaption { font-size: 0.85em; margin-top: 4px; word-break: break-all; }
.path { color: #666; }
"""


def write_report(folder: str | os.PathLike, evaluation: Evaluation, config: dict[str, Any], *,
                 title: str = "oddity evaluation", max_images: int = 120,
                 sections: Sequence[Section] = SECTIONS) -> Path:
    """Write the report into `folder` (index.html and images/) and return the page's path."""
    folder = Path(folder)
    with staged_directory(folder) as stage:
        context = ReportContext(evaluation, config, stage, max_images)
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
