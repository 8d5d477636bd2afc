"""Evaluating a detector configuration on NAB: refit per series on its probationary period
(the first 15%, as NAB does), score the whole series, measure on the steps after it.

Metrics per series (`oddity.metrics.series`): point AUROC and AUPR, PATE (threshold-free);
point-adjusted F1 and event-wise F1 of the detector's own decisions (score above its
calibrated threshold), so they measure the threshold a user would get, not an oracle one;
and the flagged fraction of normal steps (its false-positive rate). A series whose test part
has no anomaly (NAB's artificialNoAnomaly group) only gets the false-positive rate. Group
figures are means over the group's series; the overall figure is the mean over all series
(the usual NAB-paper convention), each metric over the series where it is defined.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from oddity.core.registry import get_detector_class
from oddity.metrics.series import (
    event_f1,
    pate,
    point_adjusted_f1,
    point_aupr,
    point_auroc,
)
from oddity.series.data import NabSeries

METRICS = ("point_auroc", "point_aupr", "pa_f1", "event_f1", "pate", "fpr")


@dataclass
class SeriesResult:
    """One series: its metrics (None where undefined) and timings."""

    name: str
    group: str
    metrics: dict[str, float | None]
    fit_seconds: float
    score_seconds: float
    threshold_method: str


@dataclass
class NabEvaluation:
    """All series of a NAB run, with means per group and overall."""

    detector: str
    params: dict[str, Any]
    series: list[SeriesResult] = field(default_factory=list)

    def _mean(self, results: list[SeriesResult]) -> dict[str, float | None]:
        means: dict[str, float | None] = {}
        for metric in METRICS:
            values = [r.metrics[metric] for r in results if r.metrics[metric] is not None]
            means[metric] = float(np.mean(values)) if values else None
        means["series"] = len(results)
        means["seconds_per_series"] = float(np.mean([r.fit_seconds + r.score_seconds
                                                     for r in results]))
        return means

    def groups(self) -> dict[str, dict[str, float | None]]:
        """Mean metrics per NAB group (sorted by name)."""
        names = sorted({r.group for r in self.series})
        return {g: self._mean([r for r in self.series if r.group == g]) for g in names}

    def overall(self) -> dict[str, float | None]:
        """Mean metrics over all series."""
        return self._mean(self.series)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: detector, params, overall, groups and every series."""
        return {"detector": self.detector, "params": self.params, "overall": self.overall(),
                "groups": self.groups(),
                "series": [{"name": r.name, "group": r.group, **r.metrics,
                            "fit_seconds": r.fit_seconds, "score_seconds": r.score_seconds,
                            "threshold": r.threshold_method} for r in self.series]}


def series_metrics(labels: np.ndarray, scores: np.ndarray,
                   flagged: np.ndarray) -> dict[str, float | None]:
    """The metrics of one series' test part (see the module docstring)."""
    normal = ~labels
    metrics: dict[str, float | None] = {m: None for m in METRICS}
    metrics["fpr"] = float(flagged[normal].mean()) if normal.any() else None
    if labels.any() and normal.any():
        metrics.update(point_auroc=point_auroc(labels, scores),
                       point_aupr=point_aupr(labels, scores),
                       pa_f1=point_adjusted_f1(labels, flagged).f1,
                       event_f1=event_f1(labels, flagged).f1,
                       pate=pate(labels, scores))
    return metrics


def evaluate_series(detector_name: str, params: dict[str, Any], nab: NabSeries) -> SeriesResult:
    """Fit a fresh detector on the series' history, predict the whole series, measure the
    steps after the probationary period."""
    detector = get_detector_class(detector_name)(**{**params, "verbose": False})
    start = time.perf_counter()
    detector.fit(nab.history)
    fitted = time.perf_counter()
    prediction = detector.predict(nab.frame)
    scored = time.perf_counter()
    test = slice(nab.probationary, None)
    assert detector.threshold_ is not None
    return SeriesResult(nab.name, nab.group,
                        series_metrics(nab.labels[test], prediction.scores[test],
                                       prediction.labels[test]),
                        fitted - start, scored - fitted, detector.threshold_.method)


def evaluate_nab(detector_name: str, params: dict[str, Any], series: list[NabSeries],
                 verbose: bool = True) -> NabEvaluation:
    """`evaluate_series` over every series, with a progress bar."""
    evaluation = NabEvaluation(detector_name, dict(params))
    for nab in tqdm(series, desc=f"eval {detector_name}", unit="series", disable=not verbose):
        evaluation.series.append(evaluate_series(detector_name, params, nab))
    return evaluation
