"""`make bench`: every registered series detector on all NAB series under
$ODDITY_DATA/series/nab (default ../shared/data), written to benchmarks/results/series.{md,json}.

Usage: python benchmarks/run_series.py [--detectors rolling_zscore hypad] [--data DIR] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import oddity
from oddity.bench.series import merge_runs, read_results, run_one, write_results

RESULTS = Path(__file__).resolve().parent / "results"
# Benchmark settings per detector: the defaults unless a row says otherwise. The one-shot
# threshold rows show what online calibration changes.
CONFIGS: dict[str, list[dict]] = {"window_iforest": [{}, {"calibration": "fixed"}],
                                  "xgb_forecast": [{}, {"calibration": "fixed"}]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "series" / "nab"
    parser.add_argument("--data", default=str(default_data), help="NAB folder (data/, labels/)")
    parser.add_argument("--detectors", nargs="+", default=oddity.list_detectors("series"))
    parser.add_argument("--keep", action="store_true",
                        help="keep the other rows already in results/series.json")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per detector")
    args = parser.parse_args()
    if not (Path(args.data) / "labels" / "combined_windows.json").is_file():
        print(f"no NAB folder at {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = ("make bench" if len(sys.argv) == 1 else
               "python benchmarks/run_series.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    previous = read_results(RESULTS) if args.keep else []
    runs: list = []
    for detector in args.detectors:
        for params in CONFIGS.get(detector, [{}]):
            print(f"NAB / {detector} {params or ''} ...", flush=True)
            run = run_one(args.data, detector, params, args.timeout)
            run.command = command
            overall = run.evaluation.get("overall", {})
            print(f"  {run.error or overall}  total {run.total_seconds}s  rss {run.peak_rss_gb} GB"
                  f"  load {run.load_average}", flush=True)
            runs.append(run)
            write_results(merge_runs(previous, runs), RESULTS, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
