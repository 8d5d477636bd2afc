"""A trained detector's fit-to-fit spread: fit one category at the default settings with
several seeds (fresh process per run, as `run_image.py`) and write
benchmarks/results/<detector>_seeds.{md,json} with each seed's figures and their mean,
standard deviation and range. For detectors whose figures move from fit to fit (DRAEM,
EfficientAD), one fit's row says little about the next.

The default seed (0) is the row that `run_image.py` measured (results/image.json, default
settings), taken as it is rather than fitted twice; this script fits the other seeds.
The seed draws the weights, the training batches, the simulated anomalies and which
training images are held out for threshold calibration.

Usage: python benchmarks/seeds.py DETECTOR [--data DIR/bottle] [--seeds 1 2] [--set KEY=VALUE ...]
(rows of other seeds already in <detector>_seeds.json are kept; `--seeds` alone only rebuilds
the table, e.g. after `run_image.py` re-measured seed 0). With `--set` (settings other than the
defaults, e.g. `--set steps=1000 --seeds 0 1 2`) every seed is fitted here and the results go to
<detector>_seeds-KEY=VALUE.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from oddity.bench.image import read_results, run_one
from oddity.core.persistence import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def row(seed: int, metrics: dict, fit_seconds: float | None, error: str | None, source: str) -> dict:
    return {"seed": seed, **{key: metrics.get(key) for key in METRICS}, "fit_seconds": fit_seconds,
            "error": error, "source": source}


def runner_row(detector: str, data: Path) -> dict | None:
    """The detector's default-settings row of results/image.json for this dataset (seed 0)."""
    for run in read_results(RESULTS):
        if run.detector == detector and not run.params and Path(run.dataset).name == data.name and not run.error:
            return row(0, run.metrics, run.fit_seconds, None, "run_image.py (image.json)")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images/mvtec_ad/bottle"
    parser.add_argument("detector", help="a registered image detector, e.g. draem")
    parser.add_argument("--data", default=str(default_data), help="one MVTec-layout category")
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--timeout", type=float, default=4800.0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="settings other than the defaults (JSON values)")
    args = parser.parse_args()
    data = Path(args.data)
    settings = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    stem = f"{args.detector}_seeds" + "".join(f"-{key}={value}" for key, value in settings.items())
    rows = []
    for seed in args.seeds:
        run = run_one(data, args.detector, {**settings, "seed": seed}, args.timeout)
        rows.append(row(seed, run.metrics, run.fit_seconds, run.error, "seeds.py"))
        print(rows[-1], flush=True)
    # Read after the fits, so that rows written meanwhile (another seed, the runner's) are kept.
    previous = RESULTS / f"{stem}.json"
    rows += [{key: value for key, value in r.items() if key != "loadavg"}  # a field of older files
             for r in (json.loads(previous.read_text()) if previous.exists() else [])
             if r["seed"] not in args.seeds and (settings or r["seed"] != 0)]
    rows += [r for r in [None if settings else runner_row(args.detector, data)] if r is not None]
    rows.sort(key=lambda r: r["seed"])
    write(args.detector, settings, stem, rows, data.name, args.timeout)
    return 0


def write(detector: str, settings: dict, stem: str, rows: list[dict], dataset: str, timeout: float) -> None:
    done = [r for r in rows if not r["error"]]
    named = " ".join(f"{key}={json.dumps(value)}" for key, value in settings.items())
    runner = (f"`python benchmarks/run_image.py --keep --detectors {detector} --timeout {timeout:.0f} "
              "--data ../shared/data/images/mvtec_ad` (seed 0) then ")
    lines = [f"# {detector}: fit-to-fit spread over seeds on {dataset} ({named or 'default settings'})", "",
             (f"Reproduce: {'' if settings else runner}"
              f"`python benchmarks/seeds.py {detector} --timeout {timeout:.0f}{' --set ' + named if named else ''} "
              f"--seeds {' '.join(str(r['seed']) for r in rows if r['seed'] or settings)}`."), "",
             "| seed | image AUROC | pixel AUROC | AUPRO | fit s | from |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        cells = ([f"failed: {r['error']}", "", "", ""] if r["error"] else
                 [*(f"{r[key]:.3f}" for key in METRICS), f"{r['fit_seconds']:.0f}"])
        lines.append(f"| {r['seed']} | {' | '.join(cells)} | {r['source']} |")
    if done:
        summary = {key: np.array([r[key] for r in done]) for key in METRICS}
        lines.append("| **mean ± sd (min-max)** | " + " | ".join(
            f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f} ({v.min():.3f}-{v.max():.3f})"
            for v in summary.values()) + f" | | {len(done)} seeds |")
    for name, text in ((f"{stem}.md", "\n".join(lines)), (f"{stem}.json", json.dumps(rows, indent=2))):
        atomic_write(RESULTS / name, lambda tmp, text=text: Path(tmp).write_text(text + "\n"))


if __name__ == "__main__":
    sys.exit(main())
