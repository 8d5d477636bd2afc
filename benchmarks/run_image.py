"""`make bench`: fit and evaluate the image detectors on every MVTec-layout dataset found under
$ODDITY_DATA (default ../shared/data/images) and write benchmarks/results/image.{md,json}.

Usage: python benchmarks/run_image.py [--detectors patchcore padim] [--data DIR] [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from oddity.bench.image import find_datasets, run_one, write_results

RESULTS = Path(__file__).resolve().parent / "results"
# Benchmark settings per detector: the defaults unless a row says otherwise.
CONFIGS: dict[str, list[dict]] = {
    "patchcore": [{}],
    "padim": [{}],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder searched for MVTec-layout datasets")
    parser.add_argument("--detectors", nargs="+", default=list(CONFIGS))
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per (dataset, detector) run")
    args = parser.parse_args()
    datasets = find_datasets(args.data)
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    runs = []
    for dataset in datasets:
        for detector in args.detectors:
            for params in CONFIGS.get(detector, [{}]):
                print(f"{dataset.name} / {detector} {params or ''} ...", flush=True)
                run = run_one(dataset, detector, params, args.timeout)
                print(f"  {run.error or run.metrics}  fit {run.fit_seconds}s  rss {run.peak_rss_gb} GB", flush=True)
                runs.append(run)
                write_results(runs, RESULTS, "make bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
