"""Metrics of a log detector on labelled sequences, and the duplicate counts that decide how
far figures can be trusted.

At the calibrated threshold: precision, recall, F1 and the false-positive rate; threshold-free:
AUROC and AUPR; best F1 over all thresholds is reported beside them, labelled as chosen in
hindsight. Duplicates: how many test sequences repeat a training sequence exactly (events in
order), and how many anomalous test sequences are identical to a normal one, which no method
that sees only the events can tell apart.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from oddity.core.errors import MetricError
from oddity.logs.results import LogPrediction, LogSequences
from oddity.metrics.classification import f1_max, image_aupr, image_auroc


def sequence_metrics(labels: np.ndarray, prediction: LogPrediction) -> dict[str, float]:
    """Precision, recall, F1, FPR at the prediction's threshold; AUROC, AUPR; best F1.

    Parameters
    ----------
    labels : numpy.ndarray
        True labels, 1 = anomalous.
    prediction : LogPrediction
        The detector's prediction on the same sequences.

    Returns
    -------
    dict
        Metric name -> value.

    Raises
    ------
    MetricError
        When the labels hold one class only.
    """
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        raise MetricError("the labels hold one class only; metrics need normal and anomalous sequences")
    flagged = prediction.labels
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    fn = int((~flagged & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    best = f1_max(y, prediction.scores)
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fp / int((~y).sum()),
            "auroc": image_auroc(y, prediction.scores), "aupr": image_aupr(y, prediction.scores),
            "best_f1_hindsight": best.f1, "threshold": float(prediction.threshold)}


def duplicate_counts(train: LogSequences, test: LogSequences) -> dict[str, Any]:
    """Exact repeats between and within splits (see the module docstring).

    Parameters
    ----------
    train, test : LogSequences
        The two splits.

    Returns
    -------
    dict
        test sequences, distinct test sequences, test sequences seen in training, anomalous
        test sequences identical to a normal sequence (of either split), and the best F1 any
        method that sees only the events could reach on the test split (each distinct sequence
        flagged when more of its copies are anomalous than normal).
    """
    key = tuple
    train_keys = {key(e) for e in train.events}
    normal_keys = {key(e) for e, l in zip(train.events, _labels(train)) if not l}
    normal_keys |= {key(e) for e, l in zip(test.events, _labels(test)) if not l}
    labels = _labels(test)
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for e, l in zip(test.events, labels):
        counts[key(e)][int(l)] += 1
    tp = sum(a for n, a in counts.values() if a > n)
    fp = sum(n for n, a in counts.values() if a > n)
    positives = int(labels.sum())
    oracle = 2 * tp / (2 * tp + fp + positives - tp) if positives else float("nan")
    return {"test": len(test), "test_distinct": len(counts),
            "test_seen_in_train": sum(key(e) in train_keys for e in test.events),
            "anomalous_test_identical_to_normal": sum(key(e) in normal_keys for e, l
                                                      in zip(test.events, labels) if l),
            "oracle_f1": oracle}


def _labels(sequences: LogSequences) -> np.ndarray:
    return sequences.labels if sequences.labels is not None else np.zeros(len(sequences), np.int64)
