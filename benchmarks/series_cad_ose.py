"""CAD OSE's NAB score under NAB's own running conditions beside oddity's causal protocol, per
profile and NAB group, and on the synthetic corpus; written to benchmarks/results/series_cad_ose.md.

NAB's conditions (how NAB runs contextOSE, its scoreboard's 69.9): every series is coded in
the range of the whole file, which NAB hands each detector ahead (a look-ahead), the memory
learns from the first step, the rest period is a fifth of the probationary period, and the
raw scores go to NAB's optimiser. oddity's protocol (`benchmarks/run_series.py`, the
`cad_ose` defaults): the range is the probationary history's (later values clipped), the
rest period a fifth of the fitted steps (the history less its 20% held-out tail), every step
sees only the past; its step scores are the raw score, the calibrated level and Numenta's
likelihood (`oddity.series.evaluate`). Same code (`oddity.series.detectors.cad_ose`) and the
same scorer (`oddity.metrics.nab`) throughout.

    python benchmarks/run_series.py --keep --detectors cad_ose   # saves the per-series scores
    python benchmarks/series_cad_ose.py [--cache DIR] [--synthetic 3]
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from series_nab import synthetic_corpus

from oddity.bench.series import cache_path
from oddity.core.persistence import atomic_write
from oddity.metrics.nab import PROFILES, nab_score
from oddity.series.data import NabSeries, read_nab
from oddity.series.detectors.cad_ose import ContextMemory
from oddity.series.evaluate import NabEvaluation, evaluate_nab, load_arrays, save_arrays

RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHED = {"standard": 69.9, "reward_low_FP_rate": 67.0, "reward_low_FN_rate": 73.2}


def nab_conditions(series: NabSeries) -> np.ndarray:
    """CAD OSE's raw scores of one series run as NAB runs it (module docstring)."""
    values = series.frame.to_numpy(dtype=np.float64)[:, 0]
    top = 7  # 3 bits, the authors' setting and cad_ose's default
    span = np.ptp(values)
    codes = np.clip(np.floor((values - values.min()) / ((span if span > 0 else top) / top)),
                    0, top).astype(int)
    memory = ContextMemory(3, 7, 15, 0.75, int(series.probationary / 5))
    scores = np.array([memory.step(int(code)) for code in codes])
    scores[:series.probationary] = 0.0  # NAB ignores the probationary period
    return scores


def cached_nab_conditions(series: list[NabSeries], path: Path,
                          conditions: Callable[[NabSeries], np.ndarray] = nab_conditions
                          ) -> list[np.ndarray]:
    """`conditions` (a detector's raw scores as NAB runs it) of every series, kept in the .npz
    file `path` (computed if missing)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {s.name: conditions(s) for s in series}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)

        atomic_write(path, write)
    with np.load(path, allow_pickle=False) as stored:
        return [stored[s.name] for s in series]


def by_group(corpus: list[tuple[str, np.ndarray, np.ndarray]], profile: str) -> dict[str, float]:
    """NAB's score of (group, labels, step scores) triples over the corpus and per group
    (one threshold optimised per group)."""
    scores = {"all": nab_score([(labels, s) for _, labels, s in corpus], profile).score}
    for group in sorted({g for g, _, _ in corpus}):
        part = [(labels, s) for g, labels, s in corpus if g == group]
        if any(labels.any() for labels, _ in part):
            scores[group] = nab_score(part, profile).score
    return scores


def rows(title: str, series: list[NabSeries], evaluation: NabEvaluation,
         conditions: list[np.ndarray]) -> list[str]:
    """The table of one corpus: NAB's conditions (the raw scores `conditions`, per series),
    then oddity's protocol per step score."""
    variants = {"NAB's conditions (whole-file range), raw score":
                [(s.group, s.labels, scores) for s, scores in zip(series, conditions)]}
    for label, steps in (("raw score", "raw"), ("calibrated level, onsets over 100", "level"),
                         ("Numenta's likelihood (short mean 1), onsets over 100", "likelihood")):
        variants[f"oddity's protocol (causal), {label}"] = [
            (r.group, r.labels, r.nab_steps(steps)) for r in evaluation.series]
    table = {label: {profile: by_group(corpus, profile) for profile in PROFILES}
             for label, corpus in variants.items()}
    groups = list(next(iter(table.values()))["standard"])
    lines = [f"## {title}", "", "| run | low FP (all) | low FN (all) | "
             + " | ".join(f"standard: {g}" for g in groups) + " |",
             "|---|---|---|" + "---|" * len(groups)]
    for label, scores in table.items():
        lines.append(f"| {label} | {scores['reward_low_FP_rate']['all']:.1f} | "
                     f"{scores['reward_low_FN_rate']['all']:.1f} | "
                     + " | ".join(f"{scores['standard'][g]:.1f}" for g in groups) + " |")
    print("\n".join(lines), flush=True)
    return lines + [""]


