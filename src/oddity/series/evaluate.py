"""Evaluating a detector configuration on NAB: refit per series on its probationary period
(min(15%, 750 steps), as NAB does), score the whole series, decide on the steps after it.

Decisions on the test steps follow the detector's calibration: online by default (the
calibrator starts from the fit-time held-out scores and walks the test steps in order), or
the fixed threshold. Metrics per series (`oddity.metrics`): point AUROC and AUPR, PATE,
VUS-ROC and VUS-PR (threshold-free); point-adjusted F1, event-wise F1 and range-based
F1 (Tatbul et al., flat bias) of the detector's own decisions, so they measure the threshold a
user would get, not an oracle one; and the flagged fraction of normal steps (the realised
false-positive rate). A series whose test part has no anomaly (NAB's artificialNoAnomaly
group) only gets the false-positive rate. Group figures are means over the group's series;
the overall figure is the mean over all series, each metric over the series where it is
defined, plus the median realised false-positive rate.

The NAB score (`oddity.metrics.nab`, three profiles) is computed over the whole corpus from
the calibrated levels (1 - conformal p-value) of every step, which share one scale across
series as NAB's single corpus threshold requires. NAB rewards the first detection in a window
and charges every later one outside it, so its detectors report alert onsets: the level of a
step is kept only where it exceeds every level of the `ONSET_MEMORY` steps before it, 0
elsewhere (causal). Memories of 50 and 200 steps gave NAB scores within 2 points of each
other for three detectors; 100 lies between; without it the score is near 0.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from oddity.core.registry import get_detector_class
from oddity.metrics.nab import nab_scores
from oddity.metrics.range_based import range_precision_recall
from oddity.metrics.series import (
    event_f1,
    pate,
    point_adjusted_f1,
    point_aupr,
    point_auroc,
)
from oddity.metrics.vus import vus
from oddity.series.data import NabSeries
from oddity.series.results import SeriesScores

ONSET_MEMORY = 100
METRICS = ("point_auroc", "point_aupr", "vus_roc", "vus_pr", "pate", "pa_f1", "event_f1",
           "range_f1", "fpr")


@dataclass
class SeriesResult:
    """One series: its metrics (None where undefined) and timings."""

    name: str
    group: str
    metrics: dict[str, float | None]
    fit_seconds: float
    score_seconds: float
    threshold_method: str
    labels: np.ndarray  # the whole series' labels and onset levels, for the NAB score
    levels: np.ndarray


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
        rates = [r.metrics["fpr"] for r in results if r.metrics["fpr"] is not None]
        means["median_fpr"] = float(np.median(rates)) if rates else None
        means["series"] = len(results)
        means["seconds_per_series"] = float(np.mean([r.fit_seconds + r.score_seconds
                                                     for r in results]))
        return means

    def nab(self) -> dict[str, float]:
        """NAB's normalised score per profile, over all series (see the module docstring).

        Returns
        -------
        dict
            Profile name to score (0: null detector, 100: perfect).
        """
        scores = nab_scores([(r.labels, r.levels) for r in self.series])
        return {profile: result.score for profile, result in scores.items()}

    def fpr_quantiles(self) -> list[float]:
        """Realised false-positive rate over the series: min, quartiles, max.

        Returns
        -------
        list of float
            Five rates.
        """
        rates = [r.metrics["fpr"] for r in self.series if r.metrics["fpr"] is not None]
        return [float(q) for q in np.quantile(rates, [0, 0.25, 0.5, 0.75, 1])]

    def groups(self) -> dict[str, dict[str, float | None]]:
        """Mean metrics per NAB group (sorted by name).

        Returns
        -------
        dict
            Group name to metric name to mean.
        """
        names = sorted({r.group for r in self.series})
        return {g: self._mean([r for r in self.series if r.group == g]) for g in names}

    def overall(self) -> dict[str, float | None]:
        """Mean metrics over all series.

        Returns
        -------
        dict
            Metric name to mean.
        """
        return self._mean(self.series)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: detector, params, overall, groups and every series.

        Returns
        -------
        dict
            The evaluation.
        """
        return {"detector": self.detector, "params": self.params, "overall": self.overall(),
                "nab": self.nab(), "fpr_quantiles": self.fpr_quantiles(),
                "groups": self.groups(),
                "series": [{"name": r.name, "group": r.group, **r.metrics,
                            "fit_seconds": r.fit_seconds, "score_seconds": r.score_seconds,
                            "threshold": r.threshold_method} for r in self.series]}


