"""Pixel-level metrics for anomaly maps (N, H, W) against ground-truth masks (N, H, W).

- `pixel_auroc`: exact ROC AUC over all pixels (Mann-Whitney count, ties count one half).
- `aupro`: normalised area under the per-region-overlap curve up to an FPR limit, as in the
  MVTec AD evaluation (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021).
- `aupimo`: area under the per-image-overlap curve (Bertoldo et al., "AUPIMO: Redefining Visual
  Anomaly Detection Benchmarks with High Speed and Low Tolerance", BMVC 2024).

All three sort each score set once and read every threshold off cumulative counts, so they
are exact (every distinct score is a threshold, ties form one step) and fast on full test sets.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from oddity.core.errors import MetricError
from oddity.metrics.classification import as_binary, as_scores


def _maps_and_masks(anomaly_maps: ArrayLike, masks: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate (N, H, W) float maps and binary masks of the same shape."""
    maps = as_scores(anomaly_maps, "anomaly_maps")
    gt = as_binary(masks, "masks")
    if maps.ndim != 3:
        raise MetricError(f"`anomaly_maps` must have shape (N, H, W); got {maps.shape}.")
    if maps.shape != gt.shape:
        raise MetricError(f"`anomaly_maps` {maps.shape} and `masks` {gt.shape} differ in shape; "
                          "resize the maps to the mask resolution first.")
    return maps, gt


