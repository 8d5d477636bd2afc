"""Model-choice benchmark: `oddity fit auto` (`oddity.image.select`) on each MVTec-layout
dataset under $ODDITY_DATA (default ../shared/data/images), every candidate also evaluated on
the real test split (`oddity.bench.select`); writes benchmarks/results/select.{md,json},
keeping rows of other datasets already there.

Usage: python benchmarks/run_select.py [--datasets bottle magnetic_tile] [--max-fit N] [--max-test N]
       [--no-refit] [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from oddity.bench.common import command_line, merging_writer, run_all
from oddity.bench.image import find_datasets
from oddity.bench.select import SelectRun, markdown_table, run_one, summary

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder searched for MVTec-layout datasets")
    parser.add_argument("--datasets", nargs="+", default=None, help="dataset folder names (default: all found)")
    parser.add_argument("--max-fit", type=int, default=None,
                        help="use a fixed random subset of at most this many training images")
    parser.add_argument("--max-test", type=int, default=None,
                        help="score a fixed random subset of at most this many normal and as many defective test images")
    parser.add_argument("--no-refit", action="store_true",
                        help="do not refit the chosen detector on every training image (one fit less)")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per dataset")
    args = parser.parse_args()
    datasets = [d for d in find_datasets(args.data) if args.datasets is None or d.name in args.datasets]
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = command_line("run_select.py", sys.argv[1:], make_target=None)
    jobs = [(dataset.name, lambda dataset=dataset: run_one(dataset, args.max_fit, args.max_test, args.timeout,
                                                              not args.no_refit))
            for dataset in datasets]
    run_all(jobs, [], command, merging_writer(RESULTS, "select", SelectRun, markdown_table),
            lambda run: run.error or summary(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
