"""NAB's score of every series detector under NAB's own protocol and at the calibrated
threshold, with each post-processing of the step scores, per NAB group and on a synthetic
corpus; written to benchmarks/results/series_nab.md.

NAB's protocol (the scoreboard's): a step score in [0, 1] on one scale across series, one
threshold per profile optimised over the whole corpus by NAB's optimiser. The step score is
the calibrated level or Numenta's anomaly likelihood of the raw scores, kept at alert onsets
over a memory of `period` steps (`oddity.series.evaluate`, `oddity.series.postprocess`). At
the calibrated threshold the detections are the detector's own online-calibrated flags (1%
per-step target), a flag within `period` steps after a kept one dropped.

NAB scores come from the per-series scores that `benchmarks/run_series.py --cache DIR` saved
(no refit). The synthetic corpus (`synthetic_corpus`: daily cycles, drift and noise with six
kinds of injected anomaly, NAB-style windows) is evaluated here, its scores cached likewise.

    python benchmarks/series_nab.py [--detectors ...] [--cache DIR] [--periods 0 50 100 200]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

import oddity
from oddity.bench.series import cache_path
from oddity.core.persistence import atomic_write
from oddity.metrics.nab import probationary_length
from oddity.series.data import NabSeries, window_labels
from oddity.series.evaluate import (
    ONSET_MEMORY,
    NabEvaluation,
    evaluate_nab,
    load_arrays,
    save_arrays,
)

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("spike", "level_shift", "variance", "frequency", "flat", "trend")


def synthetic_series(seed: int, kind: str, length: int = 4000) -> NabSeries:
    """One NAB-like series: a daily cycle (288 steps of 5 minutes) with a random walk and
    noise, and two anomalies of `kind` after the probationary period; NAB-style windows
    (10% of the length shared by the anomalies, centred on each onset)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    period = 288
    values = (np.sin(2 * np.pi * t / period) + 0.3 * np.sin(4 * np.pi * t / period)
              + 0.02 * np.cumsum(rng.normal(size=length)) + 0.2 * rng.normal(size=length))
    probation = probationary_length(length)
    onsets = np.sort(rng.choice(np.arange(probation + 300, length - 300, 400), 2, replace=False))
    for onset in onsets:
        span = slice(onset, onset + int(rng.integers(30, 120)))
        if kind == "spike":
            values[onset] += rng.choice([-1, 1]) * 3.0
        elif kind == "level_shift":
            values[onset:] += rng.choice([-1, 1]) * 1.5
        elif kind == "variance":
            values[span] += 0.8 * rng.normal(size=values[span].size)
        elif kind == "frequency":
            values[span] = np.sin(2 * np.pi * 6 * t[span] / period)
        elif kind == "flat":
            values[span] = values[onset]
        else:
            values[span] += np.linspace(0.0, 2.0, values[span].size)
    index = pd.date_range("2024-01-01", periods=length, freq="5min")
    half = int(0.1 * length / onsets.size) // 2
    windows = [(index[max(o - half, 0)], index[min(o + half, length - 1)]) for o in onsets]
    return NabSeries(name=f"synthetic/{kind}_{seed}.csv", group=f"synthetic_{kind}",
                     frame=pd.DataFrame({"value": values}, index=index), windows=windows,
                     labels=window_labels(index, windows), probationary=probation)


def synthetic_corpus(per_kind: int = 3) -> list[NabSeries]:
    """`per_kind` series of each anomaly kind (seeds 0, 1, ...)."""
    return [synthetic_series(seed, kind) for kind in KINDS for seed in range(per_kind)]


def nab_by_group(evaluation: NabEvaluation, scorer) -> dict[str, float]:
    """`scorer(evaluation)`'s standard NAB score over the whole corpus and within each group
    (one threshold optimised per group)."""
    scores = {"all": scorer(evaluation)["standard"]}
    for group in sorted({r.group for r in evaluation.series}):
        part = NabEvaluation(evaluation.detector, evaluation.params,
                             [r for r in evaluation.series if r.group == group])
        if any(r.labels[r.probationary:].any() for r in part.series):
            scores[group] = scorer(part)["standard"]
    return scores


def variants(periods: list[int]) -> dict[str, tuple[str, object]]:
    """Row label -> (protocol, scorer) for every post-processing and period."""
    rows: dict[str, tuple[str, object]] = {}
    for label, postprocess, short in (("level", "level", 1),
                                      ("likelihood, short mean 10 (Numenta's)", "likelihood", 10),
                                      ("likelihood, short mean 1", "likelihood", 1),
                                      ("level at calibrated alerts", "alerts", 1)):
        for period in periods:
            rows[f"{label}, {'refractory' if postprocess == 'alerts' else 'onsets over'} "
                 f"{period}"] = (
                "a", lambda e, p=postprocess, m=period, s=short: e.nab(p, m, s))
    for period in periods:
        rows[f"calibrated flags, refractory {period}"] = (
            "b", lambda e, m=period: e.nab_calibrated(m))
    return rows


