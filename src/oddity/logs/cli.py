"""The logs side of the `oddity` command: `parse`, `rank` (CAR alert ranking), and fit /
predict / eval for log detectors.

`oddity.cli` dispatches here when the detector (or loaded model) has modality "logs" (see
`oddity.core.modality`) and adds the reading options below to its fit and eval commands. Data: a raw log split by `--format`,
a loghub structured CSV, JSON lines, or an event-session CSV (`EventTemplates_json` column,
sessions already parsed, as the shared HDFS file). Raw logs are grouped by `--session REGEX`,
`--session-field NAME`, `--window N` lines or `--window-seconds S` (with `--step` for
sliding windows). A fitted model stores its reading setup and template parser, so `predict`
and `eval` read new files exactly as the training file was read (templates matched only).
Outputs of predict (sequences.csv, templates.csv, timeline.png) are staged and moved into
place at the end.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oddity.core.errors import ConfigError

if TYPE_CHECKING:
    from oddity.logs.detector import LogDetector
    from oddity.logs.results import LogSequences


def add_reading_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that say how a log file is read and grouped (fit, eval, parse).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser; the options go in a group "logs".
    """
    group = parser.add_argument_group("logs")
    group.add_argument("--format", metavar="FORMAT",
                       help="logs: loghub-style line format, e.g. '<Date> <Time> <Level> <Component>: <Content>'")
    group.add_argument("--content-field", metavar="NAME", help="logs: message column/key of CSV or JSON lines")
    group.add_argument("--label-field", metavar="NAME", help="logs: field of line labels ('-' = normal), e.g. Label")
    group.add_argument("--encoding", default="utf-8", metavar="NAME", help="logs: text encoding (default utf-8)")
    group.add_argument("--session", metavar="REGEX", help=r"logs: session ids in the message, e.g. 'blk_-?\d+'")
    group.add_argument("--session-field", metavar="NAME", help="logs: field holding the session id")
    group.add_argument("--window", type=int, metavar="N", help="logs: windows of N lines")
    group.add_argument("--window-seconds", type=float, metavar="S", help="logs: windows of S seconds")
    group.add_argument("--step", type=float, metavar="N", help="logs: window step (sliding windows)")
    group.add_argument("--time-field", metavar="NAME", help="logs: field of time stamps (time windows)")
    group.add_argument("--time-format", metavar="FMT", help="logs: strptime format of --time-field")
    group.add_argument("--labels", metavar="CSV", help="logs: session labels (id, Anomaly/Normal)")
    group.add_argument("--entities", nargs="+", metavar="NAME",
                       help="categorical events (ape): entity columns (default: all but --label-field)")
    group.add_argument("--sim-th", type=float, default=None, metavar="F",
                       help="logs: Drain similarity threshold (default 0.7)")


