"""Pixel AUROC against scikit-learn; AUPRO and AUPIMO against slow brute-force versions."""
import bisect

import numpy as np
import pytest
from skimage.measure import label
from sklearn.metrics import roc_auc_score

from oddity.core.errors import MetricError
from oddity.metrics import aupimo, aupro, pixel_auroc, pro_curve


def blob_masks(rng, n, size, normal_images=0):
    """Random masks of a few rectangles, some touching only diagonally, plus one-pixel spots."""
    masks = np.zeros((n, size, size), bool)
    for mask in masks[normal_images:]:
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, size - 3, 2)
            h, w = rng.integers(1, 5, 2)
            mask[r:r + h, c:c + w] = True
        mask[tuple(rng.integers(0, size, 2))] = True
    return masks


def maps_for(rng, masks, decimals=None, dtype=np.float64):
    maps = (rng.random(masks.shape) + masks * rng.random(masks.shape) * 0.8).astype(dtype)
    return np.round(maps, decimals) if decimals is not None else maps


def brute_aupro(maps, masks, limit):
    """MVTec AD's PRO curve at every distinct score, trapezoid up to `limit` (bisect + lerp).
    Maps and masks: (N, H, W) arrays or lists of (H, W) arrays of any sizes."""
    regions = []
    for image, mask in zip(maps, masks, strict=True):
        components, count = label(mask, connectivity=2, return_num=True)
        regions += [(image, components == k) for k in range(1, count + 1)]
    normal = np.concatenate([image[~mask] for image, mask in zip(maps, masks)])
    x, y = [0.0], [0.0]
    for t in np.unique(np.concatenate([np.ravel(image) for image in maps]))[::-1]:
        x.append(np.mean(normal >= t))
        y.append(np.mean([np.mean(image[region] >= t) for image, region in regions]))
    x, y = np.array(x), np.array(y)
    correction = 0.0
    if limit not in x:
        i = bisect.bisect(x, limit)
        y_lim = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1])
        correction = 0.5 * (y_lim + y[i - 1]) * (limit - x[i - 1])
    keep = x <= limit
    x, y = x[keep], y[keep]
    return (np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)) + correction) / limit


def brute_aupimo(maps, masks, num_thresholds, bounds):
    """AUPIMO with explicit loops over thresholds and images (arrays or lists of (H, W))."""
    anomalous = np.array([mask.any() for mask in masks])
    normal = [image for image, bad in zip(maps, anomalous) if not bad]
    thresholds = np.linspace(min(map(np.min, normal)), max(map(np.max, normal)), num_thresholds)
    shared = np.mean([[np.mean(image >= t) for t in thresholds] for image in normal], axis=0)
    first = int(np.argmin(np.abs(shared - bounds[1])))
    last = int(np.argmin(np.abs(shared - bounds[0])))
    result = np.full(len(maps), np.nan)
    for i in np.flatnonzero(anomalous):
        area = 0.0
        for k in range(first, last):
            tpr_a, tpr_b = (np.mean(maps[i][masks[i]] >= thresholds[j]) for j in (k, k + 1))
            area += 0.5 * (tpr_a + tpr_b) * (np.log(shared[k]) - np.log(shared[k + 1]))
        result[i] = min(max(area / np.log(bounds[1] / bounds[0]), 0.0), 1.0)
    return result


@pytest.mark.parametrize("decimals", [None, 2])
def test_pixel_auroc_matches_sklearn(decimals):
    rng = np.random.default_rng(1)
    masks = blob_masks(rng, 6, 32, normal_images=2)
    maps = maps_for(rng, masks, decimals, np.float32)
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()),
                                                     abs=1e-9)


def test_pixel_auroc_float32_ties_are_exact():
    # 1 + 2**-23 is the next float32 after 1: a distinct score, not a tie.
    maps = np.array([[[1.0, 1.0 + 2**-23, 1.0, 0.5]]], np.float32)
    masks = np.array([[[1, 1, 0, 0]]])
    assert pixel_auroc(maps, masks) == pytest.approx((0.5 + 1 + 1 + 1) / 4, abs=1e-12)


@pytest.mark.parametrize("seed, decimals, limit", [
    (0, None, 0.3), (1, 2, 0.3), (2, 1, 0.3), (3, None, 0.05), (4, 2, 1.0), (5, 1, 0.17),
])
def test_aupro_matches_brute_force(seed, decimals, limit):
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, 5, 16, normal_images=2)
    maps = maps_for(rng, masks, decimals)
    assert aupro(maps, masks, limit) == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-6)


def test_aupro_limit_hit_exactly():
    rng = np.random.default_rng(7)
    masks = blob_masks(rng, 3, 10)
    maps = maps_for(rng, masks)
    limit = 7 / np.count_nonzero(~masks)  # a reachable FPR: no interpolation needed
    assert aupro(maps, masks, limit) == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-9)


