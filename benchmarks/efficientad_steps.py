"""EfficientAD trade-off: training steps against image / pixel AUROC, fit time and predict speed.

Fits `efficientad` with its defaults except `steps` (and whatever `--set key=value` gives) on
one MVTec-layout dataset, once per step count, evaluates each on the test split and writes
benchmarks/results/efficientad_steps.{md,json} (rows merge by settings, so runs can be split).
The load average is recorded beside each timing because the machine is shared, and so is the
fit's CPU time (both cores together), which other processes inflate less than wall time.

Usage: python benchmarks/efficientad_steps.py --steps 150 300 600 1200 [--data DIR] [--set width=64]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import oddity
from oddity.core.persistence import atomic_write
from oddity.image.evaluate import evaluate

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "efficientad_steps"


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def _write(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _markdown(rows: list[dict]) -> str:
    lines = ["# EfficientAD: training steps against accuracy", "",
             ("Reproduce: `python benchmarks/efficientad_steps.py --steps ...` (2 CPU cores, shared: "
              "load average given per row). Everything else at its default; the step count was not "
              "chosen on these test figures."), "",
             "| dataset | settings | steps | image AUROC | pixel AUROC | AUPRO | fit s | fit CPU s | predict img/s | load avg (fit start / end) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: (r["dataset"], r["settings"], r["steps"])):
        lines.append(f"| {row['dataset']} | {row['settings'] or 'defaults'} | {row['steps']} | "
                     f"{row['image_auroc']:.3f} | {row['pixel_auroc']:.3f} | {row['aupro']:.3f} | "
                     f"{row['fit_seconds']:.0f} | {row['fit_cpu_seconds']:.0f} | {row['images_per_second']:.1f} | {row['loadavg']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images" / "mvtec_ad" / "bottle"
    parser.add_argument("--data", default=str(default), help="one MVTec-layout dataset folder")
    parser.add_argument("--steps", type=int, nargs="+", required=True)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other parameters")
    args = parser.parse_args()
    params = {key: _value(value) for key, value in (item.split("=", 1) for item in args.set)}
    settings = ", ".join(f"{k}={v}" for k, v in params.items())
    path = RESULTS / f"{NAME}.json"
    for steps in args.steps:
        detector = oddity.create("efficientad", steps=steps, **params)
        load = _loadavg()
        start, cpu_start = time.perf_counter(), time.process_time()
        detector.fit(args.data, verbose=False)
        fit_seconds, fit_cpu = time.perf_counter() - start, time.process_time() - cpu_start
        metrics = evaluate(detector, args.data, verbose=False).metrics
        row = {"dataset": Path(args.data).name, "settings": settings, "steps": steps,
               "fit_seconds": fit_seconds, "fit_cpu_seconds": fit_cpu, "loadavg": f"{load} / {_loadavg()}",
               **{k: metrics[k] for k in ("image_auroc", "pixel_auroc", "aupro", "images_per_second")}}
        print(row, flush=True)
        rows = json.loads(path.read_text()) if path.exists() else []  # re-read: runs may overlap
        rows = [r for r in rows if (r["dataset"], r["settings"], r["steps"]) != (row["dataset"], settings, steps)]
        rows.append(row)
        _write(path, json.dumps(rows, indent=1))
        _write(RESULTS / f"{NAME}.md", _markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
