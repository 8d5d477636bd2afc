"""Evaluation metrics: image-level, pixel-level (AUPRO, AUPIMO) and time-series (PATE ...).

Every function validates its input and raises `oddity.core.errors.MetricError` for degenerate
cases (one class only, shape mismatch, NaN scores, non-binary masks or labels).
"""
from oddity.metrics.classification import F1Max, f1_max, image_aupr, image_auroc
from oddity.metrics.segmentation import AUPIMOResult, aupimo, aupro, pixel_auroc, pro_curve
from oddity.metrics.series import (
    DetectionF1,
    event_f1,
    pate,
    point_adjusted_f1,
    point_aupr,
    point_auroc,
)

__all__ = [
    "AUPIMOResult",
    "DetectionF1",
    "F1Max",
    "aupimo",
    "aupro",
    "event_f1",
    "f1_max",
    "image_aupr",
    "image_auroc",
    "pate",
    "pixel_auroc",
    "pro_curve",
    "point_adjusted_f1",
    "point_aupr",
    "point_auroc",
]
