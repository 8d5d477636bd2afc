"""Evaluate a fitted image detector on a labelled test set: the standard MVTec AD metrics.

Image level: AUROC, AUPR and the best F1 over thresholds, from one score per image. Pixel
level: pixel AUROC, AUPRO (FPR limit 0.3) and AUPIMO (mean over anomalous images, shared FPR
1e-5 to 1e-4), over the images whose ground truth is known: normal images (known to be all
normal) and anomalous images that have a mask file; an anomalous image without a mask counts
for the image metrics only. Pixel metrics are None when no mask marks any pixel; AUPIMO is
also None when the test set cannot reach its FPR range (too few normal pixels), with a note
saying why. Scoring is timed, so the same run gives throughput. A zero-shot detector (see
`oddity.image.detector`) scores the test images against each other: no training image is read.

Masks are read at each image's own size, like the maps, and the pixel metrics take the maps
and masks as lists, so images of different sizes are evaluated exactly (no resizing). A
detector that does not localise (`localises = False`) gives no maps: `Evaluation.maps` is None,
masks are not read, pixel metrics are None and a note says why.

Thresholds: the image threshold that decides is checked on the normal test images: the
realised false-positive rate is reported beside the target and the rate the calibration
expects, and a note warns when the realised rate is more (or less) than the calibration
explains (`oddity.core.thresholds.check_realised_fpr`).
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oddity.core.errors import DataError, MetricError
from oddity.core.results import ImageScores
from oddity.core.thresholds import check_realised_fpr
from oddity.image.data import evaluation_samples
from oddity.image.detector import ImageDetector
from oddity.metrics import aupimo, aupro, f1_max, image_aupr, image_auroc, pixel_auroc

# Metric keys in display order, with how a person reads them.
METRIC_LABELS: dict[str, str] = {
    "image_auroc": "image AUROC",
    "image_aupr": "image AUPR",
    "image_f1max": "image F1-max",
    "pixel_auroc": "pixel AUROC",
    "aupro": "AUPRO (FPR <= 0.3)",
    "aupimo": "AUPIMO (mean, FPR 1e-5 to 1e-4)",
    "target_fpr": "target FPR",
    "expected_fpr": "expected FPR (calibration)",
    "realised_fpr": "realised FPR (normal test images)",
    "images_per_second": "images / second",
    "test_images": "test images",
    "seconds": "scoring seconds",
}


@dataclass
class Evaluation:
    """Metrics (keys of `METRIC_LABELS`, None where not computable) and, per scored image in
    test-set order, what reports need: path, defect folder, label (1 = anomalous), score, map,
    ground-truth mask (None when unknown or not read), AUPIMO (NaN for normal images and images
    without a mask; None when AUPIMO was not computed), plus the detector's thresholds. `maps`
    is None for a detector that does not localise."""

    metrics: dict[str, Any]
    paths: list[str]
    defects: list[str]
    labels: np.ndarray
    scores: np.ndarray
    maps: list[np.ndarray] | None
    masks: list[np.ndarray | None]
    threshold: float = float("nan")
    pixel_threshold: float = float("nan")
    notes: list[str] = field(default_factory=list)
    aupimo: np.ndarray | None = None


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The metrics as display rows.

    Parameters
    ----------
    metrics : dict
        Metric name to value (`Evaluation.metrics`).

    Returns
    -------
    list of tuple of str
        (label, formatted value) per metric in display order; None shows as 'n/a'.
    """
    rows = []
    for key, label in METRIC_LABELS.items():
        value = metrics.get(key)
        if value is None:
            text = "n/a"
        elif isinstance(value, int):
            text = str(value)
        elif key in ("images_per_second", "seconds"):
            text = f"{value:.2f}"
        elif key.endswith("_fpr"):
            text = f"{value:.4g}"
        else:
            text = f"{value:.4f}"
        rows.append((label, text))
    return rows


def pixel_metrics(maps: list[np.ndarray], masks: list[np.ndarray],
                  notes: list[str]) -> tuple[float, float, np.ndarray | None]:
    """Pixel-level metrics of anomaly maps against ground-truth masks of any sizes.

    Parameters
    ----------
    maps : list of numpy.ndarray
        (H, W) anomaly map per image (higher = more anomalous).
    masks : list of numpy.ndarray
        (H, W) boolean ground-truth mask per image, each the size of its map.
    notes : list of str
        Why AUPIMO is missing, or may be inaccurate, is appended here.

    Returns
    -------
    pixel_auroc : float
        AUROC over all pixels (`oddity.metrics.segmentation.pixel_auroc`).
    aupro : float
        Area under the PRO curve up to FPR 0.3 (`oddity.metrics.segmentation.aupro`).
    aupimo : numpy.ndarray or None
        AUPIMO per image, None when it cannot be computed.
    """
    auroc, pro = pixel_auroc(maps, masks), aupro(maps, masks)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            per_image = aupimo(maps, masks).per_image
    except MetricError as exc:
        notes.append(f"AUPIMO not computed: {exc}")
        return auroc, pro, None
    notes.extend(f"AUPIMO: {w.message}" for w in caught if issubclass(w.category, UserWarning))
    return auroc, pro, per_image


