"""DRAEM's trade-off between training steps and AUROC: fit with each step count on one dataset
(fresh process per run, as `run_image.py`) and write benchmarks/results/draem_steps.{md,json}.

Usage: python benchmarks/draem_steps.py [--data DIR/bottle] [--steps 300 1000]
(rows of other step counts already in draem_steps.json are kept; `--steps` alone only
rebuilds the table)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import oddity
from oddity.bench.image import run_one
from oddity.core.persistence import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images/mvtec_ad/bottle"
    parser.add_argument("--data", default=str(default_data), help="one MVTec-layout category")
    parser.add_argument("--steps", nargs="*", type=int, default=[300, 1000])
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    previous = RESULTS / "draem_steps.json"
    rows = [row for row in (json.loads(previous.read_text()) if previous.exists() else [])
            if row["steps"] not in args.steps]  # earlier runs of other step counts are kept
    average_from = oddity.create("draem").average_from  # the default the runs fit with
    for steps in args.steps:
        run = run_one(Path(args.data), "draem", {"steps": steps}, args.timeout)
        m = run.metrics
        rows.append({"steps": steps, "average_from": average_from, "image_auroc": m.get("image_auroc"),
                     "pixel_auroc": m.get("pixel_auroc"), "aupro": m.get("aupro"),
                     "fit_seconds": run.fit_seconds, "error": run.error,
                     "loadavg": Path("/proc/loadavg").read_text().split()[:3]})
        print(rows[-1], flush=True)
    rows.sort(key=lambda row: row["steps"])
    write(rows, Path(args.data).name)
    return 0


def write(rows: list[dict], dataset: str) -> None:
    reproduce = f"python benchmarks/draem_steps.py --steps {' '.join(str(row['steps']) for row in rows)}"
    lines = [f"# DRAEM: training steps against AUROC on {dataset}", "",
             (f"Reproduce: `{reproduce}` (other settings at their defaults; load average = "
              "/proc/loadavg after each run)."), "",
             "| steps | weights | image AUROC | pixel AUROC | AUPRO | fit s | load average |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["error"]:
            cells = [f"failed: {row['error']}", "", "", ""]
        else:
            cells = [f"{row[key]:.3f}" for key in ("image_auroc", "pixel_auroc", "aupro")]
            cells.append(f"{row['fit_seconds']:.0f}")
        weights = (f"average from {row['average_from']:g}" if row.get("average_from") is not None else
                   "last" if "average_from" in row else "last (measured before `average_from` existed)")
        lines.append(f"| {row['steps']} | {weights} | {' | '.join(cells)} | {' '.join(row['loadavg'])} |")
    for name, text in (("draem_steps.md", "\n".join(lines)), ("draem_steps.json", json.dumps(rows, indent=2))):
        atomic_write(RESULTS / name, lambda tmp, text=text: Path(tmp).write_text(text + "\n"))


if __name__ == "__main__":
    sys.exit(main())
