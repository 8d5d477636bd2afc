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

The NAB score (`oddity.metrics.nab`, three profiles) is computed over the whole corpus, two
ways. Under NAB's own protocol (`nab`; the scoreboard's) every step gets a score in [0, 1] on
one scale across series and NAB's optimiser picks one threshold for the whole corpus per
profile: the step score is the calibrated level (1 - conformal p-value) or, with
`postprocess="likelihood"`, Numenta's anomaly likelihood of the raw scores
(`oddity.series.postprocess`). NAB rewards the first detection in a window and charges every
later one outside it, so the step score is kept only at alert onsets (where it exceeds every
score of the `period` steps before it, 0 elsewhere; causal). With `postprocess="alerts"` the
step score is the calibrated level at the detector's own alerts (the flags kept by a
refractory `period`, below), 0 elsewhere: the optimiser then only raises the bar above the
calibrated one. With `postprocess="raw"` the step score is the detector's own score, as NAB
feeds its detectors' outputs to the optimiser; it is computed only for a detector whose scores
all lie in [0, 1] (NAB's range; `cad_ose`), which then also decides its own onsets. At the
detector's own calibrated decisions (`nab_calibrated`) the detections
are the flagged steps, a flag within `period` steps after a kept one dropped (a refractory
period): the figure a user of the calibrated threshold gets, no threshold chosen in hindsight.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from oddity.core.errors import ConfigError, DataError
from oddity.core.persistence import atomic_write
from oddity.core.registry import get_detector_class
from oddity.metrics.nab import PROFILES, nab_score
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
from oddity.series.postprocess import anomaly_likelihood, onset_scores, refractory_flags
from oddity.series.results import SeriesScores

ONSET_MEMORY = 100
POSTPROCESS = ("level", "likelihood", "alerts", "raw")
NAB_STEPS = "level"  # the step score of the NAB figure eval prints (see docs/series.md)
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
    labels: np.ndarray  # the whole series' labels and raw scores
    scores: np.ndarray
    probationary: int
    held_out: np.ndarray  # the held-out scores the calibration started from
    levels: np.ndarray  # the test steps' calibrated levels and decisions
    flags: np.ndarray

    def nab_steps(self, postprocess: str = NAB_STEPS, period: int = ONSET_MEMORY,
                  short_window: int = 1) -> np.ndarray:
        """The step scores NAB's optimiser sees (module docstring), over the whole series.

        Parameters
        ----------
        postprocess : str
            "level", "likelihood", "alerts" or "raw" (module docstring).
        period : int
            Memory of the alert onsets, or the refractory period for "alerts", in steps.
        short_window : int
            Steps in the likelihood's short mean (`anomaly_likelihood`).

        Returns
        -------
        numpy.ndarray
            Scores in [0, 1], 0 in the probationary period and between alert onsets.

        Raises
        ------
        ConfigError
            On an unknown `postprocess` or a negative `period`.
        """
        if postprocess == "alerts":
            kept = refractory_flags(self.flags, period)
            return np.concatenate((np.zeros(self.probationary), np.where(kept, self.levels, 0.0)))
        if postprocess == "raw":
            return np.concatenate((np.zeros(self.probationary), self.scores[self.probationary:]))
        if postprocess == "level":
            test = self.levels
        elif postprocess == "likelihood":
            test = anomaly_likelihood(self.scores[self.probationary:], self.held_out,
                                      short_window=short_window)
        else:
            raise ConfigError(f"unknown NAB post-processing {postprocess!r}; choose one of "
                              f"{POSTPROCESS}.")
        return np.concatenate((np.zeros(self.probationary), onset_scores(test, period)))

    def nab_detections(self, period: int = ONSET_MEMORY) -> np.ndarray:
        """The calibrated decisions as NAB detections (1), a refractory `period` applied.

        Parameters
        ----------
        period : int, default ONSET_MEMORY
            Steps after a kept detection in which further detections are dropped.

        Returns
        -------
        numpy.ndarray
            (T,) 0/1 detections, zero over the probationary period.
        """
        return np.concatenate((np.zeros(self.probationary),
                               refractory_flags(self.flags, period).astype(np.float64)))


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

    def nab(self, postprocess: str = NAB_STEPS, period: int = ONSET_MEMORY,
            short_window: int = 1) -> dict[str, float]:
        """NAB's normalised score per profile under NAB's protocol.

        The threshold is optimised over the corpus per profile, on the step scores of
        `SeriesResult.nab_steps`.

        Parameters
        ----------
        postprocess : str, default NAB_STEPS
            The step score: one of `POSTPROCESS`.
        period : int, default ONSET_MEMORY
            Steps an onset must exceed (level), or the refractory period (alerts).
        short_window : int, default 1
            The likelihood's short averaging window.

        Returns
        -------
        dict
            Profile name to score (0: null detector, 100: perfect).
        """
        corpus = [(r.labels, r.nab_steps(postprocess, period, short_window))
                  for r in self.series]
        return {profile: nab_score(corpus, profile).score for profile in PROFILES}

    def nab_figures(self) -> dict[str, dict[str, float]]:
        """Every NAB figure, keyed as in `to_dict`: "nab" (NAB's protocol on the default step
        score), "nab_level", "nab_likelihood", "nab_alerts" and, for scores in [0, 1],
        "nab_raw" (each step score), "nab_calibrated"."""
        unit = all(r.scores.min() >= 0.0 and r.scores.max() <= 1.0 for r in self.series)
        figures = {f"nab_{postprocess}": self.nab(postprocess) for postprocess in POSTPROCESS
                   if postprocess != "raw" or unit}
        return {"nab": figures[f"nab_{NAB_STEPS}"], **figures,
                "nab_calibrated": self.nab_calibrated()}

    def nab_calibrated(self, period: int = ONSET_MEMORY) -> dict[str, float]:
        """NAB's normalised score per profile at the detector's calibrated decisions.

        No threshold is optimised: the detections are `SeriesResult.nab_detections`.

        Parameters
        ----------
        period : int, default ONSET_MEMORY
            The refractory period applied to the decisions.

        Returns
        -------
        dict
            Profile name to score.
        """
        corpus = [(r.labels, r.nab_detections(period)) for r in self.series]
        return {profile: nab_score(corpus, profile, threshold=1.0).score for profile in PROFILES}

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
                **self.nab_figures(), "fpr_quantiles": self.fpr_quantiles(),
                "groups": self.groups(),
                "series": [{"name": r.name, "group": r.group, **r.metrics,
                            "fit_seconds": r.fit_seconds, "score_seconds": r.score_seconds,
                            "threshold": r.threshold_method} for r in self.series]}


