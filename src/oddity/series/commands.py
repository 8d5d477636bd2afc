"""Series commands on files: fit on a series file, predict one, evaluate on NAB (the verbs of
`oddity.series.cli` call these; they import pandas and matplotlib, the CLI module does not).

Outputs: `predict` writes scores.csv (time, value columns, score, per-channel scores,
threshold in force, calibrated level, anomalous), ranges.csv (start, end, steps, peak score)
and plot.png into the output folder through a staging folder, so an interrupted run leaves
nothing half-written. `predict --follow` streams a growing CSV file or stdin through
`SeriesDetector.update` (`follow`).
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.core.persistence import atomic_write, staged_directory
from oddity.plots import save_figure
from oddity.series.data import TIME_NAMES, SeriesReport, read_nab, read_series
from oddity.series.detector import SeriesDetector
from oddity.series.evaluate import (
    METRICS,
    NAB_STEPS,
    ONSET_MEMORY,
    NabEvaluation,
    evaluate_nab,
)
from oddity.series.plots import prediction_figure
from oddity.series.results import SeriesPrediction

FOLLOW_POLL = 0.2  # seconds between looks at a followed file that has no new rows


def _print_report(report: SeriesReport) -> None:
    step = f", median step {report.median_step}" if report.median_step is not None else ""
    print(f"read {report.length} steps x {len(report.columns)} channels "
          f"({', '.join(report.columns)}) from {report.source}{step}")
    for note in report.notes:
        print(f"  note: {note}")


def _check_length(path: str, frame: pd.DataFrame, detector: SeriesDetector) -> None:
    if len(frame) < detector.min_length:
        raise DataError(f"{path}: {len(frame)} steps, shorter than the {detector.min_length} "
                        f"steps {detector.name} needs (its window/lags)")


def fit_file(detector_name: str, data: str, out: str, params: dict[str, Any], verbose: bool,
             time_column: str | None = None, value_columns: list[str] | None = None,
             dayfirst: bool | None = None) -> SeriesDetector:
    """Read `data`, fit the detector on all of it (its tail calibrates the threshold), save.

    How the times were read (time column, date order) is saved with the model, so `predict`
    reads its files the same way.

    Parameters
    ----------
    detector_name : str
        Registered series detector name.
    data : str
        CSV, TSV or Parquet series file.
    out : str
        Model folder to write.
    params : dict
        Detector parameters.
    verbose : bool
        Show progress.
    time_column : str, optional
        The time column (default: detected).
    value_columns : list of str, optional
        The value columns (default: all but the time column).
    dayfirst : bool or None, optional
        How to read dates like 01/02/2024; None refuses when both orders are plausible.

    Returns
    -------
    SeriesDetector
        The fitted detector.

    Raises
    ------
    DataError
        If the file cannot be read or is shorter than the detector needs.
    """
    detector = oddity.create(detector_name, **params)
    assert isinstance(detector, SeriesDetector)
    frame, report = read_series(data, time_column=time_column, value_columns=value_columns,
                                dayfirst=dayfirst)
    _print_report(report)
    _check_length(data, frame, detector)
    start = time.perf_counter()
    detector.fit(frame, verbose=verbose)
    detector.time_column_, detector.dayfirst_ = report.time_column, dayfirst
    seconds = time.perf_counter() - start
    detector.save(out)
    threshold = detector.threshold_
    assert threshold is not None
    print(f"fitted {detector_name} on {len(frame)} steps in {seconds:.1f} s")
    print(f"threshold: {threshold.describe('steps')}")
    print(f"model saved to {out}")
    return detector


def write_prediction(out: str | Path, frame: pd.DataFrame, prediction: SeriesPrediction,
                     title: str) -> None:
    """Write scores.csv, ranges.csv and plot.png into the folder `out` (staged, see module doc).

    Parameters
    ----------
    out : str or Path
        The prediction folder.
    frame : pandas.DataFrame
        The series that was scored.
    prediction : SeriesPrediction
        Its prediction.
    title : str
        Title of plot.png.
    """
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


def predict_file(detector: SeriesDetector, inputs: list[str], out: str) -> None:
    """Score one series file with a fitted model and write the prediction folder.

    The file is read as the training file was (time column, value columns, date order).

    Parameters
    ----------
    detector : SeriesDetector
        A fitted series detector.
    inputs : list of str
        Exactly one series file.
    out : str
        The prediction folder (see `write_prediction`).

    Raises
    ------
    ConfigError
        If more than one input is given.
    DataError
        If the file cannot be read or is shorter than the model needs.
    """
    if len(inputs) != 1:
        raise ConfigError(f"a series model predicts one file at a time; got {len(inputs)} inputs")
    assert detector.columns_ is not None
    frame, report = read_series(inputs[0], time_column=detector.time_column_,
                                value_columns=detector.columns_, dayfirst=detector.dayfirst_)
    _print_report(report)
    _check_length(inputs[0], frame, detector)
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
    """Print a table of metrics: one row per NAB group, then the mean over all series.

    The realised FPR quantiles and the NAB scores (NAB's protocol and at the calibrated
    threshold) follow the table.

    Parameters
    ----------
    evaluation : NabEvaluation
        The evaluation to print.
    """
    columns = (*METRICS, "series", "seconds_per_series")
    rows = [(group, means) for group, means in evaluation.groups().items()]
    rows.append(("mean", evaluation.overall()))
    width = max(len(name) for name, _ in rows)
    print(f"  {'group':<{width}}  " + "  ".join(f"{HEADERS[c]:>8}" for c in columns))
    for name, means in rows:
        print(f"  {name:<{width}}  " + "  ".join(f"{_format(means[c]):>8}" for c in columns))
    quantiles = ", ".join(f"{q:.4f}" for q in evaluation.fpr_quantiles())
    print(f"realised FPR over the series (min, quartiles, max): {quantiles}")
    figures = evaluation.nab_figures()
    print(f"NAB score (null detector 0, perfect 100), NAB's protocol (one threshold optimised "
          f"over the corpus; step score: {NAB_STEPS} at alert onsets): " +
          ", ".join(f"{profile} {score:.1f}" for profile, score in figures["nab"].items()))
    print(f"NAB score at the calibrated threshold (flags, refractory {ONSET_MEMORY} steps): " +
          ", ".join(f"{profile} {score:.1f}"
                    for profile, score in figures["nab_calibrated"].items()))


def evaluate_folder(detector: SeriesDetector, data: str, json_path: str | None, verbose: bool) -> None:
    """Refit the model's configuration on every NAB series of `data` and print the metrics.

    Parameters
    ----------
    detector : SeriesDetector
        A series detector; its name and parameters are refitted on each series.
    data : str
        A NAB folder.
    json_path : str or None
        Also write the metrics to this JSON file (atomically).
    verbose : bool
        Show progress.

    Raises
    ------
    DataError
        If the folder is not a NAB layout or a file cannot be read.
    """
    evaluation = evaluate_nab(detector.name, detector.get_params(), read_nab(data), verbose=verbose)
    print(f"{detector.name} on NAB {data} (refitted per series on its first 15%):")
    print_evaluation(evaluation)
    if json_path:
        text = json.dumps(evaluation.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"metrics written to {json_path}")


def _parse_rows(lines: list[str], header: list[str], columns: list[str], source: str,
                first_line: int) -> pd.DataFrame:
    """The fitted `columns` of CSV `lines` (the time column, if any, as the index)."""
    rows = list(csv.reader(lines))
    bad = next((i for i, row in enumerate(rows) if len(row) != len(header)), None)
    if bad is not None:
        raise DataError(f"{source}, line {first_line + bad}: {len(rows[bad])} fields, the header "
                        f"has {len(header)}")
    table = pd.DataFrame(rows, columns=header)
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{source}: no column {missing[0]!r} in the header {header}; the model "
                        f"was fitted on {columns}")
    values = table[columns].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        row = int(np.flatnonzero(values.isna().any(axis=1).to_numpy())[0])
        raise DataError(f"{source}, line {first_line + row}: a value of {columns} is not a number")
    time = header[0] if header[0].strip().lower() in TIME_NAMES else None
    if time is not None:
        values.index = pd.Index(table[time], name=time)
    return values


def follow(detector: SeriesDetector, inputs: list[str], idle: float | None) -> None:
    """Stream one CSV file being appended to (or stdin, '-') through `detector.update`.

    Prints time, score, threshold, level and anomalous (1/0) for each row as it arrives; a
    summary with the steps per second goes to stderr at the end.

    Parameters
    ----------
    detector : SeriesDetector
        A fitted series detector.
    inputs : list of str
        Exactly one CSV file, or ``-`` for stdin.
    idle : float or None
        Stop after this many seconds without new rows in a file; None follows until
        interrupted (stdin is read to its end).

    Raises
    ------
    ConfigError
        If more than one input is given.
    DataError
        If the file cannot be opened, is empty, or a row has the wrong number of fields, lacks
        a fitted column or holds a value that is not a number.
    """
    if len(inputs) != 1:
        raise ConfigError(f"--follow reads one file (or '-'); got {len(inputs)} inputs")
    assert detector.columns_ is not None
    source = "stdin" if inputs[0] == "-" else inputs[0]
    stream = sys.stdin if inputs[0] == "-" else _open_text(inputs[0])
    header_line = stream.readline()
    if not header_line:
        raise DataError(f"{source}: empty; --follow needs a CSV header line first")
    header = next(csv.reader([header_line]))
    print("time,score,threshold,level,anomalous", flush=True)
    steps = flagged = 0
    seconds = 0.0
    line_number = 2
    quiet_since = time.monotonic()
    partial = ""
    while True:
        chunk = stream.readlines()
        text = partial + "".join(chunk)
        lines = text.split("\n")
        partial = lines.pop()  # an unfinished last line waits for the rest
        lines = [line for line in lines if line.strip()]
        if lines:
            frame = _parse_rows(lines, header, detector.columns_, source, line_number)
            line_number += len(lines)
            start = time.perf_counter()
            prediction = detector.update(frame)
            seconds += time.perf_counter() - start
            out = pd.DataFrame({"time": frame.index, "score": prediction.scores,
                                "threshold": prediction.thresholds, "level": prediction.levels,
                                "anomalous": prediction.labels.astype(int)})
            sys.stdout.write(out.to_csv(index=False, header=False))
            sys.stdout.flush()
            steps += len(frame)
            flagged += int(prediction.labels.sum())
            quiet_since = time.monotonic()
        elif stream is sys.stdin or (idle is not None and time.monotonic() - quiet_since > idle):
            if partial.strip():
                partial += "\n"
                continue
            break
        else:
            time.sleep(FOLLOW_POLL)
    rate = f", {steps / seconds:,.0f} steps/s" if seconds > 0 else ""
    print(f"{steps} steps: {flagged} anomalous{rate}", file=sys.stderr)


def _open_text(path: str) -> Any:
    """`path` opened for reading text; DataError if it cannot be."""
    try:
        return open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
