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


# Entity columns of loghub lines as categorical events: column -> (format field, slice of it);
# Thunderbird lines carry no level.
EVENT_FIELDS: dict[str, dict[str, tuple[str, slice]]] = {
    "BGL": {"node": ("Node", slice(None)), "component": ("Component", slice(None)),
            "level": ("Level", slice(None)), "hour": ("Time", slice(11, 13))},
    "Thunderbird": {"node": ("User", slice(None)), "component": ("Component", slice(None)),
                    "hour": ("Time", slice(0, 2))},
}


def loghub_event_table(path: Path, dataset: str) -> tuple["pd.DataFrame", np.ndarray, "pd.DataFrame"]:
    """BGL or Thunderbird lines as categorical events, with their alert tags as labels.

    The entity columns of each line: node, component, level (BGL only), template and hour of
    day; its label is 1 for an alert.

    Parameters
    ----------
    path : pathlib.Path
        A raw Loghub log file (label first).
    dataset : str
        ``"BGL"`` or ``"Thunderbird"`` (its format string and fields).

    Returns
    -------
    events : pandas.DataFrame
        The entity columns, one row per matched line, in file order.
    labels : numpy.ndarray
        int64, one per row.
    lines : pandas.DataFrame
        Per row: `line` (1-based line number) and `seconds` (the epoch time stamp).
    """
    import pandas as pd

    from oddity.logs.parsing import LogSource, matched, mine
    from oddity.logs.data import ReadReport

    source, parser = LogSource(format=LOGHUB_FORMATS[dataset], label_field="Label"), TemplateParser()
    mine(path, source, parser)
    rows, labels, where = [], [], []
    for line, template in matched(path, source, parser, ReadReport(str(path))):
        row = {name: line.fields[field][part] for name, (field, part) in EVENT_FIELDS[dataset].items()}
        rows.append({**row, "template": template})
        labels.append(line.label)
        where.append({"line": line.number, "seconds": float(line.fields["Timestamp"])})
    columns = [c for c in EVENT_FIELDS[dataset] if c != "hour"] + ["template", "hour"]
    return pd.DataFrame(rows)[columns], np.array(labels, dtype=np.int64), pd.DataFrame(where)


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
        Precision, recall, F1, FPR, AUROC, AUPR and best hindsight F1 on the test part (None
        for those a test part without anomalous events leaves undefined), the threshold rule,
        `fit_s`, `score_s`, explanations of the first three anomalous test events, and
        `test_scores`.
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
    both = bool(y.any() and (~y).any())
    flagged = prediction.labels
    tp, fp, fn = int((flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0  # both reported as None below without anomalies
    threshold = detector.threshold_
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"detector": "ape", "params": params, "split": "chronological 60/40 (lines)",
            "precision": precision if both else None, "recall": recall if both else None,
            "f1": f1 if both else None,
            "fpr": fp / int((~y).sum()), "auroc": image_auroc(y, prediction.scores) if both else None,
            "aupr": image_aupr(y, prediction.scores) if both else None,
            "best_f1_hindsight": f1_max(y, prediction.scores).f1 if both else None,
            "threshold_rule": f"{threshold.method}, target FPR {threshold.target_fpr:g} on "
                              f"{threshold.n_calibration} held-out normal events",
            "fit_s": fit_seconds, "score_s": score_seconds,
            "explained": detector.explain(events.iloc[cut:][y].head(3)), "test_scores": prediction.scores}


def window_line_scores(name: str, path: Path, dataset: str, cut_line: int, size: int = 20,
                       step: int = 5) -> dict[int, float]:
    """A window detector's score of each line after `cut_line`: the highest score of the test
    windows holding it. Fitted on the windows that end at or before `cut_line` (their normal
    ones, as `detector_row`); test windows start after it.

    Parameters
    ----------
    name : str
        Registered log detector scoring sequences.
    path : pathlib.Path
        Raw Loghub log (label first).
    dataset : str
        Its key in `LOGHUB_FORMATS`.
    cut_line : int
        Last line number of the training part.
    size, step : int
        Window length and step in lines.

    Returns
    -------
    dict
        Line number -> score.
    """
    from oddity.logs.grouping import Grouping
    from oddity.logs.parsing import LogSource, mine, sequences_of

    source, parser = LogSource(format=LOGHUB_FORMATS[dataset], label_field="Label"), TemplateParser()
    mine(path, source, parser)
    sequences, _ = sequences_of(path, source, parser, Grouping("count", size=size, step=step))
    assert sequences.lines is not None
    train = [i for i, lines in enumerate(sequences.lines) if max(lines) <= cut_line]
    test = [i for i, lines in enumerate(sequences.lines) if min(lines) > cut_line]
    detector = oddity.create(name).fit(sequences.subset(train), verbose=False)
    scores = detector.score(sequences.subset(test)).scores
    out: dict[int, float] = {}
    for i, score in zip(test, scores):
        for line in sequences.lines[i]:
            out[line] = max(out.get(line, -np.inf), float(score))
    return out


def ranking_row(detector: str, alerts: "pd.DataFrame", truth: np.ndarray, ks: tuple[int, ...] = (10, 20, 50),
                seed: int = 0) -> dict[str, Any]:
    """Precision of the top-k alerts of a detector in five orders: its own score, random (the
    expectation: the share of true alerts), CAR with the score as prior, CAR without it, and
    (an ablation) CAR with the score but without content correlation.

    Parameters
    ----------
    detector : str
        Name of the detector that emitted the alerts, for the row.
    alerts : pandas.DataFrame
        Alerts in time order: entity columns, `template` (the alert type), `seconds` and `score`.
    truth : numpy.ndarray
        1 where the alert is a true one (an alert tag), one per row.
    ks : tuple of int
        The k of precision@k.
    seed : int
        Seed of CAR's embeddings.

    Returns
    -------
    dict
        `detector`, `alerts`, `true`, `orders` (name -> {k: precision}), `patterns` (the five
        best patterns of CAR with the prior) and `rank_s`.
    """
    from oddity.logs.ranking import CollaborativeAlertRanker

    entities = [c for c in alerts.columns if c not in ("seconds", "score")]
    table = alerts.assign(truth_=truth)
    orders = {"detector score": table.sort_values("score", ascending=False, kind="stable")["truth_"].to_numpy()}
    start = time.perf_counter()
    with_prior = CollaborativeAlertRanker(kind="template", entities=entities, score="score", time="seconds",
                                          seed=seed).rank(table)
    seconds = time.perf_counter() - start
    alone = CollaborativeAlertRanker(kind="template", entities=entities, time="seconds", seed=seed).rank(table)
    temporal = CollaborativeAlertRanker(kind="template", entities=entities, score="score", time="seconds",
                                        content_weight=0.0, seed=seed).rank(table)
    orders["CAR (detector score as prior)"] = with_prior.alerts["truth_"].to_numpy()
    orders["CAR (alerts only)"] = alone.alerts["truth_"].to_numpy()
    orders["ablation: CAR without content (content_weight 0)"] = temporal.alerts["truth_"].to_numpy()
    precision = {name: {k: float(order[:k].mean()) for k in ks} for name, order in orders.items()}
    precision = {"random (expected)": {k: float(truth.mean()) for k in ks}, **precision}
    return {"detector": detector, "alerts": len(alerts), "true": int(truth.sum()), "orders": precision,
            "patterns": with_prior.patterns.head(5).to_dict("records"), "rank_s": seconds}


def car_validation(events: "pd.DataFrame", labels: np.ndarray, seconds: np.ndarray,
                   content_weights: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0), ks: tuple[int, ...] = (10, 20, 50, 100),
                   seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """Validation of CAR's content weight, apart from any test part: precision@k of CAR on
    `events` (every line an alert, no detector score; meant for the training part of a split)
    and the mean precision@20 on generated alert streams (`synthetic_alerts`, seeds `seeds`,
    detector score signal 0 and 1.5, confusion 0.3 and 0.6).

    Parameters
    ----------
    events : pandas.DataFrame
        Entity columns with `template`, in time order.
    labels : numpy.ndarray
        1 for an alert tag, one per row.
    seconds : numpy.ndarray
        Time stamps, one per row.
    content_weights : tuple of float
        The weights tried.
    ks : tuple of int
        The k of precision@k on `events`.
    seeds : tuple of int
        Seeds of the generated streams.

    Returns
    -------
    dict
        `lines` ({weight: {k: precision}}), `synthetic` ({weight: mean precision@20}),
        `true_share` of `events`.
    """
    from itertools import product

    from oddity.logs.ranking import CollaborativeAlertRanker
    from oddity.logs.synth_alerts import synthetic_alerts

    table = events.assign(seconds=seconds, truth_=labels)
    lines, synthetic = {}, {}
    for weight in content_weights:
        order = CollaborativeAlertRanker(kind="template", entities=list(events.columns), time="seconds",
                                         content_weight=weight).rank(table).alerts["truth_"].to_numpy()
        lines[weight] = {k: float(order[:k].mean()) for k in ks}
        found = []
        for seed, signal, confusion in product(seeds, (0.0, 1.5), (0.3, 0.6)):
            alerts, truth = synthetic_alerts(seed=seed, score_signal=signal, confusion=confusion)
            ranked = CollaborativeAlertRanker(kind="kind", entities=["kind", "host", "component"], time="time",
                                              score="score", max_gap=600, content_weight=weight)
            found.append(ranked.rank(alerts.assign(truth_=truth)).alerts["truth_"].to_numpy()[:20].mean())
        synthetic[weight] = float(np.mean(found))
    return {"lines": lines, "synthetic": synthetic, "true_share": float(labels.mean())}
