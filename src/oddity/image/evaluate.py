"""Evaluate a fitted image detector on a labelled test set: the standard MVTec AD metrics.

Image level: AUROC, AUPR and the best F1 over thresholds, from one score per image. Pixel
level: pixel AUROC and AUPRO (FPR limit 0.3), over the images whose ground truth is known:
normal images (known to be all normal) and anomalous images that have a mask file; an
anomalous image without a mask counts for the image metrics only. Pixel metrics are None when
no mask marks any pixel. Scoring is timed, so the same run gives throughput.

Masks are read at each image's own size, like the maps. When test images differ in size, the
pixel AUROC is exact (pixels are pooled whatever their image) but AUPRO, whose regions are
connected components per image, is computed after resizing every map and mask to the most
common image size (maps bilinear, masks nearest); `Evaluation.notes` says so.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oddity.core.errors import DataError
from oddity.image import geometry
from oddity.image.data import evaluation_samples
from oddity.image.detector import ImageDetector
from oddity.metrics import aupro, f1_max, image_aupr, image_auroc, pixel_auroc

# Metric keys in display order, with how a person reads them.
METRIC_LABELS: dict[str, str] = {
    "image_auroc": "image AUROC",
    "image_aupr": "image AUPR",
    "image_f1max": "image F1-max",
    "pixel_auroc": "pixel AUROC",
    "aupro": "AUPRO (FPR <= 0.3)",
    "images_per_second": "images / second",
    "test_images": "test images",
    "seconds": "scoring seconds",
}


@dataclass
class Evaluation:
    """Metrics (keys of `METRIC_LABELS`, None where not computable) and, per scored image in
    test-set order, what reports need: path, defect folder, label (1 = anomalous), score, map,
    ground-truth mask (None when unknown), plus the detector's thresholds."""

    metrics: dict[str, Any]
    paths: list[str]
    defects: list[str]
    labels: np.ndarray
    scores: np.ndarray
    maps: list[np.ndarray]
    masks: list[np.ndarray | None]
    threshold: float = float("nan")
    pixel_threshold: float = float("nan")
    notes: list[str] = field(default_factory=list)


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, formatted value) per metric in display order; None shows as 'n/a'."""
    rows = []
    for key, label in METRIC_LABELS.items():
        value = metrics.get(key)
        if value is None:
            text = "n/a"
        elif isinstance(value, int):
            text = str(value)
        elif key in ("images_per_second", "seconds"):
            text = f"{value:.2f}"
        else:
            text = f"{value:.4f}"
        rows.append((label, text))
    return rows


def _common_shape(shapes: list[tuple[int, int]]) -> tuple[int, int]:
    return Counter(shapes).most_common(1)[0][0]


def _pixel_metrics(maps: list[np.ndarray], masks: list[np.ndarray], notes: list[str]) -> tuple[float, float]:
    """(pixel AUROC, AUPRO) over maps and masks of possibly different sizes."""
    shapes = [m.shape for m in maps]
    if len(set(shapes)) == 1:
        stacked_maps, stacked_masks = np.stack(maps), np.stack(masks)
        return pixel_auroc(stacked_maps, stacked_masks), aupro(stacked_maps, stacked_masks)
    pooled = pixel_auroc(np.concatenate([m.ravel() for m in maps])[None, None],
                         np.concatenate([m.ravel() for m in masks])[None, None])
    shape = _common_shape(shapes)
    resized_maps = np.stack([geometry.resize_map(m, shape) for m in maps])
    resized_masks = np.stack([geometry.resize_map(m.astype(np.float32), shape) >= 0.5 for m in masks])
    notes.append(f"test images differ in size; AUPRO computed on maps and masks resized to "
                 f"{shape[1]}x{shape[0]} (WxH)")
    return pooled, aupro(resized_maps, resized_masks)


def evaluate(detector: ImageDetector, root: str | os.PathLike, *, verbose: bool = True) -> Evaluation:
    """Score the labelled test split under `root` (see `oddity.image.data.evaluation_samples`) with
    a fitted detector and compute image and pixel metrics and throughput."""
    samples = evaluation_samples(root)
    start = time.perf_counter()
    result = detector.score(samples, verbose=verbose, desc="evaluate")
    seconds = time.perf_counter() - start
    by_name = {sample.name: sample for sample in samples}
    scored = [by_name[path] for path in result.paths]  # images skipped as unreadable drop out
    labels = np.array([sample.label for sample in scored], dtype=np.int64)
    if labels.min() == labels.max():
        kind = "anomalous" if labels[0] else "normal"
        raise DataError(f"{root}: every scored test image is {kind}; evaluation needs normal images "
                        "in a 'good/' folder and anomalous ones in defect folders")
    masks = [sample.load_mask(score_map.shape) if sample.label == 0 or sample.mask_path else None
             for sample, score_map in zip(scored, result.maps)]
    known = [i for i, mask in enumerate(masks) if mask is not None]
    notes: list[str] = []
    pixel_values: tuple[float | None, float | None] = (None, None)
    if any(masks[i].any() for i in known):
        pixel_values = _pixel_metrics([result.maps[i] for i in known], [masks[i] for i in known], notes)
    else:
        notes.append("no ground-truth masks: pixel metrics not computed")
    metrics = {
        "image_auroc": image_auroc(labels, result.scores),
        "image_aupr": image_aupr(labels, result.scores),
        "image_f1max": f1_max(labels, result.scores).f1,
        "pixel_auroc": pixel_values[0],
        "aupro": pixel_values[1],
        "images_per_second": len(scored) / seconds if seconds > 0 else None,
        "test_images": len(scored),
        "seconds": seconds,
    }
    threshold = detector.threshold_.value if detector.threshold_ else float("nan")
    pixel_threshold = detector.pixel_threshold_.value if detector.pixel_threshold_ else float("nan")
    return Evaluation(metrics=metrics, paths=list(result.paths), defects=[s.defect or "" for s in scored],
                      labels=labels, scores=result.scores, maps=result.maps, masks=masks,
                      threshold=threshold, pixel_threshold=pixel_threshold, notes=notes)