def cached_run(cache: Path, params: dict, series: list[NabSeries],
               detector: str = "cad_ose") -> NabEvaluation:
    """`evaluate_nab` of `detector` with `params` on `series`, kept under `cache` (run if
    missing)."""
    path = cache_path(cache, detector, params)
    if not path.is_file():
        save_arrays(evaluate_nab(detector, params, series, verbose=False), path)
    return load_arrays(path, detector, params)


def group_mean(evaluation: NabEvaluation) -> tuple[float, float]:
    """The raw step score's standard NAB score over the corpus and its mean over the groups."""
    groups = by_group([(r.group, r.labels, r.nab_steps("raw")) for r in evaluation.series],
                      "standard")
    return groups.pop("all"), float(np.mean(list(groups.values())))


def margin_rows(margins: list[float], nab: list[NabSeries], synthetic: list[NabSeries],
                cache: Path, per_kind: int, detector: str = "cad_ose") -> list[str]:
    """The `range_margin` choice of `detector`: per margin, NAB's and the synthetic corpus'
    figures."""
    lines = ["## The coding range: `range_margin`", "",
             ("Rule (the one `benchmarks/series_nab.py` states for step scores): the highest "
              "mean of the NAB group mean and the synthetic group mean (standard profile, raw "
              "score, one threshold per group)."), "",
             ("| range_margin | NAB (all) | NAB group mean | synthetic (all) "
              "| synthetic group mean | mean of the group means |"), "|---|---|---|---|---|---|"]
    for margin in margins:
        params = {"range_margin": margin}
        real = group_mean(cached_run(cache, params, nab, detector))
        made = group_mean(cached_run(cache / f"synthetic-{per_kind}", params, synthetic,
                                     detector))
        lines.append(f"| {margin} | {real[0]:.1f} | {real[1]:.1f} | {made[0]:.1f} | "
                     f"{made[1]:.1f} | {(real[1] + made[1]) / 2:.1f} |")
    print("\n".join(lines), flush=True)
    return lines + [""]


def arguments(description: str, margins: list[float]) -> argparse.Namespace:
    """The command line of a NAB-conditions benchmark: data, cache, synthetic corpus size and
    the `range_margin` values to compare (default `margins`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=str(Path(os.environ.get("ODDITY_DATA", "../shared/data"))
                                              / "series" / "nab"))
    parser.add_argument("--cache", default=str(RESULTS / "runs" / "series"))
    parser.add_argument("--synthetic", type=int, default=3, help="series per anomaly kind")
    parser.add_argument("--margins", nargs="*", type=float, default=margins,
                        help="range_margin values to compare (each a run on both corpora)")
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__.splitlines()[0], [0.0, 0.25, 0.5, 1.0, 2.0])
    nab = read_nab(args.data)
    evaluation = load_arrays(cache_path(args.cache, "cad_ose", {}), "cad_ose", {})
    synthetic = synthetic_corpus(args.synthetic)
    made = cached_run(Path(args.cache) / f"synthetic-{args.synthetic}", {}, synthetic)
    lines = ["# CAD OSE on NAB: NAB's running conditions and oddity's causal protocol", "",
             ("Reproduce: `python benchmarks/run_series.py --keep --detectors cad_ose` (saves "
              "the per-series scores), then `python benchmarks/series_cad_ose.py --synthetic "
              f"{args.synthetic} --margins {' '.join(map(str, args.margins))}`."), "",
             "NAB's conditions: each series coded in its whole file's range (NAB hands every "
             "detector the file's minimum and maximum before the run: a look-ahead), memory from "
             "the first step, rest period a fifth of the probationary period, raw scores to "
             "NAB's optimiser: how NAB ran contextOSE, published at "
             + ", ".join(f"{v} ({k})" for k, v in PUBLISHED.items()) + ". oddity's protocol: "
             "the `cad_ose` defaults as `benchmarks/run_series.py` runs them, range from the "
             "probationary history, each step seeing only the past. One threshold per profile "
             "optimised by NAB's optimiser over the corpus ('all') or within each group.", ""]
    lines += rows(f"NAB ({len(nab)} series)", nab, evaluation, cached_nab_conditions(
        nab, Path(args.cache) / "cad_ose-nab-conditions.npz"))
    lines += rows(f"Synthetic ({len(synthetic)} series, `benchmarks/series_nab.py`'s corpus)",
                  synthetic, made, cached_nab_conditions(
                      synthetic, Path(args.cache) / f"synthetic-{args.synthetic}"
                      / "cad_ose-nab-conditions.npz"))
    lines += margin_rows(args.margins, nab, synthetic, Path(args.cache), args.synthetic)
    atomic_write(RESULTS / "series_cad_ose.md",
                 lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