ARRAY_FIELDS = ("labels", "scores", "held_out", "levels", "flags")


def save_arrays(evaluation: NabEvaluation, path: str | os.PathLike) -> None:
    """Write every series' arrays to one .npz file, atomically.

    The labels, raw scores, held-out scores, test levels and flags are kept so that NAB
    variants can be recomputed without refitting (`load_arrays`).

    Parameters
    ----------
    evaluation : NabEvaluation
        The run to save.
    path : str or PathLike
        The .npz file (its folder is created).
    """
    arrays: dict[str, np.ndarray] = {}
    for k, r in enumerate(evaluation.series):
        arrays[f"{k}/meta"] = np.array([r.name, r.group, str(r.probationary), r.threshold_method])
        arrays.update({f"{k}/{name}": getattr(r, name) for name in ARRAY_FIELDS})

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: savez would add ".npz" to the name
            np.savez_compressed(handle, **arrays)

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), write)


def load_arrays(path: str | os.PathLike, detector: str,
                params: dict[str, Any]) -> NabEvaluation:
    """A `NabEvaluation` of the series saved by `save_arrays` (no metrics, no timings).

    Parameters
    ----------
    path : str or PathLike
        The .npz file.
    detector : str
        The detector name to record.
    params : dict
        Its parameters.

    Returns
    -------
    NabEvaluation
        The series with their arrays.

    Raises
    ------
    DataError
        If the file is missing or not such a file.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            stored = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a saved NAB evaluation ({exc}); rerun the benchmark "
                        "with --cache") from None
    evaluation = NabEvaluation(detector, dict(params))
    for k in range(sum(key.endswith("/meta") for key in stored)):
        name, group, probationary, method = stored[f"{k}/meta"].tolist()
        arrays = {field: stored[f"{k}/{field}"] for field in ARRAY_FIELDS}
        evaluation.series.append(SeriesResult(
            name, group, {}, 0.0, 0.0, method, arrays["labels"], arrays["scores"],
            int(probationary), arrays["held_out"], arrays["levels"], arrays["flags"]))
    return evaluation


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
    measure the steps after the probationary period (`constant_history_result` when every
    channel of the history is constant: nothing to fit).

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
        Its metrics, timings, scores and levels.
    """
    if (nab.history.nunique() <= 1).all():
        return constant_history_result(nab)
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
    assert detector.threshold_ is not None and detector.calibration_scores_ is not None
    method = "online" if detector.online else detector.threshold_.method
    return SeriesResult(nab.name, nab.group,
                        series_metrics(nab.labels[test], prediction.scores, prediction.labels),
                        fitted - start, scored - fitted, method, nab.labels,
                        np.asarray(scores.scores, dtype=np.float64), nab.probationary,
                        np.asarray(detector.calibration_scores_, dtype=np.float64),
                        prediction.levels, prediction.labels)


def constant_history_result(nab: NabSeries) -> SeriesResult:
    """The result of a series whose history is constant (NAB's art_flatline).

    No detector can fit it, so the score is the largest absolute change from the history's
    value and every change is flagged at level 1.

    Parameters
    ----------
    nab : NabSeries
        The series.

    Returns
    -------
    SeriesResult
        Its metrics, scores, levels and flags.
    """
    values = nab.frame.to_numpy(dtype=np.float64)
    scores = np.abs(values - values[0]).max(axis=1)
    test = slice(nab.probationary, None)
    flags = scores[test] > 0
    return SeriesResult(nab.name, nab.group, series_metrics(nab.labels[test], scores[test], flags),
                        0.0, 0.0, "constant history", nab.labels, scores, nab.probationary,
                        np.zeros(2), flags.astype(np.float64), flags)


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
