"""Reference values of VUS / range-AUC and range-based precision/recall from aeon 1.6.0.

aeon pins older numpy and pandas than oddity, so it runs in its own virtual environment:

    python -m venv /tmp/aeonref && /tmp/aeonref/bin/pip install aeon==1.6.0
    /tmp/aeonref/bin/python experiments/series_metrics_reference.py

It prints the values recorded in tests/metrics/test_metrics_vus_range.py for the cases that
test file builds with `cases()` (copied here so that this script does not import oddity).
"""
import json

import numpy as np
from aeon.benchmarking.metrics.anomaly_detection import (
    range_pr_auc_score,
    range_pr_vus_score,
    range_precision,
    range_recall,
    range_roc_auc_score,
    range_roc_vus_score,
)


def cases():
    """(labels, scores) pairs: seeded random series with 1-3 anomalies of various lengths."""
    out = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        labels = np.zeros(600, int)
        for start in rng.choice(np.arange(30, 560, 90), rng.integers(1, 4), replace=False):
            labels[start:start + rng.integers(1, 40)] = 1
        scores = np.round(rng.random(600) + 0.6 * labels * rng.random(600), 3)
        out.append((labels, scores))
    return out


def main():
    results = []
    for labels, scores in cases():
        predictions = (scores >= np.quantile(scores, 0.9)).astype(int)
        row = {"vus_roc": range_roc_vus_score(labels, scores, max_buffer_size=60),
               "vus_pr": range_pr_vus_score(labels, scores, max_buffer_size=60),
               "auc_roc_10": range_roc_auc_score(labels, scores, buffer_size=10),
               "auc_pr_10": range_pr_auc_score(labels, scores, buffer_size=10)}
        for bias in ("flat", "front", "back", "middle"):
            for gamma in ("one", "reciprocal"):
                row[f"p_{bias}_{gamma}"] = range_precision(labels, predictions, cardinality=gamma,
                                                           bias=bias)
                row[f"r_{bias}_{gamma}_0.5"] = range_recall(labels, predictions, cardinality=gamma,
                                                            bias=bias, alpha=0.5)
        results.append(row)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
