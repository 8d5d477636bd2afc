"""`make bench`: fit and evaluate the image detectors on every MVTec-layout dataset found under
$ODDITY_DATA (default ../shared/data/images) and write benchmarks/results/image.{md,json},
with each run's plots and light report in benchmarks/results/plots/<dataset>-<detector>/.

Usage: python benchmarks/run_image.py [--detectors patchcore padim] [--data DIR] [--timeout S]
       [--keep] [--defaults-only]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from oddity.bench.common import command_line, run_all
from oddity.bench.image import find_datasets, read_results, report_folder_name, run_one, write_results

RESULTS = Path(__file__).resolve().parent / "results"
# Benchmark settings per detector: the defaults unless a row says otherwise.
CONFIGS: dict[str, list[dict]] = {
    "patchcore": [{}, {"per_image_contrast": True}],
    "padim": [{}, {"per_image_contrast": True}],  # like with like beside PatchCore
    "gaussian_ad": [{}, {"variance_kept": 0.01}],  # defaults; the paper's best setting (NPCA 1%)
    "simplenet": [{}],
    "musc": [{}, {"per_image_contrast": True}],  # zero-shot: the runner scores the test split alone (no fit)
    "draem": [{}],
    "efficientad": [{}],
    "ensemble": [{}],  # PatchCore + PaDiM, rank-normalised
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder searched for MVTec-layout datasets")
    parser.add_argument("--detectors", nargs="+", default=list(CONFIGS))
    parser.add_argument("--defaults-only", action="store_true",
                        help="run each detector with its defaults only (not the other CONFIGS rows)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the other rows already in results/image.json (re-measure only these)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per (dataset, detector) run")
    args = parser.parse_args()
    datasets = find_datasets(args.data)
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = command_line("run_image.py", sys.argv[1:])
    previous = read_results(RESULTS) if args.keep else []
    jobs = [(f"{dataset.name} / {detector} {params or ''}",
             lambda dataset=dataset, detector=detector, params=params: run_one(
                 dataset, detector, params, args.timeout,
                 RESULTS / "plots" / report_folder_name(dataset, detector, params)))
            for dataset in datasets for detector in args.detectors
            for params in ([{}] if args.defaults_only else CONFIGS.get(detector, [{}]))]
    run_all(jobs, previous, command, lambda runs: write_results(runs, RESULTS, command),
            lambda run: (f"{run.error or run.metrics}  fit {run.fit_seconds}s  rss {run.peak_rss_gb} GB"
                         f"  report {run.report} ({run.report_seconds}s)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