def test_aupro_regions_are_8_connected_and_weighted_equally():
    masks = np.zeros((1, 4, 6), bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal neighbours: one region of 2 pixels
    masks[0, 3, 5] = True  # a one-pixel region
    maps = np.zeros((1, 4, 6))
    maps[0, 0, 0] = maps[0, 3, 5] = 1.0  # half of the first region, all of the second
    # Curve (0, 0) -> (0, 0.75): PRO (0.5 + 1) / 2 at threshold 1 -> (1, 1) at threshold 0.
    assert aupro(maps, masks, 0.3) == pytest.approx(0.75 + 0.25 * 0.3 / 2)
    assert aupro(maps, masks, 1.0) == pytest.approx((0.75 + 1) / 2)


def test_aupro_perfect_and_constant_maps():
    masks = np.zeros((2, 8, 8), bool)
    masks[1, 2:4, 2:5] = True
    assert aupro(masks.astype(float), masks) == pytest.approx(1.0)
    # A constant map: the curve jumps from (0, 0) to (1, 1) in one step.
    assert aupro(np.zeros((2, 8, 8)), masks, 0.3) == pytest.approx(0.15)


@pytest.mark.parametrize("maps, masks, message", [
    (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), "no anomalous pixel"),
    (np.zeros((2, 4, 4)), np.ones((2, 4, 4)), "no normal pixel"),
    (np.zeros((2, 4, 4)), np.ones((2, 4, 5)), "differ in shape"),
    (np.full((2, 4, 4), np.nan), np.ones((2, 4, 4)), "NaN"),
    (np.zeros((2, 4, 4)), np.full((2, 4, 4), 0.5), "binary"),
    (np.zeros((4, 4)), np.zeros((4, 4)), r"\(N, H, W\)"),
])
def test_pixel_metrics_reject_degenerate_input(maps, masks, message):
    for metric in (pixel_auroc, aupro):
        with pytest.raises(MetricError, match=message):
            metric(maps, masks)


@pytest.mark.parametrize("seed, decimals", [(0, None), (1, 3), (2, None)])
def test_aupimo_matches_brute_force(seed, decimals):
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, 12, 24, normal_images=6)
    maps = maps_for(rng, masks, decimals)
    bounds = (1e-3, 1e-1)
    with pytest.warns(UserWarning, match="only"):
        result = aupimo(maps, masks, num_thresholds=400, fpr_bounds=bounds)
    expected = brute_aupimo(maps, masks, 400, bounds)
    np.testing.assert_allclose(result.per_image, expected, atol=1e-6)
    assert np.isnan(result.per_image[:6]).all() and not np.isnan(result.per_image[6:]).any()
    assert result.mean == pytest.approx(np.nanmean(expected), abs=1e-6)
    assert result.thresholds.shape == result.shared_fpr.shape == (400,)
    low, high = result.fpr_bounds  # the shared FPRs at the snapped bounds
    assert low < high and low in result.shared_fpr and high in result.shared_fpr


def test_aupimo_perfect_detector_scores_one():
    rng = np.random.default_rng(3)
    masks = blob_masks(rng, 8, 32, normal_images=4)
    maps = rng.random(masks.shape) + 2.0 * masks
    result = aupimo(maps, masks, num_thresholds=100_000, fpr_bounds=(1e-3, 1e-2))
    np.testing.assert_allclose(result.per_image[4:], 1.0)
    assert result.num_points > 300


@pytest.mark.parametrize("normal_images, images, kwargs, message", [
    (0, 4, {}, "at least one normal image"),
    (4, 4, {}, "at least one anomalous image"),
    (2, 4, {"num_thresholds": 50, "fpr_bounds": (1e-2, 1e-1)}, "increase `num_thresholds`"),
    (2, 4, {"fpr_bounds": (1e-5, 1e-4)}, "outside the reachable shared FPR"),
    (2, 4, {"fpr_bounds": (1e-1, 1e-2)}, "0 < lower < upper"),
])
def test_aupimo_rejects_degenerate_input(normal_images, images, kwargs, message):
    rng = np.random.default_rng(0)
    masks = blob_masks(rng, images, 16, normal_images=normal_images)
    with pytest.raises(MetricError, match=message):
        aupimo(maps_for(rng, masks), masks, **kwargs)


def mixed_size_set(rng, sizes, normal_images, decimals=None):
    """Maps and masks as lists of (H, W) arrays of the given sizes, the first ones normal."""
    maps, masks = [], []
    for i, (height, width) in enumerate(sizes):
        mask = np.zeros((height, width), bool)
        if i >= normal_images:
            for _ in range(rng.integers(1, 4)):
                r, c = rng.integers(0, height - 3), rng.integers(0, width - 3)
                mask[r:r + rng.integers(1, 5), c:c + rng.integers(1, 5)] = True
        maps.append(maps_for(rng, mask, decimals))
        masks.append(mask)
    return maps, masks


