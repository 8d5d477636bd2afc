"""Pixel-level metrics for anomaly maps against ground-truth masks: (N, H, W) arrays, or lists
of N (H, W) arrays when test images differ in size (every metric stays exact: pixels are
pooled, regions and per-image rates never cross images).

- `pixel_auroc`: exact ROC AUC over all pixels (Mann-Whitney count, ties count one half).
- `aupro`: normalised area under the per-region-overlap curve up to an FPR limit, as in the
  MVTec AD evaluation (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021);
  `pro_curve` gives the curve itself.
- `aupimo`: area under the per-image-overlap curve (Bertoldo et al., "AUPIMO: Redefining Visual
  Anomaly Detection Benchmarks with High Speed and Low Tolerance", BMVC 2024).

All three sort each score set once and read every threshold off cumulative counts, so they
are exact (every distinct score is a threshold, ties form one step) and fast on full test sets.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from oddity.core.errors import MetricError
from oddity.metrics.classification import as_binary, as_scores


@dataclass(frozen=True)
class _PixelSet:
    """Validated maps and masks as flat pixel arrays: `scores` and `truth` hold every image's
    pixels in row-major order, image after image; image i is `[offsets[i]:offsets[i + 1]]`,
    of shape `shapes[i]`. Array input gives views (no copy), a list of maps one concatenation."""

    scores: np.ndarray
    truth: np.ndarray
    offsets: np.ndarray
    shapes: tuple[tuple[int, int], ...]

    def image(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat scores and truth of image i."""
        start, stop = self.offsets[i], self.offsets[i + 1]
        return self.scores[start:stop], self.truth[start:stop]

    def mask(self, i: int) -> np.ndarray:
        """Ground-truth mask of image i, (H, W)."""
        return self.image(i)[1].reshape(self.shapes[i])


_SHAPE_HELP = "(N, H, W) arrays or lists of N (H, W) arrays"


def _as_images(values: ArrayLike | Sequence[ArrayLike], name: str) -> np.ndarray | list[np.ndarray]:
    """An (N, H, W) array, or a list of 2-D arrays when `values` is a list or tuple of them."""
    if isinstance(values, (list, tuple)):
        if not values:
            raise MetricError(f"`{name}` is empty; pass at least one image.")
        images = [np.asarray(v) for v in values]
        if all(image.ndim == 2 for image in images):
            return images
        if len({image.shape for image in images}) > 1:
            bad = next(i for i, image in enumerate(images) if image.ndim != 2)
            raise MetricError(f"`{name}`: item {bad} has shape {images[bad].shape}; expected "
                              f"{_SHAPE_HELP}.")
    array = np.asarray(values)
    if array.ndim != 3:
        raise MetricError(f"`{name}` must have shape (N, H, W) or be a list of (H, W) maps; "
                          f"got {array.shape}.")
    return array


