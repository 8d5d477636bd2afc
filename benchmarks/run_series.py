"""`make bench`: every registered series detector on all NAB series under
$ODDITY_DATA/series/nab (default ../shared/data), written to benchmarks/results/series.{md,json}.

Usage: python benchmarks/run_series.py [--detectors rolling_zscore hypad] [--data DIR] [--keep]
                                      [--cache DIR]

With --cache (default results/runs/series, ignored by git) every series' scores are saved, so
that `benchmarks/series_nab.py` recomputes NAB variants without refitting, and
`--refresh-nab` recomputes the NAB figures of the recorded rows from them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import oddity
from oddity.bench.common import command_line, run_all
from oddity.bench.series import read_results, refresh_nab, run_one, write_results

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
    parser.add_argument("--cache", default=str(RESULTS / "runs" / "series"),
                        help="folder for every series' scores ('' for none)")
    parser.add_argument("--refresh-nab", action="store_true",
                        help="run nothing: recompute the NAB figures of the rows in "
                             "results/series.json from the saved scores and rewrite the tables")
    args = parser.parse_args()
    if args.refresh_nab:
        runs = refresh_nab(read_results(RESULTS), args.cache)
        write_results(runs, RESULTS, json.loads((RESULTS / "series.json").read_text())["command"])
        return 0
    if not (Path(args.data) / "labels" / "combined_windows.json").is_file():
        print(f"no NAB folder at {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = command_line("run_series.py", sys.argv[1:])
    previous = read_results(RESULTS) if args.keep else []
    jobs = [(f"NAB / {detector} {params or ''}",
             lambda detector=detector, params=params: run_one(args.data, detector, params, args.timeout,
                                                             args.cache or None))
            for detector in args.detectors for params in CONFIGS.get(detector, [{}])]
    run_all(jobs, previous, command, lambda runs: write_results(runs, RESULTS, command),
            lambda run: (f"{run.error or run.evaluation.get('overall', {})}  total {run.total_seconds}s"
                         f"  rss {run.peak_rss_gb} GB"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
