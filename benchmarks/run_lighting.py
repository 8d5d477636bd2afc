"""Lighting benchmark: each image detector fitted once per MVTec-layout dataset under
$ODDITY_DATA (default ../shared/data/images), its normal test images scored under global
brightness, contrast, gamma and white-balance shifts (`oddity.bench.lighting`); writes
benchmarks/results/lighting.{md,json}, keeping rows of other cells already there.

Usage: python benchmarks/run_lighting.py [--detectors patchcore padim gaussian_ad]
       [--settings defaults per_image_contrast=true fit_jitter=0.2] [--datasets bottle]
       [--max-fit N] [--max-test N] [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from oddity.bench.common import (
    candidate_settings,
    command_line,
    merging_writer,
    run_all,
)
from oddity.bench.image import find_datasets
from oddity.bench.lighting import LightingRun, markdown_table, run_one

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder searched for MVTec-layout datasets")
    parser.add_argument("--datasets", nargs="+", default=None, help="dataset folder names (default: all found)")
    parser.add_argument("--detectors", nargs="+", default=["patchcore", "padim", "gaussian_ad"])
    parser.add_argument("--settings", nargs="+", default=["defaults"],
                        help='settings per run: "defaults" or "name=value,name=value"')
    parser.add_argument("--max-fit", type=int, default=None, help="fit on a fixed random subset of at most this many images")
    parser.add_argument("--max-test", type=int, default=None,
                        help="score a fixed random subset of at most this many normal and as many defective test images")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per (dataset, detector, settings) run")
    args = parser.parse_args()
    datasets = [d for d in find_datasets(args.data) if args.datasets is None or d.name in args.datasets]
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = command_line("run_lighting.py", sys.argv[1:], make_target=None)
    jobs = [(f"{dataset.name} / {detector} {text}",
             lambda dataset=dataset, detector=detector, text=text: run_one(
                 dataset, detector, candidate_settings(text), args.max_fit, args.max_test, args.timeout))
            for dataset in datasets for detector in args.detectors for text in args.settings]
    run_all(jobs, [], command, merging_writer(RESULTS, "lighting", LightingRun, markdown_table),
            lambda run: run.error or {name: (round(v["fpr"], 3), round(v["image_auroc"], 3))
                                      for name, v in run.shifts.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