def table(title: str, evaluations: list[NabEvaluation], periods: list[int],
          summary: dict[str, list[float]]) -> list[str]:
    """Per detector: a row per step score, a column per group; adds to `summary` each row's
    mean over the groups (the corpus column left out)."""
    lines = [f"## {title}", ""]
    for evaluation in evaluations:
        rows = {label: (protocol, nab_by_group(evaluation, scorer))
                for label, (protocol, scorer) in variants(periods).items()}
        for label, (_, scores) in rows.items():
            summary.setdefault(label, []).append(
                float(np.mean([s for g, s in scores.items() if g != "all"])))
        groups = list(next(iter(rows.values()))[1])
        lines += [f"### {evaluation.detector}", "",
                  "| step score | protocol | " + " | ".join(groups) + " |",
                  "|---|---|" + "---|" * len(groups)]
        for label, (protocol, scores) in rows.items():
            name = "(a) NAB's" if protocol == "a" else "(b) calibrated"
            lines.append(f"| {label} | {name} | " +
                         " | ".join(f"{scores[g]:.1f}" for g in groups) + " |")
        lines.append("")
        print("\n".join(lines[-len(rows) - 4:]), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=oddity.list_detectors("series"))
    parser.add_argument("--cache", default=str(RESULTS / "runs" / "series"))
    parser.add_argument("--periods", nargs="+", type=int, default=[0, 50, ONSET_MEMORY, 200])
    parser.add_argument("--synthetic", type=int, default=3, help="series per anomaly kind")
    args = parser.parse_args()
    nab = [load_arrays(cache_path(args.cache, d, {}), d, {}) for d in args.detectors]
    synthetic = []
    corpus = synthetic_corpus(args.synthetic)
    for detector in args.detectors:
        path = cache_path(Path(args.cache) / f"synthetic-{args.synthetic}", detector, {})
        if not path.is_file():
            save_arrays(evaluate_nab(detector, {}, corpus, verbose=False), path)
        synthetic.append(load_arrays(path, detector, {}))
    command = (f"python benchmarks/series_nab.py --detectors {' '.join(args.detectors)} "
               f"--periods {' '.join(map(str, args.periods))} --synthetic {args.synthetic}")
    lines = ["# NAB score: NAB's protocol and the calibrated threshold, per post-processing",
             "", f"Reproduce: `python benchmarks/run_series.py` (saves the per-series scores), "
             f"then `{command}` ({os.cpu_count()} CPU cores).", "",
             "(a) NAB's protocol, as on NAB's scoreboard: a step score in [0, 1], one threshold "
             "per profile optimised over the corpus (or over the group, in the group columns) "
             "by NAB's optimiser. (b) The detector's own decisions at the online-calibrated "
             "1% per-step false-positive target, no threshold chosen in hindsight. Step "
             "scores: `level` = calibrated level (1 - conformal p-value), `likelihood` = "
             "Numenta's anomaly likelihood of the raw scores (short mean over 10 steps as Numenta, "
             "or 1; long window 8640); kept at alert onsets over "
             "the given memory (0 = every step). Standard profile throughout.", ""]
    summary: dict[str, list[float]] = {}
    body = table("NAB (58 series)", nab, args.periods, summary)
    body += table(f"Synthetic ({len(corpus)} series: {args.synthetic} per anomaly kind, "
                  f"{', '.join(KINDS)})", synthetic, args.periods, summary)
    lines += ["## Summary: mean over the detectors of the mean over the groups", "",
              "The rule for the default step score: the highest mean, over the "
              f"{len(args.detectors)} detectors, of the NAB and synthetic group means (each "
              "group one threshold, so no group's figure rests on another's).", "",
              "| step score | protocol | NAB groups | synthetic groups | mean |", "|---|---|---|---|---|"]
    count = len(args.detectors)
    for label, (protocol, _) in variants(args.periods).items():
        real, made = summary[label][:count], summary[label][count:]
        lines.append(f"| {label} | {'(a)' if protocol == 'a' else '(b)'} | {np.mean(real):.1f} "
                     f"| {np.mean(made):.1f} | {np.mean(real + made):.1f} |")
    lines += [""] + body
    atomic_write(RESULTS / "series_nab.md",
                 lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
