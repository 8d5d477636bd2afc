"""Evaluation metrics: image-level, pixel-level (AUPRO, AUPIMO) and time-series (PATE, NAB score,
VUS, range-based precision/recall ...).

Every function validates its input and raises `oddity.core.errors.MetricError` for degenerate
cases (one class only, shape mismatch, NaN scores, non-binary masks or labels).
"""
from oddity.metrics.classification import F1Max, f1_max, image_aupr, image_auroc
from oddity.metrics.nab import NabScore, nab_raw_score, nab_score, nab_scores
from oddity.metrics.range_based import range_precision_recall
from oddity.metrics.segmentation import AUPIMOResult, aupimo, aupro, pixel_auroc, pro_curve
from oddity.metrics.series import (
    DetectionF1,
    event_f1,
    pate,
    point_adjusted_f1,
    point_aupr,
    point_auroc,
)
from oddity.metrics.vus import RangeAUC, range_auc, vus

__all__ = [
    "AUPIMOResult",
    "DetectionF1",
    "F1Max",
    "NabScore",
    "RangeAUC",
    "aupimo",
    "aupro",
    "event_f1",
    "f1_max",
    "image_aupr",
    "image_auroc",
    "nab_raw_score",
    "nab_score",
    "nab_scores",
    "pate",
    "pixel_auroc",
    "pro_curve",
    "range_auc",
    "range_precision_recall",
    "point_adjusted_f1",
    "point_aupr",
    "point_auroc",
    "vus",
]