def add_arguments(verb: str, parser: argparse.ArgumentParser) -> None:
    """Add the logs options of the shared verbs: how a log file is read (fit and eval).

    Parameters
    ----------
    verb : str
        ``"fit"``, ``"predict"`` or ``"eval"``; predict gets no option.
    parser : argparse.ArgumentParser
        The verb's parser.
    """
    if verb in ("fit", "eval"):
        add_reading_options(parser)


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the `parse` and `rank` commands.

    Parameters
    ----------
    commands : argparse._SubParsersAction
        The sub-commands of `oddity`.
    parents : list of argparse.ArgumentParser
        The options every writing command shares.
    """
    parse = commands.add_parser("parse", parents=parents, help="mine the templates of a log file",
                                description="Mine log templates (Drain with masking) and write "
                                            "templates.csv: id, template, lines.")
    parse.add_argument("log", metavar="LOG", help="log file (raw, loghub CSV or JSON lines)")
    parse.add_argument("--out", required=True, metavar="CSV", help="templates file to write")
    parse.add_argument("--lines", metavar="CSV", help="also write each line's template id here")
    add_reading_options(parse)
    parse.set_defaults(run=cmd_parse)
    rank = commands.add_parser("rank", parents=parents, help="rank the alerts of any detector (CAR)",
                               description="Rank alerts (a CSV/Parquet table, one row per alert in time "
                                           "order) by how likely they belong to a true incident, from "
                                           "their temporal patterns and shared attributes (CAR); write "
                                           "alerts.csv and patterns.csv into --out.")
    rank.add_argument("alerts", metavar="ALERTS", help="table of alerts (CSV or Parquet), in time order")
    rank.add_argument("--out", required=True, metavar="DIR", help="output folder")
    rank.add_argument("--kind", required=True, metavar="NAME", help="column of the alert type, e.g. template")
    rank.add_argument("--entities", nargs="+", metavar="NAME",
                      help="attribute columns (default: all but --score and --time)")
    rank.add_argument("--score", metavar="NAME", help="column of the detector's score (higher = more anomalous)")
    rank.add_argument("--time", metavar="NAME", help="column of time stamps in seconds")
    rank.add_argument("--max-gap", type=float, default=3600.0, metavar="S",
                      help="longest time between two alerts of one pattern (with --time; default 3600)")
    rank.add_argument("--sequence", metavar="NAME", help="column splitting the alerts into sequences, e.g. host")
    rank.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    rank.set_defaults(run=cmd_rank)


def cmd_rank(args: argparse.Namespace) -> None:
    """`oddity rank`: CAR ranking of a table of alerts; alerts.csv and patterns.csv in `--out`.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `alerts`, `out`, `kind`, `entities`, `score`, `time`, `max_gap`, `sequence`,
        `seed` and `quiet`.

    Raises
    ------
    OddityError
        On an unreadable table, a column it lacks, a non-numeric score or time, or an output
        that would replace an input or an existing folder without `--overwrite`.
    """
    from oddity.core.outputs import claim
    from oddity.core.persistence import staged_directory
    from oddity.logs.data import read_event_table
    from oddity.logs.ranking import CollaborativeAlertRanker

    claim(inputs=[args.alerts], folders=[args.out])
    alerts = read_event_table(args.alerts)
    ranker = CollaborativeAlertRanker(kind=args.kind, entities=args.entities, score=args.score, time=args.time,
                                      max_gap=args.max_gap, sequence=args.sequence, seed=args.seed)
    ranking = ranker.rank(alerts, verbose=not args.quiet)
    with staged_directory(args.out) as stage:
        ranking.alerts.to_csv(stage / "alerts.csv", index_label="row")  # row: 0-based position in ALERTS
        ranking.patterns.to_csv(stage / "patterns.csv", index=False)
    print(f"{len(ranking.alerts)} alerts ranked, {len(ranking.patterns)} patterns; written to {args.out}: "
          "alerts.csv, patterns.csv")


def _source(args: argparse.Namespace):
    from oddity.logs.parsing import LogSource

    return LogSource(format=args.format, content_field=args.content_field,
                     label_field=args.label_field, encoding=args.encoding)


def _parser(args: argparse.Namespace):
    from oddity.logs.parser import TemplateParser

    return TemplateParser(**({} if args.sim_th is None else {"sim_th": args.sim_th}))


def _grouping(args: argparse.Namespace):
    from oddity.logs.grouping import Grouping

    if args.session or args.session_field:
        return Grouping("session", session=args.session, session_field=args.session_field)
    if args.window:
        return Grouping("count", size=args.window, step=args.step)
    if args.window_seconds:
        return Grouping("time", size=args.window_seconds, step=args.step, time_field=args.time_field,
                        time_format=args.time_format)
    raise ConfigError("say how lines form sequences: --session REGEX, --session-field NAME, "
                      "--window N or --window-seconds S")


def _print_report(report, parser=None) -> None:
    print(report.summary())
    for number, text in report.examples[:3]:
        print(f"  not parsed, line {number}: {text[:120]!r}")
    if parser is not None and parser.unseen:
        total = sum(parser.unseen.values())
        print(f"  {total} lines matched no template of the model ({len(parser.unseen)} new "
              f"templates), e.g. {next(iter(parser.unseen))[:120]!r}")


def _is_event_sessions(path: str) -> bool:
    if not path.lower().endswith(".csv"):
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        return "EventTemplates_json" in handle.readline()


def cmd_parse(args: argparse.Namespace) -> None:
    """`oddity parse`: mine the templates of a log file and write templates.csv.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `log`, `out`, `lines` (also write each line's template id there), `quiet` and
        the reading options `format`, `content_field`, `label_field`, `encoding` and `sim_th`.

    Raises
    ------
    OddityError
        On an unreadable log or an output that would replace an input or an existing file
        without `--overwrite`.
    """
    from oddity.core.persistence import atomic_write
    from oddity.logs.data import ReadReport
    from oddity.core.outputs import claim
    from oddity.logs.parsing import mine

    claim(inputs=[args.log], files=[args.out, args.lines])
    source, parser = _source(args), _parser(args)
    start = time.perf_counter()
    report = mine(args.log, source, parser, verbose=not args.quiet)
    seconds = time.perf_counter() - start
    _print_report(report)
    templates = sorted(parser.templates().items(), key=lambda item: -item[1][1])

    def write_templates(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["template_id", "template", "lines"])
            writer.writerows([i, text, size] for i, (text, size) in templates)

    atomic_write(args.out, write_templates)
    print(f"{len(templates)} templates from {report.parsed} lines in {seconds:.1f} s "
          f"({report.parsed / max(seconds, 1e-9):,.0f} lines/s); written to {args.out}")
    if args.lines:
        def write_lines(tmp: str) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["line", "template_id"])
                for line in source.lines(args.log, ReadReport(args.log)):
                    writer.writerow([line.number, parser.match(line.content)])

        atomic_write(args.lines, write_lines)
        print(f"line templates written to {args.lines}")


def _labels(args: argparse.Namespace):
    from oddity.logs.data import read_session_labels

    return read_session_labels(args.labels) if args.labels else None


def read_for_fit(args: argparse.Namespace, verbose: bool,
                 contents: bool = False) -> tuple["LogSequences", dict | None]:
    """The training sequences of `args.data` and the reading setup to store in the model.

    An event-session CSV (`EventTemplates_json` column) is read as it is; any other file is
    parsed into templates, then grouped into sequences.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `data`, `labels` and the reading options (see `add_reading_options`).
    verbose : bool
        Show progress bars.
    contents : bool, default False
        Keep each event's message (for a detector that reads them).

    Returns
    -------
    sequences : LogSequences
        The training sequences.
    reading : dict
        The reading setup (`kind`, and for a log its source, grouping and parser).

    Raises
    ------
    ConfigError
        If a log file is given no grouping (session, window or time window).
    OddityError
        If the file cannot be read.
    """
    from oddity.logs.data import read_event_sessions
    from oddity.logs.parsing import mine, sequences_of

    if _is_event_sessions(args.data):
        sequences, _ = read_event_sessions(args.data)
        print(f"read {len(sequences)} parsed sessions from {args.data}")
        return sequences, {"kind": "event_sessions"}
    source, parser, grouping = _source(args), _parser(args), _grouping(args)
    _print_report(mine(args.data, source, parser, verbose))
    sequences, _ = sequences_of(args.data, source, parser, grouping, _labels(args), verbose, contents)
    print(f"{len(parser.templates())} templates; {len(sequences)} sequences ({grouping.kind})")
    return sequences, {"kind": "log", "source": source.to_dict(), "grouping": grouping.to_dict(),
                       "parser": parser.to_dict()}


def read_with_model(detector: "LogDetector", path: str, labels: dict | None, verbose: bool) -> "LogSequences":
    """Sequences of a new file read the way the model's training file was read.

    Parameters
    ----------
    detector : LogDetector
        A fitted model; its `reading_` setup is used (event sessions when it has none).
    path : str
        The file to read.
    labels : dict or None
        Session labels (session id -> label) to attach, for a log file.
    verbose : bool
        Show progress bars.

    Returns
    -------
    LogSequences

    Raises
    ------
    ConfigError
        If the model was fitted on event sessions and `path` is not such a file.
    OddityError
        If the file cannot be read.
    """
    from oddity.logs.data import read_event_sessions
    from oddity.logs.grouping import Grouping
    from oddity.logs.parser import TemplateParser
    from oddity.logs.parsing import LogSource, sequences_of

    reading = detector.reading_ or {"kind": "event_sessions"}
    if reading["kind"] == "event_sessions":
        if not _is_event_sessions(path):
            raise ConfigError(f"{path}: this model was fitted on parsed sessions (EventTemplates_json); "
                              "give a file of the same kind")
        sequences, _ = read_event_sessions(path)
        return sequences
    parser = TemplateParser.from_dict(reading["parser"])
    sequences, report = sequences_of(path, LogSource(**reading["source"]), parser,
                                     Grouping(**reading["grouping"]), labels, verbose, detector.reads_contents)
    _print_report(report, parser)
    return sequences


def _event_table(path: str, entities: list[str] | None, label_field: str | None):
    """(entity table, labels or None) of a categorical-event CSV/Parquet file."""
    import numpy as np

    from oddity.logs.data import read_event_table

    table = read_event_table(path)
    labels = None
    if label_field is not None:
        if label_field not in table.columns:
            raise ConfigError(f"--label-field {label_field!r}: no such column in {path}")
        labels = (table.pop(label_field).str.strip().str.lower()
                  .isin(["1", "true", "anomaly", "anomalous", "alert"]).to_numpy(np.int64))
    if entities:
        missing = [c for c in entities if c not in table.columns]
        if missing:
            raise ConfigError(f"--entities: no column {missing} in {path}")
        table = table[entities]
    return table, labels


def fit(detector_name: str, args: argparse.Namespace, params: dict[str, Any]) -> None:
    """`oddity fit` for a log detector (or APE on a table of categorical events): read, fit, save.

    Events labelled anomalous by `--label-field` are left out of an APE fit.

    Parameters
    ----------
    detector_name : str
        Registered detector name.
    args : argparse.Namespace
        Reads `data`, `out`, `quiet`, `entities`, `label_field`, `labels` and the reading
        options (see `add_reading_options`).
    params : dict
        Detector parameters.

    Raises
    ------
    ConfigError
        On a missing grouping, or an `--entities` / `--label-field` column not in the table.
    OddityError
        If the data cannot be read or the fit fails.
    """
    import oddity
    from oddity.logs.detector import LogDetector

    verbose = not args.quiet
    detector = oddity.create(detector_name, **params)
    if not isinstance(detector, LogDetector):
        table, labels = _event_table(args.data, args.entities, args.label_field)
        if labels is not None:
            table = table[labels == 0]
        start = time.perf_counter()
        detector.fit(table, verbose=verbose)
        detector.save(args.out)
        print(f"fitted {detector_name} on {len(table)} events ({', '.join(table.columns)}) in "
              f"{time.perf_counter() - start:.1f} s; threshold {detector.threshold_.value:.6g}")
        print(f"model saved to {args.out}")
        return
    sequences, reading = read_for_fit(args, verbose, detector.reads_contents)
    start = time.perf_counter()
    detector.fit(sequences, verbose=verbose)
    seconds = time.perf_counter() - start
    detector.reading_ = reading
    detector.save(args.out)
    threshold = detector.threshold_
    print(f"fitted {detector_name} on {len(sequences)} sequences in {seconds:.1f} s")
    print(f"threshold: {threshold.value:.6g} ({threshold.method}, target FPR per sequence "
          f"{threshold.target_fpr:g}, {threshold.n_calibration} held-out normal sequences)")
    print(f"model saved to {args.out}")


def predict(detector: "LogDetector", args: argparse.Namespace) -> None:
    """`oddity predict` for a log model: sequences.csv, templates.csv, timeline.png in `--out`.

    A model of categorical events (APE) writes events.csv instead: each event's score, label
    and least compatible pairs.

    Parameters
    ----------
    detector : LogDetector
        A fitted log model (or APE).
    args : argparse.Namespace
        Reads `inputs` (exactly one file), `out` and `quiet`.

    Raises
    ------
    ConfigError
        If more than one input is given, or the file is not of the kind the model read.
    OddityError
        If the file cannot be read.
    """
    from collections import Counter

    import pandas as pd

    from oddity.core.persistence import staged_directory
    from oddity.logs.plots import timeline_figure
    from oddity.plots import save_figure

    inputs, out, verbose = args.inputs, args.out, not args.quiet
    if len(inputs) != 1:
        raise ConfigError(f"a log model predicts one file at a time; got {len(inputs)} inputs")
    if not hasattr(detector, "vocabulary_"):  # categorical events
        table, _ = _event_table(inputs[0], detector.columns_, None)
        prediction = detector.predict(table)
        frame = table.assign(score=prediction.scores, anomalous=prediction.labels, least_compatible=[
            "; ".join(f"{a}={va} with {b}={vb}" for a, va, b, vb, _ in pairs) for pairs in detector.explain(table)])
        with staged_directory(out) as stage:
            frame.to_csv(stage / "events.csv", index=False)
        print(f"{len(frame)} events: {int(prediction.labels.sum())} anomalous "
              f"(threshold {prediction.threshold:.6g}); written to {out}: events.csv")
        return
    sequences = read_with_model(detector, inputs[0], None, verbose)
    prediction = detector.predict(sequences)
    frame = prediction.to_frame(sequences)
    counts = Counter(t for events in sequences.events for t in events)
    known = set(detector.vocabulary_ or ())
    templates = pd.DataFrame([(t, n, t in known) for t, n in counts.most_common()],
                             columns=["template", "events", "in_model"])
    with staged_directory(out) as stage:
        frame.to_csv(stage / "sequences.csv", index=False)
        templates.to_csv(stage / "templates.csv", index=False)
        save_figure(timeline_figure(prediction, f"{detector.name}: {Path(inputs[0]).name}"),
                    stage / "timeline.png")
    flagged = int(prediction.labels.sum())
    print(f"{len(prediction)} sequences: {flagged} anomalous (threshold {prediction.threshold:.6g})")
    print(f"written to {out}: sequences.csv, templates.csv, timeline.png")


def evaluate(detector: "LogDetector", args: argparse.Namespace) -> None:
    """`oddity eval` for a log model: metrics on a labelled file, printed and optionally saved.

    Parameters
    ----------
    detector : LogDetector
        A fitted log model (or APE).
    args : argparse.Namespace
        Reads `data`, `json`, `quiet`, `labels` and, for APE, `label_field`.

    Raises
    ------
    ConfigError
        For APE without `--label-field`, or a file not of the kind the model read.
    DataError
        If the sequences carry no labels.
    """
    verbose = not args.quiet
    from oddity.core.errors import DataError
    from oddity.core.persistence import atomic_write
    from oddity.logs.evaluate import sequence_metrics

    if not hasattr(detector, "vocabulary_"):  # categorical events
        if args.label_field is None:
            raise ConfigError("give --label-field: the column of event labels (1/true/anomaly/alert = anomalous)")
        table, labels = _event_table(args.data, detector.columns_, args.label_field)
        metrics = sequence_metrics(labels, detector.predict(table))
        what = f"{len(table)} events, {int(labels.sum())} anomalous"
    else:
        sequences = read_with_model(detector, args.data, _labels(args), verbose)
        if sequences.labels is None:
            raise DataError(f"{args.data}: no labels; give --labels CSV or a file with line labels")
        metrics = sequence_metrics(sequences.labels, detector.predict(sequences))
        what = f"{len(sequences)} sequences, {int(sequences.labels.sum())} anomalous"
    print(f"{detector.name} on {args.data} ({what}):")
    for name, value in metrics.items():
        print(f"  {name:<18} {value:.4f}")
    if args.json:
        text = json.dumps(metrics, indent=2) + "\n"
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"metrics written to {args.json}")