def evaluate(detector: ImageDetector, root: str | os.PathLike, *, mask_threshold: float | None = None,
             verbose: bool = True, scorer: Callable[[list], ImageScores] | None = None) -> Evaluation:
    """Score the labelled test split under `root` with a fitted detector and compute image and
    pixel metrics and throughput.

    Parameters
    ----------
    detector : ImageDetector
        A fitted detector.
    root : str or os.PathLike
        An MVTec-style category (see `oddity.image.data.evaluation_samples`).
    mask_threshold : float, optional
        Binarise grey (anti-aliased) ground-truth masks at this fraction of their brightest
        value; by default a mask that is not binary is refused.
    verbose : bool, default True
        Show a progress bar.
    scorer : callable, optional
        Scores the test samples in place of `detector.score` (the same scores, computed
        elsewhere: `oddity.distributed.score_on_cluster`); the metrics are computed here.

    Returns
    -------
    Evaluation
        Metrics, per-image scores and notes.

    Raises
    ------
    DataError
        If the test split cannot be read.
    NotFittedError
        If the detector is not fitted.
    """
    samples = evaluation_samples(root, mask_threshold)
    start = time.perf_counter()
    result = (detector.score(samples, verbose=verbose, desc="evaluate") if scorer is None
              else scorer(samples))
    seconds = time.perf_counter() - start
    by_name = {sample.name: sample for sample in samples}
    scored = [by_name[path] for path in result.paths]  # images skipped as unreadable drop out
    labels = np.array([sample.label for sample in scored], dtype=np.int64)
    if labels.min() == labels.max():
        kind = "anomalous" if labels[0] else "normal"
        raise DataError(f"{root}: every scored test image is {kind}; evaluation needs normal images "
                        "in a 'good/' folder and anomalous ones in defect folders")
    notes: list[str] = []
    pixel_auroc_value = aupro_value = per_image_aupimo = None
    if result.maps is None:
        masks: list[np.ndarray | None] = [None] * len(scored)
        notes.append(f"{detector.name} scores whole images (no anomaly maps): pixel metrics not computed")
    else:
        masks = [sample.load_mask(score_map.shape) if sample.label == 0 or sample.mask_path else None
                 for sample, score_map in zip(scored, result.maps)]
    known = [i for i, mask in enumerate(masks) if mask is not None]
    unmasked = [i for i, sample in enumerate(scored) if sample.label == 1 and sample.mask_path is None]
    if result.maps is not None and unmasked:
        notes.append(f"{len(unmasked)} of {int(labels.sum())} anomalous image(s) have no mask file "
                     f"(e.g. {result.paths[unmasked[0]]}): counted in the image metrics only, left "
                     "out of the pixel metrics")
    if result.maps is not None and any(masks[i].any() for i in known):
        empty = [i for i in known if labels[i] == 1 and not masks[i].any()]
        if empty:
            notes.append(f"{len(empty)} anomalous image(s) have an empty mask (e.g. "
                         f"{result.paths[empty[0]]}): pixel metrics count their pixels as "
                         "normal, AUPIMO counts them as normal images")
        pixel_auroc_value, aupro_value, known_aupimo = pixel_metrics(
            [result.maps[i] for i in known], [masks[i] for i in known], notes)
        if known_aupimo is not None:
            per_image_aupimo = np.full(len(scored), np.nan)
            per_image_aupimo[known] = known_aupimo
    elif result.maps is not None:
        notes.append("no ground-truth masks: pixel metrics not computed")
    metrics = {
        "image_auroc": image_auroc(labels, result.scores),
        "image_aupr": image_aupr(labels, result.scores),
        "image_f1max": f1_max(labels, result.scores).f1,
        "pixel_auroc": pixel_auroc_value,
        "aupro": aupro_value,
        "aupimo": float(np.nanmean(per_image_aupimo)) if per_image_aupimo is not None else None,
        "images_per_second": len(scored) / seconds if seconds > 0 else None,
        "test_images": len(scored),
        "seconds": seconds,
    }
    if detector.zero_shot:
        notes.append(f"{detector.name} is zero-shot: the {len(scored)} test images were scored "
                     "against each other, no training image was used")
    image_cut, pixel_cut = detector.decision_thresholds(result)
    if image_cut is not None and image_cut.method != "manual":
        check = check_realised_fpr(image_cut, result.scores[labels == 0])
        metrics.update(target_fpr=check.target_fpr, expected_fpr=check.expected_fpr,
                       realised_fpr=check.rate)
        if check.warning:
            notes.append(f"warning: {check.warning}")
    threshold = image_cut.value if image_cut else float("nan")
    pixel_threshold = pixel_cut.value if pixel_cut else float("nan")
    return Evaluation(metrics=metrics, paths=list(result.paths), defects=[s.defect or "" for s in scored],
                      labels=labels, scores=result.scores, maps=result.maps, masks=masks,
                      threshold=threshold, pixel_threshold=pixel_threshold, notes=notes,
                      aupimo=per_image_aupimo)