def _maps_and_masks(anomaly_maps: ArrayLike | Sequence[ArrayLike],
                    masks: ArrayLike | Sequence[ArrayLike]) -> _PixelSet:
    """Validate float maps and binary masks: (N, H, W) arrays of the same shape, or sequences
    of N 2-D arrays whose sizes may differ from image to image but agree map by mask."""
    maps, gt = _as_images(anomaly_maps, "anomaly_maps"), _as_images(masks, "masks")
    empty = [i for i, image in enumerate(maps) if image.size == 0]
    if empty:
        raise MetricError(f"`anomaly_maps`: image {empty[0]} has no pixel (shape "
                          f"{maps[empty[0]].shape}); drop empty images first.")
    if isinstance(maps, np.ndarray) and isinstance(gt, np.ndarray):
        if maps.shape != gt.shape:
            raise MetricError(f"`anomaly_maps` {maps.shape} and `masks` {gt.shape} differ in shape; "
                              "resize the maps to the mask resolution first.")
        num, height, width = maps.shape
        scores = as_scores(maps, "anomaly_maps").reshape(-1)
        truth = as_binary(gt, "masks").reshape(-1)
        return _PixelSet(scores, truth, np.arange(num + 1, dtype=np.int64) * (height * width),
                         ((height, width),) * num)
    if len(maps) != len(gt):
        raise MetricError(f"`anomaly_maps` has {len(maps)} images and `masks` {len(gt)}; "
                          "pass one mask per map.")
    for i, (score_map, mask) in enumerate(zip(maps, gt)):
        if score_map.shape != mask.shape:
            raise MetricError(f"image {i}: `anomaly_maps` {score_map.shape} and `masks` "
                              f"{mask.shape} differ in shape; resize the map to its mask first.")
    shapes = tuple((int(m.shape[0]), int(m.shape[1])) for m in maps)
    offsets = np.concatenate(([0], np.cumsum([h * w for h, w in shapes]))).astype(np.int64)
    scores = as_scores(np.concatenate([np.asarray(m).reshape(-1) for m in maps]), "anomaly_maps")
    truth = as_binary(np.concatenate([np.asarray(m).reshape(-1) for m in gt]), "masks")
    return _PixelSet(scores, truth, offsets, shapes)


def _split(pixels: _PixelSet) -> tuple[np.ndarray, np.ndarray]:
    """Scores of normal and of anomalous pixels; error if either set is empty."""
    gt = pixels.truth
    if not gt.any():
        raise MetricError("`masks` has no anomalous pixel; pixel metrics need at least one.")
    if gt.all():
        raise MetricError("`masks` has no normal pixel; the false positive rate is undefined.")
    return pixels.scores[~gt], pixels.scores[gt]


def pixel_auroc(anomaly_maps: ArrayLike | Sequence[ArrayLike],
                masks: ArrayLike | Sequence[ArrayLike]) -> float:
    """Exact ROC AUC over all pixels: P(score of an anomalous pixel > score of a normal one),
    ties counting one half (equal to scikit-learn's `roc_auc_score` on the flattened arrays).
    Maps and masks: (N, H, W) arrays, or lists of (H, W) arrays of any sizes (pixels pooled).

    Parameters
    ----------
    anomaly_maps : array_like or sequence of array_like
        (N, H, W) maps, or a list of (H, W) maps whose sizes may differ between images.
    masks : array_like or sequence of array_like
        Ground-truth masks of the same shapes, 0/1 or bool (1 = anomalous pixel).

    Returns
    -------
    float
        The pixel AUROC.

    Raises
    ------
    MetricError
        If shapes differ, a mask is not binary, a map is not finite, or the pixels hold one
        class only.

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.zeros((1, 4, 4)); maps[0, 1:3, 1:3] = 1.0
    >>> masks = np.zeros((1, 4, 4), bool); masks[0, 1:3, 1:3] = True
    >>> pixel_auroc(maps, masks)
    1.0
    """
    normal, anomalous = _split(_maps_and_masks(anomaly_maps, masks))
    normal.sort()  # in place: `_split` returns copies; a second one is 4-8 bytes a pixel
    below = np.searchsorted(normal, anomalous, side="left").sum(dtype=np.int64)
    below_or_tied = np.searchsorted(normal, anomalous, side="right").sum(dtype=np.int64)
    return float((int(below) + int(below_or_tied)) / (2 * normal.size * anomalous.size))


_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _region_weights(pixels: _PixelSet) -> np.ndarray:
    """Per anomalous pixel (in `truth[truth]` order): 1 / (number of regions * size of its region).

    Regions are the 8-connected components of each image's mask, labelled image by image
    (one call over the stack when the images share a size).
    """
    gt = pixels.truth
    if len(set(pixels.shapes)) == 1:
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = _EIGHT_CONNECTED  # connectivity inside an image, none across images
        labels, num_regions = ndimage.label(gt.reshape(-1, *pixels.shapes[0]), structure=structure)
        region_of_pixel = labels.reshape(-1)[gt]
    else:
        parts, num_regions = [], 0
        for i in range(len(pixels.shapes)):
            mask = pixels.mask(i)
            if not mask.any():
                continue
            labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
            parts.append(labels[mask] + num_regions)
            num_regions += count
        region_of_pixel = np.concatenate(parts)
    sizes = np.bincount(region_of_pixel)
    return 1.0 / (num_regions * sizes[region_of_pixel])


