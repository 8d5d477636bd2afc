"""Series benchmark: every registered series detector on every NAB series, one fresh process
per (detector, settings), so that peak RSS (`ru_maxrss` of the child) and timings belong to
that run alone.

Protocol (`oddity.series.evaluate`): refit per series on its probationary period (NAB's
min(15%, 750 steps)), score the whole series, decide and measure the rest. Results go to
`series.json` (every number, per series too) and `series.md` (the mean over all series per detector, then one table per
metric with the NAB groups as rows).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oddity.bench.common import cell, run_in_child, write_files

METRIC_NAMES = {"vus_pr": "VUS-PR (threshold-free, buffers 0-100 steps)",
                "event_f1": "event-wise F1 (at the calibrated threshold)",
                "range_f1": "range-based F1 (Tatbul et al., flat bias, at the calibrated "
                            "threshold)",
                "pate": "PATE (threshold-free, early = delay = 100 steps)",
                "fpr": "fraction of normal test steps flagged (realised false-positive rate)"}
# NAB's scoreboard, standard profile: the published figures ours sit beside.
NAB_KEYS = ("nab_level", "nab_likelihood", "nab_calibrated")
SCOREBOARD = (("ARTime", 74.9), ("Numenta HTM", 70.1), ("contextOSE", 69.9), ("KNN CAD", 58.0),
              ("windowed Gaussian", 39.6), ("null", 0.0))


@dataclass
class SeriesRun:
    """One benchmark row: a detector with its settings over all NAB series."""

    detector: str
    params: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)
    total_seconds: float | None = None
    peak_rss_gb: float | None = None
    error: str | None = None
    command: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """(detector, parameters as sorted JSON): what identifies a run."""
        return self.detector, json.dumps(self.params, sort_keys=True)


def worker(nab_root: str, detector: str, params: dict[str, Any],
           cache: str | None = None) -> dict[str, Any]:
    """Evaluate one configuration on all NAB series; called in the child process (see `run_one`).

    Parameters
    ----------
    nab_root : str
        The NAB folder.
    detector : str
        Registered series detector name.
    params : dict
        Detector parameters.
    cache : str, optional
        Save every series' scores to this file (`oddity.series.evaluate.save_arrays`).

    Returns
    -------
    dict
        `evaluation` (`NabEvaluation.to_dict`), `total_seconds` and `peak_rss_gb` (this
        process's peak RSS).
    """
    from oddity.series.data import read_nab
    from oddity.series.evaluate import evaluate_nab, save_arrays

    start = time.perf_counter()
    evaluation = evaluate_nab(detector, params, read_nab(nab_root), verbose=False)
    if cache is not None:
        save_arrays(evaluation, cache)
    return {"evaluation": evaluation.to_dict(), "total_seconds": time.perf_counter() - start,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}


def cache_path(cache_dir: str | os.PathLike, detector: str, params: dict[str, Any]) -> Path:
    """Return where a run's per-series scores are saved: `cache_dir`/detector[-key=value...].npz.

    Parameters
    ----------
    cache_dir : str or path-like
        The cache folder.
    detector : str
        Detector name.
    params : dict
        Settings, in the name sorted by key.

    Returns
    -------
    Path
        The cache file.

    Examples
    --------
    >>> cache_path("cache", "knn", {"window": 32}).as_posix()
    'cache/knn-window=32.npz'
    """
    settings = "".join(f"-{k}={v}" for k, v in sorted(params.items()))
    return Path(cache_dir) / f"{detector}{settings}.npz"


def run_one(nab_root: str | os.PathLike, detector: str, params: dict[str, Any],
            timeout: float, cache_dir: str | os.PathLike | None = None) -> SeriesRun:
    """Evaluate one configuration in a fresh Python process; failures are recorded, not raised.

    Parameters
    ----------
    nab_root : str or path-like
        The NAB folder.
    detector : str
        Registered series detector name.
    params : dict
        Detector parameters.
    timeout : float
        Seconds before the child is stopped and the run recorded as failed.
    cache_dir : str or path-like, optional
        Save every series' scores there (see `cache_path`).

    Returns
    -------
    SeriesRun
        The run, with its measurements or its `error`.
    """
    run = SeriesRun(detector=detector, params=params)
    cache = None if cache_dir is None else str(cache_path(cache_dir, detector, params))
    result, run.error = run_in_child("oddity.bench.series:worker",
                                     [str(nab_root), detector, params, cache], timeout)
    if result is None:
        return run
    run.evaluation, run.total_seconds = result["evaluation"], result["total_seconds"]
    run.peak_rss_gb = result["peak_rss_gb"]
    return run


def _settings(run: SeriesRun) -> str:
    return ", ".join(f"{k}={v}" for k, v in run.params.items()) or "defaults"


def markdown(runs: list[SeriesRun], command: str) -> str:
    """Render series.md: the overall table, NAB scores, FPR quantiles, then per-metric tables.

    The per-metric tables have a row per NAB group.

    Parameters
    ----------
    runs : list of SeriesRun
        The runs, in table order.
    command : str
        The command that reproduces runs that do not record their own.

    Returns
    -------
    str
        The markdown document.
    """
    commands = list(dict.fromkeys(run.command or command for run in runs)) or [command]
    done = [run for run in runs if not run.error]
    lines = [
        "# Time-series benchmark (NAB, 58 series)",
        "",
        f"Reproduce: {' then '.join(f'`{c}`' for c in commands)} (machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores).",
        "",
        "Protocol (NAB's): each detector is refitted on every series' probationary period "
        "(the first min(15%, 750) steps; their last 20% give the held-out scores that start "
        "the calibration) and decides on the remaining steps in time order with online "
        "calibration at a 1% per-step false-positive target (rows with calibration=fixed use "
        "the one-shot threshold). F1 figures and FPR use the detector's own decisions, not the "
        "best threshold in hindsight. Means are over the series where a metric is defined "
        "(the 5 artificialNoAnomaly series only have an FPR). NAB scores are NAB's normalised "
        "corpus scores (null detector 0, perfect 100), two ways (`oddity.series.evaluate`): "
        "(a) under NAB's own protocol, the scoreboard's: one threshold per profile optimised "
        "over the corpus by NAB's optimiser, on a step score in [0, 1] kept at alert onsets "
        "(100 steps) — the calibrated level (`level`) or Numenta's anomaly likelihood of the "
        "raw scores (`likelihood`, `oddity.series.postprocess`) or, for a detector scoring "
        "in [0, 1] (cad_ose), its own score at every step (`raw`, as NAB runs contextOSE); "
        "(b) at the detector's own "
        "calibrated decisions, a flag within 100 steps of the previous one dropped. "
        "Threshold-free metrics use the raw scores. NAB variants per group and on a synthetic "
        "corpus: [series_nab.md](series_nab.md).",
        "",
        "| detector | settings | AUROC | AUPR | VUS-ROC | VUS-PR | PATE | PA-F1 | event-F1 "
        "| range-F1 | FPR mean | FPR median | NAB std (a) level | NAB low FP (a) level "
        "| NAB low FN (a) level | NAB std (a) likelihood | NAB std (b) calibrated "
        "| s/series (fit+score) | total s (with metrics) | peak RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run.error:
            lines.append(f"| {run.detector} | {_settings(run)} | failed: {run.error} "
                         f"|{' |' * 17}")
            continue
        m = run.evaluation["overall"]
        nab = {key: run.evaluation.get(key, {}) for key in NAB_KEYS}
        cells = [cell(m.get(k)) for k in ("point_auroc", "point_aupr", "vus_roc", "vus_pr",
                                            "pate", "pa_f1", "event_f1", "range_f1", "fpr",
                                            "median_fpr")]
        cells += [cell(nab["nab_level"].get(k), 1) for k in ("standard", "reward_low_FP_rate",
                                                              "reward_low_FN_rate")]
        cells += [cell(nab["nab_likelihood"].get("standard"), 1)]
        cells += [cell(nab["nab_calibrated"].get("standard"), 1)]
        lines.append(f"| **{run.detector}** | {_settings(run)} | " + " | ".join(cells) +
                     f" | {cell(m['seconds_per_series'], 2)} | {cell(run.total_seconds, 0)} "
                     f"| {cell(run.peak_rss_gb, 2)} |")
    ours = [(f"oddity {run.detector} ({_settings(run)}), {steps}",
             run.evaluation[f"nab_{steps}"]["standard"],
             run.evaluation.get("nab_calibrated", {}).get("standard"))
            for run in done for steps in ("level", "likelihood", "raw")
            if f"nab_{steps}" in run.evaluation
            # the likelihood reads the raw scores: the calibration setting does not change it
            and not (steps == "likelihood" and "calibration" in run.params)]
    ranked = sorted(ours + [(f"{n} (published)", s, None) for n, s in SCOREBOARD],
                    key=lambda row: -row[1])
    lines += ["", "## NAB score, standard profile, beside NAB's scoreboard", "",
              "(a) is NAB's protocol, the one of the published rows; (b) is the same detector "
              "at its calibrated threshold (no threshold chosen in hindsight), not comparable "
              "with the scoreboard.", "",
              "| detector, step score | NAB standard (a) NAB's protocol "
              "| NAB standard (b) calibrated |", "|---|---|---|"]
    lines += [f"| {name} | {score:.1f} | {cell(calibrated, 1)} |"
              for name, score, calibrated in ranked]
    lines += ["", "## Realised false-positive rate over the 58 series (target 0.01)", "",
              "| detector | settings | min | 25% | median | 75% | max | median / target |",
              "|---|---|---|---|---|---|---|---|"]
    for run in done:
        q = run.evaluation.get("fpr_quantiles")
        if q:
            lines.append(f"| {run.detector} | {_settings(run)} | " +
                         " | ".join(f"{v:.4f}" for v in q) + f" | {q[2] / 0.01:.2f}x |")
    groups = sorted({g for run in done for g in run.evaluation["groups"]})
    for metric, title in METRIC_NAMES.items():
        lines += ["", f"## {title} per NAB group", "",
                  "| group | " + " | ".join(run.detector for run in done) + " |",
                  "|---|" + "---|" * len(done)]
        for group in [*groups, "mean"]:
            cells = [cell((run.evaluation["overall"] if group == "mean" else
                            run.evaluation["groups"].get(group, {})).get(metric)) for run in done]
            name = "**mean**" if group == "mean" else group
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def refresh_nab(runs: list[SeriesRun], cache_dir: str | os.PathLike) -> list[SeriesRun]:
    """Recompute the NAB figures of `runs` from the per-series scores saved in `cache_dir`.

    The NAB figures are a function of those scores alone, so a change of post-processing
    needs no refit. Runs that failed or have no cache file (`cache_path`) are left as they are.

    Parameters
    ----------
    runs : list of SeriesRun
        The runs; their `evaluation` is updated in place.
    cache_dir : str or path-like
        The cache folder.

    Returns
    -------
    list of SeriesRun
        The same runs.
    """
    from oddity.series.evaluate import load_arrays

    for run in runs:
        path = cache_path(cache_dir, run.detector, run.params)
        if not run.error and path.is_file():
            figures = load_arrays(path, run.detector, run.params).nab_figures()
            run.evaluation = {key: value for key, value in run.evaluation.items()
                              if not key.startswith("nab")} | figures
    return runs


def read_results(out_dir: str | os.PathLike) -> list[SeriesRun]:
    """Read the runs recorded in `out_dir`/series.json (none if there is no such file).

    Fields that `SeriesRun` no longer has are dropped.

    Parameters
    ----------
    out_dir : str or path-like
        The results folder.

    Returns
    -------
    list of SeriesRun
        The runs.
    """
    path = Path(out_dir) / "series.json"
    if not path.is_file():
        return []
    fields = {f.name for f in dataclasses.fields(SeriesRun)}  # older files carry fields since dropped
    return [SeriesRun(**{key: value for key, value in record.items() if key in fields})
            for record in json.loads(path.read_text())["runs"]]


def write_results(runs: list[SeriesRun], out_dir: str | os.PathLike, command: str) -> None:
    """Write series.json and series.md into `out_dir` atomically.

    Parameters
    ----------
    runs : list of SeriesRun
        The runs to record.
    out_dir : str or path-like
        The results folder.
    command : str
        The command that reproduces the runs.
    """
    out = Path(out_dir)
    document = {"command": command, "cpu_count": os.cpu_count(),
                "runs": [asdict(run) for run in runs]}
    write_files(out, {"series.json": json.dumps(document, indent=1, allow_nan=False),
                      "series.md": markdown(runs, command)})
