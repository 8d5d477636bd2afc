"""DRAEM's fit-to-fit spread: fit bottle at the default settings with several seeds (fresh
process per run, as `run_image.py`) and write benchmarks/results/draem_seeds.{md,json} with
each seed's figures and their mean, standard deviation and range.

The default seed (0) is the row that `run_image.py` measured (results/image.json, default
settings), taken as it is rather than fitted twice; this script fits the other seeds.
The seed draws the weights, the training batches, the simulated anomalies and which
training images are held out for threshold calibration.

Usage: python benchmarks/draem_seeds.py [--data DIR/bottle] [--seeds 1 2]
(rows of other seeds already in draem_seeds.json are kept; `--seeds` alone only rebuilds the
table, e.g. after `run_image.py` re-measured seed 0)
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


def row(seed: int, metrics: dict, fit_seconds: float | None, error: str | None, source: str,
        loadavg: list[str] | None) -> dict:
    return {"seed": seed, **{key: metrics.get(key) for key in METRICS}, "fit_seconds": fit_seconds,
            "error": error, "source": source, "loadavg": loadavg}


def runner_row(data: Path) -> dict | None:
    """The default-settings DRAEM row of results/image.json for this dataset (seed 0)."""
    for run in read_results(RESULTS):
        if run.detector == "draem" and not run.params and Path(run.dataset).name == data.name and not run.error:
            return row(0, run.metrics, run.fit_seconds, None, "run_image.py (image.json)", None)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images/mvtec_ad/bottle"
    parser.add_argument("--data", default=str(default_data), help="one MVTec-layout category")
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--timeout", type=float, default=4800.0)
    args = parser.parse_args()
    data = Path(args.data)
    rows = []
    for seed in args.seeds:
        run = run_one(data, "draem", {"seed": seed}, args.timeout)
        rows.append(row(seed, run.metrics, run.fit_seconds, run.error, "draem_seeds.py",
                        Path("/proc/loadavg").read_text().split()[:3]))
        print(rows[-1], flush=True)
    # Read after the fits, so that rows written meanwhile (another seed, the runner's) are kept.
    previous = RESULTS / "draem_seeds.json"
    rows += [r for r in (json.loads(previous.read_text()) if previous.exists() else [])
             if r["seed"] not in args.seeds and r["seed"] != 0]
    rows += [r for r in [runner_row(data)] if r is not None]
    rows.sort(key=lambda r: r["seed"])
    write(rows, data.name)
    return 0


def write(rows: list[dict], dataset: str) -> None:
    done = [r for r in rows if not r["error"]]
    lines = [f"# DRAEM: fit-to-fit spread over seeds on {dataset} (default settings)", "",
             ("Reproduce: `python benchmarks/run_image.py --keep --detectors draem --timeout 4800 "
              "--data ../shared/data/images/mvtec_ad` (seed 0) then "
              f"`python benchmarks/draem_seeds.py --seeds {' '.join(str(r['seed']) for r in rows if r['seed'])}` "
              "(load average = /proc/loadavg after each run; the image.md row records none)."), "",
             "| seed | image AUROC | pixel AUROC | AUPRO | fit s | from | load average |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = ([f"failed: {r['error']}", "", "", ""] if r["error"] else
                 [*(f"{r[key]:.3f}" for key in METRICS), f"{r['fit_seconds']:.0f}"])
        lines.append(f"| {r['seed']} | {' | '.join(cells)} | {r['source']} | {' '.join(r['loadavg'] or ['–'])} |")
    if done:
        summary = {key: np.array([r[key] for r in done]) for key in METRICS}
        lines.append("| **mean ± sd (min-max)** | " + " | ".join(
            f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f} ({v.min():.3f}-{v.max():.3f})"
            for v in summary.values()) + f" | | {len(done)} seeds | |")
    for name, text in (("draem_seeds.md", "\n".join(lines)), ("draem_seeds.json", json.dumps(rows, indent=2))):
        atomic_write(RESULTS / name, lambda tmp, text=text: Path(tmp).write_text(text + "\n"))


if __name__ == "__main__":
    sys.exit(main())
