"""Logs benchmark pieces: Loghub-2k format strings, parsing accuracy and speed, detector rows.

Grouping accuracy (Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP
2019): a line counts as correct when the set of lines parsed into its template is exactly the
set of lines of its ground-truth template; the accuracy is the share of correct lines. Parsed
groups are keyed by the final template text, as in logparser (identical templates are one event).
"""
from __future__ import annotations

import csv
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Hashable, Mapping

import numpy as np

import oddity
from oddity.logs.data import read_raw
from oddity.logs.evaluate import sequence_metrics
from oddity.logs.parser import TemplateParser
from oddity.logs.results import LogSequences

if TYPE_CHECKING:
    import pandas as pd

# Loghub-2k format strings (those of the logparser benchmark).
LOGHUB_FORMATS: dict[str, str] = {
    "HDFS": "<Date> <Time> <Pid> <Level> <Component>: <Content>",
    "Hadoop": r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    "Spark": "<Date> <Time> <Level> <Component>: <Content>",
    "Zookeeper": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    "BGL": "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    "HPC": "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    "Thunderbird": r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> "
                   r"<Component>(\[<PID>\])?: <Content>",
    "Windows": "<Date> <Time>, <Level>                  <Component>    <Content>",
    "Linux": r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    "Android": "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
    "HealthApp": r"<Time>\|<Component>\|<Pid>\|<Content>",
    "Apache": r"\[<Time>\] \[<Level>\] <Content>",
    "Proxifier": r"\[<Time>\] <Program> - <Content>",
    "OpenSSH": r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    "OpenStack": r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    "Mac": r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
}


def grouping_accuracy(truth: Mapping[Hashable, Hashable], parsed: Mapping[Hashable, Hashable]) -> float:
    """Share of lines whose parsed group equals their true group exactly.

    Keys are line ids, values true / parsed templates; only lines present in both count.

    Parameters
    ----------
    truth : mapping
        Line id -> ground-truth template (or event id).
    parsed : mapping
        Line id -> parsed template.

    Returns
    -------
    float
        Grouping accuracy in [0, 1].
    """
    keys = [k for k in truth if k in parsed]
    true_groups: dict[Hashable, set] = defaultdict(set)
    parsed_groups: dict[Hashable, set] = defaultdict(set)
    for k in keys:
        true_groups[truth[k]].add(k)
        parsed_groups[parsed[k]].add(k)
    correct = sum(len(lines) for lines in parsed_groups.values()
                  if true_groups[truth[next(iter(lines))]] == lines)
    return correct / len(keys) if keys else 0.0


