"""Peers on NAB under oddity's protocol, with the same metrics: PyOD's IForest and LOF on
sliding windows, stumpy's left matrix profile (the distance of each subsequence to its
nearest neighbour in the past: a causal discord score), and darts' forecasting anomaly model
(`darts.ad.ForecastingAnomalyModel`: one-step historical forecasts of a regression forecaster
on the last `window` values, scored by the absolute residual, `NormScorer`) with a linear
forecaster (`darts_linear`) or XGBoost (`darts_xgb`).

Per series (as `oddity.series.evaluate`): fit on the probationary period (PyOD: all windows of
it; stumpy: it is the initial reference; darts: the forecaster is trained on it), score every later step causally (the window ending
at it), decide with the same online calibration (held-out scores: the last 20% of the
probationary period, scored by a model fitted on the first 80%), measure with
`series_metrics`, and compute NAB's score from the calibrated levels' alert onsets. Adds rows
to benchmarks/results/series_peers.md.

    python benchmarks/series_peers.py [--peers pyod_iforest darts_linear ...] [--window 32]
                                      [--keep]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from oddity.core.online_calibration import OnlineConformal
from oddity.core.persistence import atomic_write
from oddity.metrics.nab import nab_scores
from oddity.series.data import NabSeries, read_nab
from oddity.series.evaluate import METRICS, ONSET_MEMORY, series_metrics
from oddity.series.postprocess import onset_scores
from oddity.series.scaling import robust_scaling, standardise
from oddity.series.windows import sliding_windows

RESULTS = Path(__file__).resolve().parent / "results" / "series_peers.md"
PEERS = ("pyod_iforest", "pyod_lof", "stumpy_mp", "darts_linear", "darts_xgb")


def window_matrix(values: np.ndarray, window: int) -> np.ndarray:
    return sliding_windows(values, window).reshape(-1, window * values.shape[1])


def pyod_scores(kind: str, fit: np.ndarray, score: np.ndarray, window: int) -> np.ndarray:
    """PyOD detector fitted on the windows of `fit`; the score of each window of `score`."""
    from pyod.models.iforest import IForest
    from pyod.models.lof import LOF

    centre, scale = robust_scaling(fit)
    model = IForest(random_state=0) if kind == "iforest" else LOF(n_neighbors=20)
    model.fit(window_matrix(standardise(fit, centre, scale), window))
    return model.decision_function(window_matrix(standardise(score, centre, scale), window))


def stumpy_scores(fit: np.ndarray, score: np.ndarray, window: int) -> np.ndarray:
    """Left matrix profile of `score`'s later subsequences, `fit` being the first reference."""
    import stumpy

    stream = stumpy.stumpi(fit[:, 0], window, egress=False)
    for value in score[len(fit):, 0]:
        stream.update(value)
    left = np.asarray(stream.left_P_, dtype=np.float64)
    left[~np.isfinite(left)] = np.nanmax(left[np.isfinite(left)])
    return left[len(fit) - window + 1:]


def darts_scores(kind: str, fit: np.ndarray, score: np.ndarray, window: int) -> np.ndarray:
    """Absolute one-step forecast residual of every step of `score` after its first `window`,
    the forecaster trained on `fit` (rows as equally spaced steps)."""
    from darts import TimeSeries
    from darts.ad import ForecastingAnomalyModel, NormScorer
    from darts.models import LinearRegressionModel, XGBModel

    forecaster = (LinearRegressionModel(lags=window) if kind == "linear"
                  else XGBModel(lags=window, random_state=0, n_jobs=1))
    model = ForecastingAnomalyModel(forecaster, NormScorer(ord=1))
    model.fit(TimeSeries.from_values(fit), allow_model_training=True, show_warnings=False)
    scores = model.score(TimeSeries.from_values(score), start=window, start_format="position",
                         show_warnings=False)
    return scores.values(copy=False)[:, 0].astype(np.float64)


def peer_step_scores(peer: str, fit: np.ndarray, values: np.ndarray, window: int) -> np.ndarray:
    """Causal step scores of `values[len(fit):]` (windows ending at each step)."""
    context = values[len(fit) - window + 1:]
    if peer == "stumpy_mp":
        return stumpy_scores(fit, values, window)
    if peer.startswith("darts_"):
        return darts_scores(peer.split("_")[1], fit, values[len(fit) - window:], window)
    return pyod_scores(peer.split("_")[1], fit, context, window)


