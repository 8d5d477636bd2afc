"""Align a query image to a reference image: a homography from feature matches (RANSAC),
refined (or, when matching fails, found) by ECC intensity alignment, with checks that say
when the alignment cannot be trusted.

Methods (both from OpenCV, used as they are):
- Keypoints and descriptors: ORB (Rublee et al., ICCV 2011), AKAZE (Alcantarilla et al.,
  BMVC 2013) or SIFT (Lowe, IJCV 2004); matches kept by Lowe's ratio test (0.75), then a
  homography by MAGSAC++ (Barath et al., CVPR 2020; OpenCV's USAC_MAGSAC, a RANSAC that needs
  no hand-set inlier threshold, more accurate than plain RANSAC on our tests) with a 3-pixel
  reprojection tolerance as its upper bound.
- ECC: Evangelidis & Psarakis, "Parametric Image Alignment Using Enhanced Correlation
  Coefficient Maximization", IEEE TPAMI 2008 (`cv2.findTransformECC`, homography motion),
  started from the feature homography; if matching failed, from the identity.

Both run on grey copies whose long side is at most `work_side` pixels (speed; the homography
is scaled back to full resolution). An alignment is refused, with its numbers, when fewer than
`min_inliers` matches agree, when the homography is degenerate (the query's outline maps to a
non-convex shape or to less than half or more than twice the reference's area) or, for an
ECC-only alignment, when the correlation reached is below `min_correlation`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from oddity.core.errors import ConfigError

FEATURES = ("orb", "akaze", "sift")
RATIO_TEST = 0.75
RANSAC_TOLERANCE = 3.0
AREA_RANGE = (0.5, 2.0)


@dataclass
class Alignment:
    """How a query maps onto its reference: `homography` takes query pixel coordinates (x, y)
    to reference ones; `ok` False means it must not be used, `problem` says why."""

    homography: list[list[float]]
    method: str
    ok: bool
    problem: str | None = None
    keypoints_reference: int = 0
    keypoints_query: int = 0
    matches: int = 0
    inliers: int = 0
    ecc_correlation: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.homography, dtype=np.float64)

    def to_dict(self) -> dict:
        """The fields as JSON-serialisable data.

        Returns
        -------
        dict
            Field name to value.
        """
        return asdict(self)


def _grey(pixels: np.ndarray, work_side: int) -> tuple[np.ndarray, float]:
    """uint8 grey copy with long side at most `work_side`, and the scale applied."""
    grey = cv2.cvtColor(np.round(pixels * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    scale = min(1.0, work_side / max(grey.shape))
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return grey, scale


def _detector(features: str):
    if features == "orb":
        return cv2.ORB_create(nfeatures=3000), cv2.NORM_HAMMING
    if features == "akaze":
        return cv2.AKAZE_create(), cv2.NORM_HAMMING
    return cv2.SIFT_create(), cv2.NORM_L2


def _feature_homography(reference: np.ndarray, query: np.ndarray, features: str,
                        result: Alignment) -> np.ndarray | None:
    """MAGSAC++ homography from ratio-test matches (query -> reference), or None; fills in the
    counts of `result`."""
    detector, norm = _detector(features)
    ref_points, ref_descriptors = detector.detectAndCompute(reference, None)
    query_points, query_descriptors = detector.detectAndCompute(query, None)
    result.keypoints_reference, result.keypoints_query = len(ref_points), len(query_points)
    if ref_descriptors is None or query_descriptors is None or len(ref_points) < 2 or len(query_points) < 2:
        return None
    pairs = cv2.BFMatcher(norm).knnMatch(query_descriptors, ref_descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO_TEST * p[1].distance]
    result.matches = len(good)
    if len(good) < 4:
        return None
    source = np.float32([query_points[m.queryIdx].pt for m in good])
    target = np.float32([ref_points[m.trainIdx].pt for m in good])
    homography, inlier_mask = cv2.findHomography(source, target, cv2.USAC_MAGSAC, RANSAC_TOLERANCE)
    if homography is None:
        return None
    result.inliers = int(inlier_mask.sum())
    return homography


def _ecc(reference: np.ndarray, query: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, float] | None:
    """ECC-refined homography (query -> reference) from `start`, and the correlation reached;
    None if ECC does not converge."""
    warp = np.linalg.inv(start).astype(np.float32)  # ECC warps reference coordinates into the query
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    try:
        correlation, warp = cv2.findTransformECC(reference.astype(np.float32), query.astype(np.float32),
                                                 warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
    except cv2.error:
        return None
    homography = np.linalg.inv(warp.astype(np.float64))
    return homography / homography[2, 2], float(correlation)


def _degenerate(homography: np.ndarray, query_hw: tuple[int, int], reference_hw: tuple[int, int]) -> str | None:
    """Why a homography cannot be a plausible view change, or None."""
    height, width = query_hw
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])[:, None]
    mapped = cv2.perspectiveTransform(corners, homography)
    if not np.all(np.isfinite(mapped)) or not cv2.isContourConvex(mapped):
        return "degenerate homography: the query's outline maps to a non-convex shape"
    ratio = abs(cv2.contourArea(mapped)) / float(reference_hw[0] * reference_hw[1])
    if not AREA_RANGE[0] <= ratio <= AREA_RANGE[1]:
        return (f"degenerate homography: the query maps to {ratio:.2f} times the reference's area "
                f"(accepted {AREA_RANGE[0]}-{AREA_RANGE[1]})")
    return None


def align(reference: np.ndarray, query: np.ndarray, *, features: str = "orb", ecc: bool = True,
          min_inliers: int = 15, min_correlation: float = 0.8, work_side: int = 512) -> Alignment:
    """Homography mapping `query` onto `reference` (both RGB float (H, W, 3) in [0, 1]),
    with match statistics and an `ok` flag (see module docstring).

    Parameters
    ----------
    reference, query : numpy.ndarray
        (H, W, 3) float RGB images.
    features : str, default "orb"
        Keypoint detector.
    ecc : bool, default True
        Refine the homography by ECC.
    min_inliers : int, default 15
        Fewest RANSAC inliers for `ok`.
    min_correlation : float, default 0.8
        Lowest correlation after warping for `ok`.
    work_side : int, default 512
        Long side images are matched at.

    Returns
    -------
    Alignment
        The homography and its checks.
    """
    if features not in FEATURES:
        raise ConfigError(f"features must be one of {', '.join(FEATURES)}, got {features!r}")
    ref_grey, ref_scale = _grey(reference, work_side)
    query_grey, query_scale = _grey(query, work_side)
    result = Alignment(homography=np.eye(3).tolist(), method=features, ok=False)
    homography = _feature_homography(ref_grey, query_grey, features, result)
    if homography is not None and result.inliers < min_inliers:
        homography = None
    if homography is None:
        result.notes.append(f"feature matching failed: {result.inliers} inliers of {result.matches} "
                            f"matches (need {min_inliers})")
    if ecc:
        refined = _ecc(ref_grey, query_grey, np.eye(3) if homography is None else homography)
        if refined is None:
            result.notes.append("ECC did not converge")
        elif homography is not None or refined[1] >= min_correlation:
            homography, result.ecc_correlation = refined
            result.method = "ecc" if result.inliers < min_inliers else f"{features}+ecc"
        else:
            result.ecc_correlation = refined[1]
            result.notes.append(f"ECC from the identity reached correlation {refined[1]:.3f} "
                                f"(need {min_correlation})")
    if homography is None:
        result.problem = "; ".join(result.notes)
        return result
    # Scale back to full resolution: x_ref = S_ref^-1 H S_query x_query.
    full = np.diag([1 / ref_scale, 1 / ref_scale, 1.0]) @ homography @ np.diag([query_scale, query_scale, 1.0])
    full /= full[2, 2]
    result.homography = full.tolist()
    result.problem = _degenerate(full, query.shape[:2], reference.shape[:2])
    result.ok = result.problem is None
    return result


def warp_to_reference(query: np.ndarray, alignment: Alignment,
                      reference_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The query resampled in the reference's frame (black outside it) and the bool mask of
    reference pixels the query covers.

    Parameters
    ----------
    query : numpy.ndarray
        (H, W, 3) float RGB.
    alignment : Alignment
        From `align`.
    reference_hw : tuple of int
        (H, W) of the reference.

    Returns
    -------
    tuple of numpy.ndarray
        (warped query, coverage mask).
    """
    height, width = reference_hw
    warped = cv2.warpPerspective(query, alignment.matrix, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    covered = cv2.warpPerspective(np.ones(query.shape[:2], np.uint8), alignment.matrix, (width, height),
                                  flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.clip(warped, 0.0, 1.0).astype(np.float32), covered.astype(bool)