def _pro_points(pixels: _PixelSet, fpr_limit: float) -> tuple[np.ndarray, ...]:
    """The PRO curve's segments up to the first one past `fpr_limit`.

    At each distinct normal score u_j (descending) the curve runs straight from (fpr_before_j,
    pro_above_j), pixels > u_j, to (fpr_j, pro_at_j), pixels >= u_j; between two segments it
    rises vertically (anomalous pixels scored strictly between two normal scores).
    """
    if not 0 < fpr_limit <= 1:
        raise MetricError(f"`fpr_limit` must be in (0, 1]; got {fpr_limit}.")
    normal, anomalous = _split(pixels)
    weights = _region_weights(pixels)

    # Only the normal scores down to the first distinct value whose FPR passes the limit matter:
    # the one at descending position floor(limit * n) and its ties (one position more is taken
    # against rounding; `stop` below cuts the surplus). Working on that head alone keeps memory
    # near one copy of the scores on tens of millions of pixels.
    count = normal.size
    normal.sort()  # in place: `_split` returns a copy
    past = min(int(fpr_limit * count) + 1, count - 1)
    head = normal[np.searchsorted(normal, normal[count - 1 - past], side="left"):][::-1]
    # Distinct normal scores u_1 > u_2 > ... and the FPR x_j = #(normal >= u_j) / #normal.
    last_of_group = np.flatnonzero(np.append(head[1:] != head[:-1], True))
    fpr = (last_of_group + 1) / count
    # Keep the points up to the first one past the limit.
    stop = min(int(np.searchsorted(fpr, fpr_limit, side="right")) + 1, fpr.size)
    values, fpr = head[last_of_group[:stop]], fpr[:stop]

    # PRO just above (> u) and at (>= u) each distinct normal score: cumulated region weights.
    order = np.argsort(anomalous, kind="stable")
    sorted_scores = anomalous[order]
    cum = np.concatenate(([0.0], np.cumsum(weights[order][::-1])))  # weight of the top-k pixels
    pro_above = cum[anomalous.size - np.searchsorted(sorted_scores, values, side="right")]
    pro_at = cum[anomalous.size - np.searchsorted(sorted_scores, values, side="left")]
    fpr_before = np.concatenate(([0.0], fpr[:-1]))
    return fpr_before, fpr, pro_above, pro_at


def _at_limit(fpr_before, fpr, pro_above, pro_at, fpr_limit: float) -> float:
    """PRO where the last segment (which crosses `fpr_limit`) meets the limit."""
    x0, x1, y0, y1 = fpr_before[-1], fpr[-1], pro_above[-1], pro_at[-1]
    return y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)


