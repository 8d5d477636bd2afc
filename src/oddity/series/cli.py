"""The series side of the `oddity` command: fit on a series file, predict one, evaluate on NAB.

`oddity.cli` dispatches here when the detector (or the loaded model) has modality "series".
Outputs: `predict` writes scores.csv (time, value columns, score, per-channel scores,
threshold in force, calibrated level, anomalous), ranges.csv (start, end, steps, peak score) and plot.png into the output folder
through a staging folder, so an interrupted run leaves nothing half-written.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.core.persistence import atomic_write, staged_directory
from oddity.plots import save_figure
from oddity.series.data import SeriesReport, read_nab, read_series
from oddity.series.detector import SeriesDetector
from oddity.series.evaluate import METRICS, NabEvaluation, evaluate_nab
from oddity.series.plots import prediction_figure
from oddity.series.results import SeriesPrediction


def _print_report(report: SeriesReport) -> None:
    step = f", median step {report.median_step}" if report.median_step is not None else ""
    print(f"read {report.length} steps x {len(report.columns)} channels "
          f"({', '.join(report.columns)}) from {report.source}{step}")
    for note in report.notes:
        print(f"  note: {note}")


def _read(path: str, detector: SeriesDetector, **options: Any) -> pd.DataFrame:
    frame, report = read_series(path, **options)
    _print_report(report)
    if len(frame) < detector.min_length:
        raise DataError(f"{path}: {len(frame)} steps, shorter than the {detector.min_length} "
                        f"steps {detector.name} needs (its window/lags)")
    return frame


def fit(detector_name: str, data: str, out: str, params: dict[str, Any], verbose: bool,
        time_column: str | None = None, value_columns: list[str] | None = None) -> SeriesDetector:
    """Read `data`, fit the detector on all of it (its tail calibrates the threshold), save."""
    detector = oddity.create(detector_name, **{**params, "verbose": verbose})
    assert isinstance(detector, SeriesDetector)
    frame = _read(data, detector, time_column=time_column, value_columns=value_columns)
    start = time.perf_counter()
    detector.fit(frame)
    seconds = time.perf_counter() - start
    detector.save(out)
    threshold = detector.threshold_
    assert threshold is not None
    print(f"fitted {detector_name} on {len(frame)} steps in {seconds:.1f} s")
    print(f"threshold: {threshold.value:.6g} ({threshold.method}, target FPR per step "
          f"{threshold.target_fpr:g}, {threshold.n_calibration} held-out steps)")
    print(f"model saved to {out}")
    return detector


def write_prediction(out: str | Path, frame: pd.DataFrame, prediction: SeriesPrediction,
                     title: str) -> None:
    """scores.csv, ranges.csv and plot.png into the folder `out` (staged, see module doc)."""
    scores = pd.concat([frame, prediction.to_frame()], axis=1)
    positions = pd.RangeIndex(len(prediction))
    rows = []
    for start, end in prediction.spans:
        inside = positions[(prediction.index >= start) & (prediction.index <= end)]
        rows.append({"start": start, "end": end, "steps": len(inside),
                     "peak_score": float(prediction.scores[inside].max())})
    ranges = pd.DataFrame(rows, columns=["start", "end", "steps", "peak_score"])
    with staged_directory(out) as stage:
        scores.to_csv(stage / "scores.csv", index_label=frame.index.name or "step")
        ranges.to_csv(stage / "ranges.csv", index=False)
        save_figure(prediction_figure(frame, prediction, title), stage / "plot.png")


def predict(detector: SeriesDetector, inputs: list[str], out: str) -> None:
    """Score one series file with a fitted model and write the prediction folder."""
    if len(inputs) != 1:
        raise ConfigError(f"a series model predicts one file at a time; got {len(inputs)} inputs")
    assert detector.columns_ is not None
    frame = _read(inputs[0], detector, value_columns=detector.columns_)
    prediction = detector.predict(frame)
    write_prediction(out, frame, prediction, f"{detector.name}: {Path(inputs[0]).name}")
    flagged = int(prediction.labels.sum())
    how = (f"online calibration from the fitted threshold {prediction.threshold:.6g}"
           if detector.online else f"threshold {prediction.threshold:.6g}")
    print(f"{len(prediction)} steps: {flagged} anomalous in {len(prediction.spans)} ranges ({how})")
    print(f"written to {out}: scores.csv, ranges.csv, plot.png")


HEADERS = {"point_auroc": "AUROC", "point_aupr": "AUPR", "vus_roc": "VUS-ROC", "vus_pr": "VUS-PR",
           "pate": "PATE", "pa_f1": "PA-F1", "event_f1": "event-F1", "range_f1": "range-F1",
           "fpr": "FPR", "series": "series", "seconds_per_series": "s/series"}


def _format(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def print_evaluation(evaluation: NabEvaluation) -> None:
    """A table: one row per NAB group, then the mean over all series."""
    columns = (*METRICS, "series", "seconds_per_series")
    rows = [(group, means) for group, means in evaluation.groups().items()]
    rows.append(("mean", evaluation.overall()))
    width = max(len(name) for name, _ in rows)
    print(f"  {'group':<{width}}  " + "  ".join(f"{HEADERS[c]:>8}" for c in columns))
    for name, means in rows:
        print(f"  {name:<{width}}  " + "  ".join(f"{_format(means[c]):>8}" for c in columns))
    quantiles = ", ".join(f"{q:.4f}" for q in evaluation.fpr_quantiles())
    print(f"realised FPR over the series (min, quartiles, max): {quantiles}")
    print("NAB score (normalised; null detector 0, perfect 100): " +
          ", ".join(f"{profile} {score:.1f}" for profile, score in evaluation.nab().items()))


def evaluate(detector: SeriesDetector, data: str, json_path: str | None, verbose: bool) -> None:
    """Refit the model's configuration on every NAB series of `data` and print the metrics."""
    params = {k: v for k, v in detector.get_params().items() if k != "verbose"}
    evaluation = evaluate_nab(detector.name, params, read_nab(data), verbose=verbose)
    print(f"{detector.name} on NAB {data} (refitted per series on its first 15%):")
    print_evaluation(evaluation)
    if json_path:
        text = json.dumps(evaluation.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"metrics written to {json_path}")