def evaluate(peer: str, window: int, corpus: list[NabSeries] | None = None) -> dict:
    """Mean metrics, median FPR, NAB scores and seconds of `peer` over `corpus` (default:
    every NAB series under $ODDITY_DATA)."""
    if corpus is None:
        corpus = read_nab(Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "series" / "nab")
    rows, pairs, seconds = [], [], 0.0
    for nab in corpus:
        values = nab.frame.to_numpy(dtype=np.float64)
        start = time.perf_counter()
        split = round(0.8 * nab.probationary)
        held_out = peer_step_scores(peer, values[:split], values[:nab.probationary], window)
        scores = peer_step_scores(peer, values[:nab.probationary], values, window)
        decisions = OnlineConformal(held_out, 0.01, 1000, 0.0005).update(scores)
        seconds += time.perf_counter() - start
        labels = nab.labels[nab.probationary:]
        rows.append(series_metrics(labels, scores, decisions.flags))
        pairs.append((nab.labels, np.concatenate((np.zeros(nab.probationary),
                                                  onset_scores(decisions.levels, ONSET_MEMORY)))))
    means = {m: float(np.mean([r[m] for r in rows if r[m] is not None])) for m in METRICS}
    means["median_fpr"] = float(np.median([r["fpr"] for r in rows]))
    means["nab"] = {k: v.score for k, v in nab_scores(pairs).items()}
    means["seconds_per_series"] = seconds / len(rows)
    return means


def recorded_rows(exclude: list[str]) -> list[str]:
    """Table rows already in the results file, except those of the peers in `exclude`."""
    if not RESULTS.is_file():
        return []
    return [line for line in RESULTS.read_text().splitlines()
            if line.startswith("| ") and "(window" in line
            and line[2:].split(" ")[0] not in exclude]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", nargs="+", default=list(PEERS))
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--keep", action="store_true",
                        help="keep the other peers' rows already in the results file")
    args = parser.parse_args()
    rows = recorded_rows(args.peers) if args.keep else []
    for peer in args.peers:
        m = evaluate(peer, args.window)
        cells = [f"{m[k]:.3f}" for k in ("point_auroc", "point_aupr", "vus_roc", "vus_pr",
                                         "pate", "pa_f1", "event_f1", "range_f1", "fpr",
                                         "median_fpr")]
        cells += [f"{m['nab'][k]:.1f}" for k in ("standard", "reward_low_FP_rate",
                                                 "reward_low_FN_rate")]
        rows.append(f"| {peer} (window {args.window}) | " + " | ".join(cells) +
                    f" | {m['seconds_per_series']:.2f} |")
        print(rows[-1], flush=True)
        rows.sort(key=lambda row: PEERS.index(row[2:].split(" ")[0]))
        lines = ["# Peers on NAB (same protocol and metrics as series.md)", "",
                 (f"Reproduce: `python benchmarks/series_peers.py --peers {' '.join(PEERS)} "
                 f"--window {args.window}` ({os.cpu_count()} CPU cores; `--peers NAME --keep` "
                 "reruns one peer and keeps the other rows). Online calibration at a 1% target "
                 "as for oddity's detectors; PyOD 3.6.7, stumpy 1.14.1, darts 0.48.1 (its "
                 "XGBModel on xgboost 3.2.0). NAB (a): NAB's protocol (threshold optimised over "
                 "the corpus) on the calibrated level at alert onsets, as series.md's (a) level "
                 "column."), "",
                 ("| peer | AUROC | AUPR | VUS-ROC | VUS-PR | PATE | PA-F1 | event-F1 | range-F1 "
                 "| FPR mean | FPR median | NAB std (a) | NAB low FP (a) | NAB low FN (a) "
                 "| s/series |"),
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *rows]
        text = "\n".join(lines) + "\n"
        atomic_write(RESULTS, lambda tmp, text=text: Path(tmp).write_text(text))

if __name__ == "__main__":
    main()