@pytest.mark.parametrize("seed, decimals", [(0, None), (1, 2)])
def test_list_input_equals_array_input_when_sizes_agree(seed, decimals):
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, 8, 24, normal_images=3)
    maps = maps_for(rng, masks, decimals, np.float32)
    as_lists = list(maps), [mask.astype(np.uint8) for mask in masks]
    assert pixel_auroc(*as_lists) == pixel_auroc(maps, masks)
    assert aupro(*as_lists, 0.2) == pytest.approx(aupro(maps, masks, 0.2), abs=1e-12)
    for a, b in zip(pro_curve(*as_lists), pro_curve(maps, masks)):
        np.testing.assert_allclose(a, b, atol=1e-12)
    # Nested Python lists are (N, H, W) too.
    assert aupro(maps.tolist(), masks.tolist()) == pytest.approx(aupro(maps, masks), abs=1e-12)
    bounds = (1e-2, 1e-1)
    from_lists = aupimo(*as_lists, num_thresholds=20_000, fpr_bounds=bounds)
    from_array = aupimo(maps, masks, num_thresholds=20_000, fpr_bounds=bounds)
    np.testing.assert_allclose(from_lists.per_image, from_array.per_image, atol=1e-12)
    np.testing.assert_array_equal(from_lists.shared_fpr, from_array.shared_fpr)


@pytest.mark.parametrize("seed, decimals, limit", [(0, None, 0.3), (1, 2, 0.3), (2, 1, 0.12), (3, None, 1.0)])
def test_mixed_sizes_match_brute_force(seed, decimals, limit):
    rng = np.random.default_rng(seed)
    sizes = [(16, 16), (12, 20), (9, 7), (16, 16), (20, 11), (8, 30)]
    maps, masks = mixed_size_set(rng, sizes, normal_images=2, decimals=decimals)
    flat_maps = np.concatenate([m.ravel() for m in maps])
    flat_masks = np.concatenate([m.ravel() for m in masks])
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(flat_masks, flat_maps), abs=1e-12)
    assert aupro(maps, masks, limit) == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-9)
    x, y = pro_curve(maps, masks, limit)
    assert np.trapezoid(y, x) / limit == pytest.approx(aupro(maps, masks, limit), abs=1e-12)


def test_regions_do_not_join_across_images_of_different_sizes():
    # Two one-pixel regions at the end of image 0 and start of image 1: adjacent in memory.
    masks = [np.zeros((2, 3), bool), np.zeros((3, 2), bool)]
    masks[0][1, 2] = masks[1][0, 0] = True
    maps = [np.zeros((2, 3)), np.zeros((3, 2))]
    maps[0][1, 2] = 1.0  # one of the two regions found: PRO 0.5 at FPR 0
    assert aupro(maps, masks, 1.0) == pytest.approx((0.5 + 1.0) / 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_aupimo_of_mixed_sizes_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    sizes = [(24, 24), (20, 30), (30, 16), (24, 24), (18, 28), (26, 20), (24, 24), (16, 40)]
    maps, masks = mixed_size_set(rng, sizes, normal_images=4)
    bounds = (1e-3, 1e-1)
    with pytest.warns(UserWarning, match="only"):
        result = aupimo(maps, masks, num_thresholds=400, fpr_bounds=bounds)
    np.testing.assert_allclose(result.per_image, brute_aupimo(maps, masks, 400, bounds), atol=1e-6)
    assert np.isnan(result.per_image[:4]).all() and not np.isnan(result.per_image[4:]).any()


def test_pro_curve_is_the_integrated_curve():
    rng = np.random.default_rng(5)
    masks = blob_masks(rng, 5, 16, normal_images=2)
    maps = maps_for(rng, masks, 2)
    for limit in (0.05, 0.3, 1.0):
        x, y = pro_curve(maps, masks, limit)
        assert x[0] == y[0] == 0.0 and x[-1] == pytest.approx(limit) and np.all(np.diff(x) >= 0)
        assert np.all(np.diff(y) >= -1e-12) and y.max() <= 1.0 + 1e-12
        assert np.trapezoid(y, x) / limit == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-9)


@pytest.mark.parametrize("maps, masks, message", [
    ([np.zeros((4, 4)), np.zeros((4, 5))], [np.zeros((4, 4)), np.zeros((5, 4))], r"image 1: .* differ in shape"),
    ([np.zeros((4, 4))] * 2, [np.zeros((4, 4))] * 3, "2 images and `masks` 3"),
    ([np.zeros((4, 4)), np.zeros((2, 4, 4))], [np.zeros((4, 4))] * 2, r"item 1 has shape \(2, 4, 4\)"),
    ([], [], "empty"),
    ([np.zeros((0, 4)), np.zeros((4, 4))], [np.zeros((0, 4)), np.ones((4, 4))], "no pixel"),
    ([np.zeros((4, 4)), np.full((3, 3), np.nan)], [np.ones((4, 4)), np.zeros((3, 3))], "NaN"),
])
def test_list_input_is_validated(maps, masks, message):
    for metric in (pixel_auroc, aupro, aupimo):
        with pytest.raises(MetricError, match=message):
            metric(maps, masks)
