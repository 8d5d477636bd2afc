"""Golden-sample comparison: alignment recovers a known transform, an injected defect is
found, failed alignments are reported instead of scored."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from oddity.image.alignment import align
from oddity.image.reference import AlignmentError, GoldenSample

SIZE = 192
MARGIN = 32  # parts are drawn this much larger and cropped, so moved views show real content
DEFECT = (slice(120, 136), slice(50, 66))  # rows, columns in the query


def machined_part(seed: int = 0) -> np.ndarray:
    """A textured part: random filled rectangles and circles (corners for keypoints) on noise."""
    rng = np.random.default_rng(seed)
    full = SIZE + 2 * MARGIN
    image = (0.4 + 0.1 * rng.random((full, full, 3))).astype(np.float32)
    for _ in range(60):
        colour = tuple(float(c) for c in rng.random(3))
        x, y = (int(v) for v in rng.integers(0, full, 2))
        r = int(rng.integers(4, 14))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + r, y + 2 * r), colour, -1)
        else:
            cv2.circle(image, (x, y), r, colour, -1)
    return image


def centre_crop(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[MARGIN:MARGIN + SIZE, MARGIN:MARGIN + SIZE])


def moved_crop(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The view of a drawn part rotated by 5 degrees and shifted by (7, -4) pixels, and the
    homography that takes it back onto the unmoved view (both cropped)."""
    full = image.shape[0]
    matrix = cv2.getRotationMatrix2D((full / 2, full / 2), 5.0, 1.0)
    matrix[:, 2] += (7, -4)
    moved = cv2.warpAffine(image, matrix, (full, full), borderMode=cv2.BORDER_REFLECT)
    shift = np.array([[1, 0, MARGIN], [0, 1, MARGIN], [0, 0, 1]], dtype=np.float64)
    back = np.linalg.inv(shift) @ np.linalg.inv(np.vstack([matrix, [0, 0, 1]])) @ shift
    return centre_crop(moved), back


def _max_error(estimated: np.ndarray, true: np.ndarray) -> float:
    points = np.float32([[40, 40], [150, 40], [150, 150], [40, 150], [96, 96]])[:, None]
    return float(np.abs(cv2.perspectiveTransform(points, estimated) - cv2.perspectiveTransform(points, true)).max())


@pytest.mark.parametrize("features, ecc", [("orb", False), ("sift", False), ("orb", True)])
def test_alignment_recovers_a_known_transform(features, ecc):
    part = machined_part()
    reference, (query, true) = centre_crop(part), moved_crop(part)
    alignment = align(reference, query, features=features, ecc=ecc)
    assert alignment.ok and alignment.method.startswith(features), alignment
    assert alignment.inliers >= 15
    assert _max_error(alignment.matrix, true) < 1.5


def test_injected_defect_is_found_and_scores_above_a_good_query():
    part = machined_part()
    reference, (good, true) = centre_crop(part), moved_crop(part)
    defective = good.copy()
    defective[DEFECT] = (0.95, 0.05, 0.05)
    golden = GoldenSample(reference, image_size=SIZE)
    normal, anomalous = golden.compare(good), golden.compare(defective)
    assert anomalous.score > 1.4 * normal.score
    centre = cv2.perspectiveTransform(np.float32([[[58, 128]]]), true)[0, 0]  # (x, y) in the reference
    peak_y, peak_x = np.unravel_index(np.argmax(anomalous.map), anomalous.map.shape)
    assert abs(peak_x - centre[0]) < 16 and abs(peak_y - centre[1]) < 16
    assert anomalous.map.shape == reference.shape[:2] and anomalous.warped.shape == reference.shape
    # Without alignment the good query differs from the reference everywhere it moved.
    assert golden.compare(good, align_query=False).score > normal.score


def test_too_few_matches_is_reported_with_the_numbers():
    flat = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    with pytest.raises(AlignmentError, match="inliers of") as caught:
        GoldenSample(centre_crop(machined_part()), image_size=SIZE).compare(flat)
    alignment = caught.value.alignment
    assert not alignment.ok and alignment.inliers < 15 and alignment.keypoints_query == 0


def test_degenerate_homography_is_refused():
    reference = centre_crop(machined_part())
    tiny = cv2.resize(reference, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    canvas = np.full_like(reference, 0.45)
    canvas[:tiny.shape[0], :tiny.shape[1]] = tiny
    alignment = align(canvas, reference, ecc=False, min_inliers=8)
    assert not alignment.ok and alignment.problem.startswith("degenerate homography")
