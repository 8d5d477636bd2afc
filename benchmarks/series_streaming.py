"""Streaming latency: `SeriesDetector.update` one row at a time and in blocks of 100 rows.

Each light detector (and `cad_ose`, whose memory grows as it streams) is fitted on the
probationary period of NAB's realKnownCause/nyc_taxi.csv
(${ODDITY_DATA:-../shared/data}/series/nab) and then fed the next `--steps` rows, as numpy
arrays (rows without times; not for `xgb_forecast`, whose model uses the hour and day of the
week) and as DataFrame rows with their timestamps. The blocks are cut before the clock starts.
Writes benchmarks/results/series_streaming.md with steps per second over the whole run, the
median and 99th percentile of the per-call latency, and the steps per second at the median
latency (rows per call / median), which occasional stalls do not move.

    python benchmarks/series_streaming.py [--steps 2000]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import oddity
from oddity.core.persistence import atomic_write
from oddity.series.data import read_nab

RESULTS = Path(__file__).resolve().parent / "results" / "series_streaming.md"
DETECTORS = ("rolling_zscore", "window_iforest", "xgb_forecast", "cad_ose")
SERIES = "realKnownCause/nyc_taxi.csv"


def timed_updates(detector, blocks: list) -> np.ndarray:
    """Seconds of each `update` call, one per block."""
    seconds = []
    for block in blocks:
        begin = time.perf_counter()
        detector.update(block)
        seconds.append(time.perf_counter() - begin)
    return np.array(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "series" / "nab"
    nab = next(s for s in read_nab(data) if s.name == SERIES)
    frame = nab.frame.iloc[nab.probationary:nab.probationary + args.steps]
    lines = ["# Streaming latency (`SeriesDetector.update`)", "",
             (f"Reproduce: `python benchmarks/series_streaming.py --steps {args.steps}` "
             f"(fit on the {nab.probationary}-step probationary period of {SERIES}, then "
             f"{len(frame)} rows; {os.cpu_count()} CPU cores)."), "",
             ("| detector | rows given as | rows per call | steps/s | median ms per call "
             "| p99 ms per call | steps/s at the median |"), "|---|---|---|---|---|---|---|"]
    for name in DETECTORS:
        for kind in ("array", "DataFrame"):
            if kind == "array" and name == "xgb_forecast":
                continue
            for size in (1, 100):
                detector = oddity.create(name).fit(nab.history, verbose=False)
                blocks = [frame.iloc[a:a + size] if kind == "DataFrame"
                          else frame.to_numpy()[a:a + size] for a in range(0, len(frame), size)]
                seconds = timed_updates(detector, blocks)
                lines.append(f"| {name} | {kind} | {size} | {len(frame) / seconds.sum():,.0f} | "
                             f"{1000 * np.median(seconds):.3f} | "
                             f"{1000 * np.quantile(seconds, 0.99):.3f} | "
                             f"{size / np.median(seconds):,.0f} |")
                print(lines[-1], flush=True)
    atomic_write(RESULTS, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

if __name__ == "__main__":
    main()