def loghub_parsing(root: Path, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Grouping accuracy and parse speed of `TemplateParser(**settings)` on Loghub-2k.

    Every set under `root` is read: `<name>/<name>_2k.log` and its `_structured.csv`.

    Parameters
    ----------
    root : pathlib.Path
        Folder holding one sub-folder per Loghub-2k data set.
    settings : dict, optional
        `TemplateParser` parameters (its defaults when None).

    Returns
    -------
    list of dict
        One row per data set: name, lines, templates (parsed / true), grouping accuracy,
        lines per second of the whole parse (read, split fields, mask, mine).
    """
    rows = []
    for name, line_format in LOGHUB_FORMATS.items():
        folder = root / name
        structured = folder / f"{name}_2k.log_structured.csv"
        with structured.open(encoding="utf-8", newline="") as handle:
            truth = {int(r["LineId"]): r["EventTemplate"] for r in csv.DictReader(handle)}
        parser = TemplateParser(**(settings or {}))
        start = time.perf_counter()
        ids = {line.number: parser.learn(line.content)
               for line in read_raw(folder / f"{name}_2k.log", line_format)}
        seconds = time.perf_counter() - start
        parsed = {k: parser.template(v) for k, v in ids.items()}
        rows.append({"dataset": name, "lines": len(ids), "templates": len(set(parsed.values())),
                     "true_templates": len(set(truth.values())),
                     "grouping_accuracy": grouping_accuracy(truth, parsed),
                     "lines_per_s": len(ids) / seconds})
    return rows


def detector_row(name: str, params: dict[str, Any], train: LogSequences, test: LogSequences,
                 split: str) -> dict[str, Any]:
    """Fit `name` on `train`, predict `test`: metrics at the calibrated threshold and timings.

    Parameters
    ----------
    name : str
        Registered log detector.
    params : dict
        Its parameters.
    train : LogSequences
        Training sequences.
    test : LogSequences
        Labelled test sequences.
    split : str
        Description of the train/test split, recorded in the row.

    Returns
    -------
    dict
        Detector, params, split, `sequence_metrics` of the test set, the threshold rule,
        `fit_s` and `score_s`. When every test sequence is normal, only `fpr` (the share
        flagged) and `threshold` are measured; the other metrics are "n/a".
    """
    detector = oddity.create(name, **params)
    start = time.perf_counter()
    detector.fit(train, verbose=False)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    prediction = detector.predict(test)
    score_seconds = time.perf_counter() - start
    threshold = detector.threshold_
    assert threshold is not None and test.labels is not None
    if test.labels.any():
        metrics = sequence_metrics(test.labels, prediction)
    else:
        metrics = {**dict.fromkeys(["precision", "recall", "f1", "auroc", "aupr", "best_f1_hindsight"], "n/a"),
                   "fpr": float(prediction.labels.mean()), "threshold": float(prediction.threshold)}
    return {"detector": name, "params": params, "split": split, **metrics,
            "threshold_rule": f"{threshold.method}, target FPR {threshold.target_fpr:g} on "
                              f"{threshold.n_calibration} held-out normal sequences",
            "fit_s": fit_seconds, "score_s": score_seconds}


def bgl_event_table(path: Path) -> tuple["pd.DataFrame", np.ndarray]:
    """BGL lines as categorical events, with their alert tags as labels.

    The entity columns of each line: node, component, level, template and hour of day; its
    label is 1 for an alert.

    Parameters
    ----------
    path : pathlib.Path
        A raw BGL log file (Loghub format, label first).

    Returns
    -------
    events : pandas.DataFrame
        Columns `node`, `component`, `level`, `template` and `hour`, one row per matched line.
    labels : numpy.ndarray
        int64, one per row.
    """
    import pandas as pd

    from oddity.logs.parsing import LogSource, matched, mine
    from oddity.logs.data import ReadReport

    source, parser = LogSource(format=LOGHUB_FORMATS["BGL"], label_field="Label"), TemplateParser()
    mine(path, source, parser)
    rows, labels = [], []
    for line, template in matched(path, source, parser, ReadReport(str(path))):
        rows.append({"node": line.fields["Node"], "component": line.fields["Component"],
                     "level": line.fields["Level"], "template": template, "hour": line.fields["Time"][11:13]})
        labels.append(line.label)
    return pd.DataFrame(rows), np.array(labels, dtype=np.int64)


def event_row(params: dict[str, Any], events: "pd.DataFrame", labels: np.ndarray, cut: int) -> dict[str, Any]:
    """APE fitted on the normal events before `cut` (time order), measured on the rest.

    Parameters
    ----------
    params : dict
        APE parameters.
    events : pandas.DataFrame
        Entity columns, in time order (`bgl_event_table`).
    labels : numpy.ndarray
        1 for an anomalous event, one per row.
    cut : int
        Row where the test part starts.

    Returns
    -------
    dict
        Precision, recall, F1, FPR, AUROC, AUPR and best hindsight F1 on the test part, the
        threshold rule, `fit_s`, `score_s`, and explanations of the first three anomalous
        test events.
    """
    from oddity.metrics.classification import f1_max, image_aupr, image_auroc

    train = events.iloc[:cut][labels[:cut] == 0]
    detector = oddity.create("ape", **params)
    start = time.perf_counter()
    detector.fit(train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    prediction = detector.predict(events.iloc[cut:])
    score_seconds = time.perf_counter() - start
    y = labels[cut:].astype(bool)
    flagged = prediction.labels
    tp, fp, fn = int((flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    threshold = detector.threshold_
    return {"detector": "ape", "params": params, "split": "chronological 60/40 (lines)",
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "fpr": fp / int((~y).sum()), "auroc": image_auroc(y, prediction.scores),
            "aupr": image_aupr(y, prediction.scores), "best_f1_hindsight": f1_max(y, prediction.scores).f1,
            "threshold_rule": f"{threshold.method}, target FPR {threshold.target_fpr:g} on "
                              f"{threshold.n_calibration} held-out normal events",
            "fit_s": fit_seconds, "score_s": score_seconds,
            "explained": detector.explain(events.iloc[cut:][y].head(3))}
