"""`make bench`: fit and evaluate the image detectors on every MVTec-layout dataset found under
$ODDITY_DATA (default ../shared/data/images) and write benchmarks/results/image.{md,json},
with each run's plots and light report in benchmarks/results/plots/<dataset>-<detector>/.

Usage: python benchmarks/run_image.py [--detectors patchcore padim] [--data DIR] [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from oddity.bench.image import (find_datasets, merge_runs, read_results, report_folder_name, run_one,
                                write_results)

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
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder searched for MVTec-layout datasets")
    parser.add_argument("--detectors", nargs="+", default=list(CONFIGS))
    parser.add_argument("--keep", action="store_true",
                        help="keep the other rows already in results/image.json (re-measure only these)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per (dataset, detector) run")
    args = parser.parse_args()
    datasets = find_datasets(args.data)
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    # What image.md says to run: `make bench`, or this script with the options given.
    command = ("make bench" if len(sys.argv) == 1 else
               "python benchmarks/run_image.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    previous = read_results(RESULTS) if args.keep else []
    runs: list = []
    for dataset in datasets:
        for detector in args.detectors:
            for params in CONFIGS.get(detector, [{}]):
                print(f"{dataset.name} / {detector} {params or ''} ...", flush=True)
                report_dir = RESULTS / "plots" / report_folder_name(dataset, detector, params)
                run = run_one(dataset, detector, params, args.timeout, report_dir)
                run.command = command
                print(f"  {run.error or run.metrics}  fit {run.fit_seconds}s  rss {run.peak_rss_gb} GB"
                      f"  report {run.report} ({run.report_seconds}s)", flush=True)
                runs.append(run)
                write_results(merge_runs(previous, runs), RESULTS, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