def onset_levels(levels: np.ndarray, memory: int = ONSET_MEMORY) -> np.ndarray:
    """`levels` where a step's level exceeds all of the `memory` steps before it, else 0.

    Parameters
    ----------
    levels : numpy.ndarray
        (T,) anomaly levels.
    memory : int, default 100
        Steps looked back.

    Returns
    -------
    numpy.ndarray
        (T,) onset levels.
    """
    padded = np.concatenate((np.full(memory, -np.inf), levels))
    previous = np.lib.stride_tricks.sliding_window_view(padded[:-1], memory).max(axis=1)
    return np.where(levels > previous, levels, 0.0)


def series_metrics(labels: np.ndarray, scores: np.ndarray,
                   flagged: np.ndarray) -> dict[str, float | None]:
    """The metrics of one series' test part (see the module docstring).

    Parameters
    ----------
    labels : numpy.ndarray
        (T,) bool labels.
    scores : numpy.ndarray
        (T,) scores.
    flagged : numpy.ndarray
        (T,) bool decisions.

    Returns
    -------
    dict
        Metric name to value (None where undefined).
    """
    normal = ~labels
    metrics: dict[str, float | None] = {m: None for m in METRICS}
    metrics["fpr"] = float(flagged[normal].mean()) if normal.any() else None
    if labels.any() and normal.any():
        volume = vus(labels, scores) if np.ptp(scores) > 0 else None  # 0 if constant, as aeon
        metrics.update(point_auroc=point_auroc(labels, scores),
                       point_aupr=point_aupr(labels, scores),
                       vus_roc=volume.roc if volume else 0.0,
                       vus_pr=volume.pr if volume else 0.0,
                       pa_f1=point_adjusted_f1(labels, flagged).f1,
                       event_f1=event_f1(labels, flagged).f1,
                       range_f1=range_precision_recall(labels, flagged).f1,
                       pate=pate(labels, scores))
    return metrics


def evaluate_series(detector_name: str, params: dict[str, Any], nab: NabSeries) -> SeriesResult:
    """Fit a fresh detector on the series' history, score the whole series, decide and
    measure the steps after the probationary period.

    Parameters
    ----------
    detector_name : str
        A registered series detector.
    params : dict
        Its parameters.
    nab : NabSeries
        The series.

    Returns
    -------
    SeriesResult
        Its metrics, timings and levels.
    """
    detector = get_detector_class(detector_name)(**params)
    start = time.perf_counter()
    detector.fit(nab.history, verbose=False)
    fitted = time.perf_counter()
    scores = detector.score(nab.frame)
    test = slice(nab.probationary, None)
    test_scores = SeriesScores(scores.index[test], scores.scores[test],
                               None if scores.channel_scores is None
                               else scores.channel_scores[test], scores.columns)
    prediction = detector.decide(test_scores, detector.calibrator() if detector.online else None)
    scored = time.perf_counter()
    assert detector.threshold_ is not None
    levels = np.concatenate((np.zeros(nab.probationary), onset_levels(prediction.levels)))
    method = "online" if detector.online else detector.threshold_.method
    return SeriesResult(nab.name, nab.group,
                        series_metrics(nab.labels[test], prediction.scores, prediction.labels),
                        fitted - start, scored - fitted, method, nab.labels, levels)


def evaluate_nab(detector_name: str, params: dict[str, Any], series: list[NabSeries],
                 verbose: bool = True) -> NabEvaluation:
    """`evaluate_series` over every series, with a progress bar.

    Parameters
    ----------
    detector_name : str
        A registered series detector.
    params : dict
        Its parameters.
    series : list of NabSeries
        The corpus (`oddity.series.data.read_nab`).
    verbose : bool, default True
        Show a progress bar.

    Returns
    -------
    NabEvaluation
        Per-series results and the corpus figures.
    """
    evaluation = NabEvaluation(detector_name, dict(params))
    for nab in tqdm(series, desc=f"eval {detector_name}", unit="series", disable=not verbose):
        evaluation.series.append(evaluate_series(detector_name, params, nab))
    return evaluation