def _split(maps: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of normal and of anomalous pixels; error if either set is empty."""
    if not gt.any():
        raise MetricError("`masks` has no anomalous pixel; pixel metrics need at least one.")
    if gt.all():
        raise MetricError("`masks` has no normal pixel; the false positive rate is undefined.")
    return maps[~gt], maps[gt]


def pixel_auroc(anomaly_maps: ArrayLike, masks: ArrayLike) -> float:
    """Exact ROC AUC over all pixels: P(score of an anomalous pixel > score of a normal one),
    ties counting one half (equal to scikit-learn's `roc_auc_score` on the flattened arrays)."""
    normal, anomalous = _split(*_maps_and_masks(anomaly_maps, masks))
    normal = np.sort(normal)
    below = np.searchsorted(normal, anomalous, side="left").sum(dtype=np.int64)
    below_or_tied = np.searchsorted(normal, anomalous, side="right").sum(dtype=np.int64)
    return float((int(below) + int(below_or_tied)) / (2 * normal.size * anomalous.size))


def _region_weights(gt: np.ndarray) -> np.ndarray:
    """Per anomalous pixel (in `gt[gt]` order): 1 / (number of regions * size of its region).

    Regions are the 8-connected components of each image's mask, labelled image by image.
    """
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 3x3 connectivity inside an image, none across images
    labels, num_regions = ndimage.label(gt, structure=structure)
    region_of_pixel = labels[gt]
    sizes = np.bincount(region_of_pixel)
    return 1.0 / (num_regions * sizes[region_of_pixel])


def aupro(anomaly_maps: ArrayLike, masks: ArrayLike, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve for FPR in [0, `fpr_limit`].

    Bergmann et al., "The MVTec Anomaly Detection Dataset: A Comprehensive Real-World Dataset
    for Unsupervised Anomaly Detection", IJCV 2021 (the MVTec AD evaluation code).
    At each threshold t (pixel anomalous if score >= t, every distinct score a threshold) the
    PRO is the mean over all ground-truth regions (8-connected components, per image) of the
    fraction of the region's pixels at or above t; the FPR is the fraction of all normal pixels
    at or above t. The piecewise-linear (FPR, PRO) curve from (0, 0) is integrated with the
    trapezoid rule up to `fpr_limit`, the curve being interpolated linearly at `fpr_limit`, and
    the area is divided by `fpr_limit`. Unlike the reference code, FPRs are kept in float64.
    """
    if not 0 < fpr_limit <= 1:
        raise MetricError(f"`fpr_limit` must be in (0, 1]; got {fpr_limit}.")
    maps, gt = _maps_and_masks(anomaly_maps, masks)
    normal, anomalous = _split(maps, gt)
    weights = _region_weights(gt)

    # Distinct normal scores u_1 > u_2 > ... and the FPR x_j = #(normal >= u_j) / #normal.
    normal = np.sort(normal)[::-1]
    last_of_group = np.append(np.flatnonzero(normal[1:] != normal[:-1]), normal.size - 1)
    fpr = (last_of_group + 1) / normal.size
    # Keep the points up to the first one past the limit.
    stop = min(int(np.searchsorted(fpr, fpr_limit, side="right")) + 1, fpr.size)
    values, fpr = normal[last_of_group[:stop]], fpr[:stop]

    # PRO just above (> u) and at (>= u) each distinct normal score: cumulated region weights.
    order = np.argsort(anomalous, kind="stable")
    sorted_scores = anomalous[order]
    cum = np.concatenate(([0.0], np.cumsum(weights[order][::-1])))  # weight of the top-k pixels
    pro_above = cum[anomalous.size - np.searchsorted(sorted_scores, values, side="right")]
    pro_at = cum[anomalous.size - np.searchsorted(sorted_scores, values, side="left")]
    fpr_before = np.concatenate(([0.0], fpr[:-1]))

    inside = fpr <= fpr_limit
    area = float(np.sum(0.5 * (pro_above + pro_at)[inside] * (fpr - fpr_before)[inside]))
    if not inside.all():  # the last segment crosses the limit: interpolate the curve there
        x0, x1, y0, y1 = fpr_before[-1], fpr[-1], pro_above[-1], pro_at[-1]
        y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        area += 0.5 * (y0 + y_lim) * (fpr_limit - x0)
    return area / fpr_limit


@dataclass(frozen=True)
class AUPIMOResult:
    """AUPIMO per image (NaN for normal images) and its mean over anomalous images.

    `thresholds` (ascending) and `shared_fpr` (mean per-image FPR of the normal images at each
    threshold, descending) are the PIMO curve's x axis; `fpr_bounds` are the shared FPRs
    actually reached at the two snapped integration bounds, `num_points` the points integrated.
    """

    per_image: np.ndarray
    mean: float
    thresholds: np.ndarray
    shared_fpr: np.ndarray
    fpr_bounds: tuple[float, float]
    num_points: int


def _index_at_fpr(shared_fpr: np.ndarray, level: float) -> int:
    """Index of the threshold whose shared FPR is closest to `level` (lowest index on ties);
    for `level` 1 the highest index with FPR 1, as in anomalib's `thresh_at_shared_fpr_level`."""
    lowest, highest = shared_fpr[-1], shared_fpr[0]
    if not lowest <= level <= highest:
        raise MetricError(f"FPR bound {level:g} is outside the reachable shared FPR range "
                          f"[{lowest:.3g}, {highest:.3g}]; use more (or larger) normal images "
                          "or wider `fpr_bounds`.")
    if level == 1.0:
        return int(np.flatnonzero(shared_fpr == 1.0)[-1])
    return int(np.argmin(np.abs(shared_fpr - level)))


def aupimo(anomaly_maps: ArrayLike, masks: ArrayLike, num_thresholds: int = 300_000,
           fpr_bounds: tuple[float, float] = (1e-5, 1e-4)) -> AUPIMOResult:
    """Area under the Per-IMage Overlap curve of every anomalous image.

    Bertoldo et al., "AUPIMO: Redefining Visual Anomaly Detection Benchmarks with High Speed
    and Low Tolerance", BMVC 2024; follows anomalib's `aupimo_scores`. `num_thresholds`
    thresholds are spaced linearly between the lowest and highest score of the normal images
    (masks all zero); the shared FPR is the mean over normal images of the per-image FPR
    (pixel anomalous if score >= threshold). Each bound of `fpr_bounds` snaps to the threshold
    whose shared FPR is nearest; between them each anomalous image's TPR is integrated over
    log(shared FPR) with the trapezoid rule, divided by log(upper / lower) and clipped to [0, 1].
    Deviation: thresholds are float64 (anomalib uses the maps' dtype), which can move counts
    of pixels lying exactly on a float32 threshold; see benchmarks/results/metrics.md.
    """
    lower, upper = fpr_bounds
    if not 0 < lower < upper <= 1:
        raise MetricError(f"`fpr_bounds` must satisfy 0 < lower < upper <= 1; got {fpr_bounds}.")
    if num_thresholds < 2:
        raise MetricError(f"`num_thresholds` must be at least 2; got {num_thresholds}.")
    maps, gt = _maps_and_masks(anomaly_maps, masks)
    num_images = maps.shape[0]
    flat, flat_gt = maps.reshape(num_images, -1), gt.reshape(num_images, -1)
    is_anomalous = flat_gt.any(axis=1)
    if is_anomalous.all():
        raise MetricError("AUPIMO needs at least one normal image (mask all zero); found none.")
    if not is_anomalous.any():
        raise MetricError("AUPIMO needs at least one anomalous image (mask not all zero); "
                          "found none.")

    normal_images = np.sort(flat[~is_anomalous], axis=1)
    low, high = float(normal_images[:, 0].min()), float(normal_images[:, -1].max())
    if not low < high:
        raise MetricError("The normal images' anomaly maps are constant; AUPIMO's thresholds "
                          "span the normal score range, which is empty here.")
    thresholds = np.linspace(low, high, num_thresholds)

    # Shared FPR: mean over normal images of the fraction of pixels >= threshold.
    pixels = normal_images.shape[1]
    shared_fpr = np.zeros(num_thresholds)
    for scores in normal_images:
        shared_fpr += (pixels - np.searchsorted(scores, thresholds, side="left")) / pixels
    shared_fpr /= normal_images.shape[0]

    # Snap the bounds (a low FPR is a high threshold) and keep the points in between.
    first = _index_at_fpr(shared_fpr, upper)
    last = _index_at_fpr(shared_fpr, lower)
    if first >= last:
        raise MetricError(f"`fpr_bounds` {fpr_bounds} snap to the same threshold; increase "
                          "`num_thresholds`.")
    window = thresholds[first:last + 1]
    log_fpr = np.log(shared_fpr[first:last + 1])
    finite = np.isfinite(log_fpr)  # a shared FPR of 0 has no logarithm: drop the point
    num_points = int(finite.sum())
    if num_points <= 30:
        raise MetricError(f"Only {num_points} thresholds fall within `fpr_bounds` {fpr_bounds}; "
                          "AUPIMO needs more than 30: increase `num_thresholds`.")
    if num_points < 300:
        warnings.warn(f"AUPIMO integrates over only {num_points} points (< 300) and may be "
                      "inaccurate; increase `num_thresholds`.", stacklevel=2)

    per_image = np.full(num_images, np.nan)
    for i in np.flatnonzero(is_anomalous):
        positives = np.sort(flat[i][flat_gt[i]])
        tpr = (positives.size - np.searchsorted(positives, window, side="left")) / positives.size
        per_image[i] = np.trapezoid(tpr[finite][::-1], log_fpr[finite][::-1])
    per_image = np.clip(per_image / np.log(upper / lower), 0.0, 1.0)
    return AUPIMOResult(per_image=per_image, mean=float(np.nanmean(per_image)),
                        thresholds=thresholds, shared_fpr=shared_fpr,
                        fpr_bounds=(float(shared_fpr[last]), float(shared_fpr[first])),
                        num_points=num_points)