def aupro(anomaly_maps: ArrayLike | Sequence[ArrayLike], masks: ArrayLike | Sequence[ArrayLike],
          fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve for FPR in [0, `fpr_limit`].

    Bergmann et al., "The MVTec Anomaly Detection Dataset: A Comprehensive Real-World Dataset
    for Unsupervised Anomaly Detection", IJCV 2021 (the MVTec AD evaluation code).
    At each threshold t (pixel anomalous if score >= t, every distinct score a threshold) the
    PRO is the mean over all ground-truth regions (8-connected components, per image) of the
    fraction of the region's pixels at or above t; the FPR is the fraction of all normal pixels
    at or above t. The piecewise-linear (FPR, PRO) curve from (0, 0) is integrated with the
    trapezoid rule up to `fpr_limit`, the curve being interpolated linearly at `fpr_limit`, and
    the area is divided by `fpr_limit`. Unlike the reference code, FPRs are kept in float64.
    Maps and masks: (N, H, W) arrays, or lists of (H, W) arrays whose sizes may differ between
    images (exact: regions never cross images, no resizing).

    Parameters
    ----------
    anomaly_maps : array_like or sequence of array_like
        (N, H, W) maps, or a list of (H, W) maps whose sizes may differ between images.
    masks : array_like or sequence of array_like
        Ground-truth masks of the same shapes, 0/1 or bool (1 = anomalous pixel).
    fpr_limit : float, default 0.3
        Upper end of the false-positive range integrated.

    Returns
    -------
    float
        The normalised area, in [0, 1].

    Raises
    ------
    MetricError
        If shapes differ, a mask is not binary, a map is not finite, or the pixels hold one
        class only.

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.zeros((1, 8, 8)); maps[0, 2:4, 2:4] = 1.0
    >>> masks = np.zeros((1, 8, 8), bool); masks[0, 2:4, 2:4] = True
    >>> aupro(maps, masks)
    1.0
    """
    fpr_before, fpr, pro_above, pro_at = _pro_points(_maps_and_masks(anomaly_maps, masks), fpr_limit)
    inside = fpr <= fpr_limit
    area = float(np.sum(0.5 * (pro_above + pro_at)[inside] * (fpr - fpr_before)[inside]))
    if not inside.all():  # the last segment crosses the limit: interpolate the curve there
        y_lim = _at_limit(fpr_before, fpr, pro_above, pro_at, fpr_limit)
        area += 0.5 * (pro_above[-1] + y_lim) * (fpr_limit - fpr_before[-1])
    return float(area / fpr_limit)


def pro_curve(anomaly_maps: ArrayLike | Sequence[ArrayLike], masks: ArrayLike | Sequence[ArrayLike],
              fpr_limit: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The curve `aupro` integrates: (fpr, pro) vertices from (0, 0) up to `fpr_limit`
    (interpolated there), FPR non-decreasing; `np.trapezoid(pro, fpr) / fpr_limit` is the
    AUPRO. Same inputs as `aupro`. Every distinct score gives up to two vertices, so thin the
    curve before plotting large test sets (see `oddity.plots.pro_curve_figure`).

    Parameters
    ----------
    anomaly_maps : array_like or sequence of array_like
        (N, H, W) maps, or a list of (H, W) maps whose sizes may differ between images.
    masks : array_like or sequence of array_like
        Ground-truth masks of the same shapes, 0/1 or bool (1 = anomalous pixel).
    fpr_limit : float, default 0.3
        Upper end of the false-positive range.

    Returns
    -------
    tuple of numpy.ndarray
        (fpr, pro) vertices.

    Raises
    ------
    MetricError
        If shapes differ, a mask is not binary, a map is not finite, or the pixels hold one
        class only.
    """
    fpr_before, fpr, pro_above, pro_at = _pro_points(_maps_and_masks(anomaly_maps, masks), fpr_limit)
    if fpr[-1] > fpr_limit:
        pro_at = pro_at.copy()
        pro_at[-1] = _at_limit(fpr_before, fpr, pro_above, pro_at, fpr_limit)
        fpr = fpr.copy()
        fpr[-1] = fpr_limit
    x = np.concatenate(([0.0], np.column_stack((fpr_before, fpr)).reshape(-1)))
    y = np.concatenate(([0.0], np.column_stack((pro_above, pro_at)).reshape(-1)))
    return x, y


@dataclass(frozen=True)
class AUPIMOResult:
    """AUPIMO per image (NaN for normal images) and its mean over anomalous images.

    `thresholds` (ascending) and `shared_fpr` (mean per-image FPR of the normal images at each
    threshold, descending) are the PIMO curve's x axis; `fpr_bounds` are the shared FPRs
    actually reached at the two snapped integration bounds, `num_points` the points integrated.

    Attributes
    ----------
    per_image : numpy.ndarray
        (N,) AUPIMO of each image, NaN for normal images.
    mean : float
        Mean over the anomalous images.
    thresholds : numpy.ndarray
        The thresholds, ascending.
    shared_fpr : numpy.ndarray
        Mean per-image FPR of the normal images at each threshold.
    fpr_bounds : tuple of float
        Shared FPRs reached at the two snapped integration bounds.
    num_points : int
        Number of points integrated.
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


def aupimo(anomaly_maps: ArrayLike | Sequence[ArrayLike], masks: ArrayLike | Sequence[ArrayLike],
           num_thresholds: int = 300_000,
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
    Maps and masks: (N, H, W) arrays, or lists of (H, W) arrays whose sizes may differ (each
    image's FPR and TPR are fractions of its own pixels, as with equal sizes).

    Parameters
    ----------
    anomaly_maps : array_like or sequence of array_like
        (N, H, W) maps, or a list of (H, W) maps whose sizes may differ between images.
    masks : array_like or sequence of array_like
        Ground-truth masks of the same shapes, 0/1 or bool (1 = anomalous pixel).
    num_thresholds : int, default 300000
        Number of thresholds between the lowest and highest normal score.
    fpr_bounds : tuple of float, default (1e-5, 1e-4)
        The shared false-positive range integrated over (log scale).

    Returns
    -------
    AUPIMOResult
        Per-image AUPIMO and its mean over anomalous images.

    Raises
    ------
    MetricError
        If the inputs are invalid, there are no normal or no anomalous images, or the normal
        images have too few pixels to reach `fpr_bounds`.
    """
    lower, upper = fpr_bounds
    if not 0 < lower < upper <= 1:
        raise MetricError(f"`fpr_bounds` must satisfy 0 < lower < upper <= 1; got {fpr_bounds}.")
    if num_thresholds < 2:
        raise MetricError(f"`num_thresholds` must be at least 2; got {num_thresholds}.")
    pixels = _maps_and_masks(anomaly_maps, masks)
    num_images = len(pixels.shapes)
    is_anomalous = np.logical_or.reduceat(pixels.truth, pixels.offsets[:-1])
    if is_anomalous.all():
        raise MetricError("AUPIMO needs at least one normal image (mask all zero); found none.")
    if not is_anomalous.any():
        raise MetricError("AUPIMO needs at least one anomalous image (mask not all zero); "
                          "found none.")

    normal_images = [np.sort(pixels.image(i)[0]) for i in np.flatnonzero(~is_anomalous)]
    low = float(min(scores[0] for scores in normal_images))
    high = float(max(scores[-1] for scores in normal_images))
    if not low < high:
        raise MetricError("The normal images' anomaly maps are constant; AUPIMO's thresholds "
                          "span the normal score range, which is empty here.")
    thresholds = np.linspace(low, high, num_thresholds)

    # Shared FPR: mean over normal images of the fraction of pixels >= threshold.
    shared_fpr = np.zeros(num_thresholds)
    for scores in normal_images:
        shared_fpr += (scores.size - np.searchsorted(scores, thresholds, side="left")) / scores.size
    shared_fpr /= len(normal_images)

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
        scores, truth = pixels.image(i)
        positives = np.sort(scores[truth])
        tpr = (positives.size - np.searchsorted(positives, window, side="left")) / positives.size
        per_image[i] = np.trapezoid(tpr[finite][::-1], log_fpr[finite][::-1])
    per_image = np.clip(per_image / np.log(upper / lower), 0.0, 1.0)
    return AUPIMOResult(per_image=per_image, mean=float(np.nanmean(per_image)),
                        thresholds=thresholds, shared_fpr=shared_fpr,
                        fpr_bounds=(float(shared_fpr[last]), float(shared_fpr[first])),
                        num_points=num_points)
