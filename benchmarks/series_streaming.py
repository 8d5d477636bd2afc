"""Streaming latency: `SeriesDetector.update` one row at a time and in blocks of 100 rows.

Each light detector is fitted on the probationary period of NAB's realKnownCause/nyc_taxi.csv
(${ODDITY_DATA:-../shared/data}/series/nab) and then fed the next `--steps` rows. Writes
benchmarks/results/series_streaming.md with steps per second, the median and 99th percentile
of the per-call latency.

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
DETECTORS = ("rolling_zscore", "window_iforest", "xgb_forecast")
SERIES = "realKnownCause/nyc_taxi.csv"


def timed_updates(detector, rows: np.ndarray, block: int) -> np.ndarray:
    """Seconds per `update` call over `rows`, `block` rows per call."""
    seconds = []
    for start in range(0, len(rows), block):
        begin = time.perf_counter()
        detector.update(rows[start:start + block])
        seconds.append(time.perf_counter() - begin)
    return np.array(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "series" / "nab"
    nab = next(s for s in read_nab(data) if s.name == SERIES)
    stream = nab.frame.to_numpy()[nab.probationary:nab.probationary + args.steps]
    lines = ["# Streaming latency (`SeriesDetector.update`)", "",
             f"Reproduce: `python benchmarks/series_streaming.py --steps {args.steps}` "
             f"(fit on the {nab.probationary}-step probationary period of {SERIES}, then "
             f"{len(stream)} rows; {os.cpu_count()} CPU cores).", "",
             "| detector | rows per call | steps/s | median ms per call | p99 ms per call |",
             "|---|---|---|---|---|"]
    for name in DETECTORS:
        for block in (1, 100):
            detector = oddity.create(name).fit(nab.history, verbose=False)
            seconds = timed_updates(detector, stream, block)
            lines.append(f"| {name} | {block} | {len(stream) / seconds.sum():,.0f} | "
                         f"{1000 * np.median(seconds):.3f} | "
                         f"{1000 * np.quantile(seconds, 0.99):.3f} |")
            print(lines[-1], flush=True)
    atomic_write(RESULTS, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
