"""ARTime's NAB score under NAB's own running conditions beside oddity's causal protocol, per
profile and NAB group, and on the synthetic corpus; written to benchmarks/results/series_artime.md.

NAB's conditions (how NAB runs ARTime, its scoreboard's 74.9): every series is scaled in the
range of the whole file, which NAB hands each detector ahead (a look-ahead), the
probationary period is ARTime's own (15% of the file, at most 750 steps, even), and the raw
scores go to NAB's optimiser. oddity's protocol (`benchmarks/run_series.py`, the `artime`
defaults): the range is the probationary history's (later levels clipped), the probationary
period is that history, every step sees only the past; its step scores are the raw score,
the calibrated level and Numenta's likelihood (`oddity.series.evaluate`). Same code
(`oddity.series.detectors.artime`) and the same scorer (`oddity.metrics.nab`) throughout.

    python benchmarks/series_artime.py [--cache DIR] [--synthetic 3] [--margins 0 0.5 1]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from series_cad_ose import (
    arguments,
    cached_nab_conditions,
    cached_run,
    margin_rows,
    rows,
)
from series_nab import synthetic_corpus

from oddity.core.persistence import atomic_write
from oddity.series.data import NabSeries, read_nab
from oddity.series.detectors.artime import ArtimeStream, probation_steps
from oddity.series.evaluate import NabEvaluation, series_metrics

RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHED = {"standard": 74.9, "reward_low_FP_rate": 65.1, "reward_low_FN_rate": 80.4}


def nab_conditions(series: NabSeries) -> np.ndarray:
    """ARTime's raw scores of one series run as NAB runs it (module docstring), at the
    author's settings (`artime`'s defaults)."""
    values = series.frame.to_numpy(dtype=np.float64)[:, 0]
    stream = ArtimeStream(float(values.min()), float(values.max()),
                          probation_steps(len(values)), 8, 80, 0.075, 0.8)
    scores = np.array([stream.step(value) for value in values.tolist()])
    scores[:series.probationary] = 0.0  # NAB ignores the probationary period
    return scores


def metric_rows(runs: dict[str, NabEvaluation]) -> list[str]:
    """Threshold-free and decision metrics of oddity's protocol (the test steps' raw scores
    and online-calibrated flags), means over the series where defined, per corpus."""
    lines = ["## oddity's protocol: the other metrics (means over series)", "",
             "| corpus | AUROC | VUS-ROC | VUS-PR | event-F1 | range-F1 | FPR median |",
             "|---|---|---|---|---|---|---|"]
    for name, evaluation in runs.items():
        metrics = [series_metrics(r.labels[r.probationary:], r.scores[r.probationary:],
                                  r.flags) for r in evaluation.series]

        def mean(key: str, series: list = metrics) -> float:
            return float(np.mean([m[key] for m in series if m[key] is not None]))

        median_fpr = float(np.median([m["fpr"] for m in metrics if m["fpr"] is not None]))
        lines.append(f"| {name} | {mean('point_auroc'):.3f} | {mean('vus_roc'):.3f} | "
                     f"{mean('vus_pr'):.3f} | {mean('event_f1'):.3f} | {mean('range_f1'):.3f} "
                     f"| {median_fpr:.4f} |")
    print("\n".join(lines), flush=True)
    return lines + [""]


def main() -> None:
    args = arguments(__doc__.splitlines()[0], [0.0, 0.25, 0.5, 1.0])
    cache = Path(args.cache)
    nab = read_nab(args.data)
    synthetic = synthetic_corpus(args.synthetic)
    synthetic_cache = cache / f"synthetic-{args.synthetic}"
    evaluation = cached_run(cache, {}, nab, "artime")
    made = cached_run(synthetic_cache, {}, synthetic, "artime")
    lines = ["# ARTime on NAB: NAB's running conditions and oddity's causal protocol", "",
             ("Reproduce: `python benchmarks/series_artime.py --synthetic "
              f"{args.synthetic} --margins {' '.join(map(str, args.margins))}` (the "
              "`artime` row of [series.md](series.md): `python benchmarks/run_series.py "
              "--keep --detectors artime`)."), "",
             "NAB's conditions: each series scaled in its whole file's range (NAB hands every "
             "detector the file's minimum and maximum before the run: a look-ahead), ARTime's "
             "own probationary period (15% of the file, at most 750 steps), raw scores to "
             "NAB's optimiser: how NAB ran ARTime, published at "
             + ", ".join(f"{v} ({k})" for k, v in PUBLISHED.items()) + ". oddity's protocol: "
             "the `artime` defaults as `benchmarks/run_series.py` runs them, range and "
             "probationary period from the probationary history, each step seeing only the "
             "past. One threshold per profile optimised by NAB's optimiser over the corpus "
             "('all') or within each group.", ""]
    lines += rows(f"NAB ({len(nab)} series)", nab, evaluation, cached_nab_conditions(
        nab, cache / "artime-nab-conditions.npz", nab_conditions))
    lines += rows(f"Synthetic ({len(synthetic)} series, `benchmarks/series_nab.py`'s corpus)",
                  synthetic, made, cached_nab_conditions(
                      synthetic, synthetic_cache / "artime-nab-conditions.npz", nab_conditions))
    lines += metric_rows({"NAB": evaluation, "synthetic": made})
    lines += margin_rows(args.margins, nab, synthetic, cache, args.synthetic, "artime")
    atomic_write(RESULTS / "series_artime.md",
                 lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
