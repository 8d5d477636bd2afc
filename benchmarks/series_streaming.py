"""Streaming latency: `SeriesDetector.update` one row at a time and in blocks of 100 rows.

Each detector (`cad_ose`'s memory grows as it streams) is fitted on the probationary period
of NAB's realKnownCause/nyc_taxi.csv
(${ODDITY_DATA:-../shared/data}/series/nab) and then fed the next `--steps` rows, as numpy
arrays (rows without times; not for `xgb_forecast`, whose model uses the hour and day of the
week) and as DataFrame rows with their timestamps. The blocks are cut before the clock starts.
Writes benchmarks/results/series_streaming.md with steps per second over the whole run, the
median and 99th percentile of the per-call latency, the steps per second at the median
latency (rows per call / median), which occasional stalls do not move, and how far the
streamed scores are from scoring the history and the rows as one series ("identical": bit
for bit). The loops numba compiles are compiled (or loaded from its cache) by `fit`, before
the clock starts.

    OMP_NUM_THREADS=1 python benchmarks/series_streaming.py [--steps 2000]
        [--detectors rolling_zscore,...] [--indicative]

`--indicative` labels the figures "indicative, not a timing run" (taken while other work ran).
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
DETECTORS = ("rolling_zscore", "window_iforest", "xgb_forecast", "cad_ose", "artime", "window_autoencoder",
             "hypad")
SERIES = "realKnownCause/nyc_taxi.csv"


def timed_updates(detector, blocks: list) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of each `update` call, one per block, and the streamed scores."""
    seconds, scores = [], []
    for block in blocks:
        begin = time.perf_counter()
        result = detector.update(block)
        seconds.append(time.perf_counter() - begin)
        scores.append(result.scores)
    return np.array(seconds), np.concatenate(scores)


def batch_difference(streamed: np.ndarray, batch: np.ndarray) -> str:
    """'identical', or the largest relative difference of the streamed scores from the batch
    scores of the same steps."""
    if np.array_equal(streamed, batch):
        return "identical"
    return f"{np.max(np.abs(streamed - batch) / np.maximum(np.abs(batch), 1e-300)):.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--detectors", default=",".join(DETECTORS),
                        help="comma-separated detector names (default: all five)")
    parser.add_argument("--indicative", action="store_true",
                        help="label the figures as indicative (taken while other work ran)")
    args = parser.parse_args()
    data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "series" / "nab"
    nab = next(s for s in read_nab(data) if s.name == SERIES)
    frame = nab.frame.iloc[nab.probationary:nab.probationary + args.steps]
    chosen = "" if args.detectors == ",".join(DETECTORS) else f" --detectors {args.detectors}"
    lines = ["# Streaming latency (`SeriesDetector.update`)", "",
             (f"Reproduce: `OMP_NUM_THREADS=1 python benchmarks/series_streaming.py --steps "
              f"{args.steps}{chosen}` (fit on the {nab.probationary}-step probationary period of "
              f"{SERIES}, then {len(frame)} rows; {os.cpu_count()} CPU cores)."
              + (" Indicative, not a timing run." if args.indicative else "")), "",
             ("| detector | rows given as | rows per call | steps/s | median ms per call "
             "| p99 ms per call | steps/s at the median | streamed vs batch scores |"),
             "|---|---|---|---|---|---|---|---|"]
    whole = nab.frame.iloc[:nab.probationary + len(frame)]
    for name in args.detectors.split(","):
        for kind in ("array", "DataFrame"):
            if kind == "array" and name == "xgb_forecast":
                continue
            for size in (1, 100):
                detector = oddity.create(name).fit(nab.history, verbose=False)
                batch = detector.score(whole).scores[nab.probationary:]
                blocks = [frame.iloc[a:a + size] if kind == "DataFrame"
                          else frame.to_numpy()[a:a + size] for a in range(0, len(frame), size)]
                seconds, streamed = timed_updates(detector, blocks)
                lines.append(f"| {name} | {kind} | {size} | {len(frame) / seconds.sum():,.0f} | "
                             f"{1000 * np.median(seconds):.3f} | "
                             f"{1000 * np.quantile(seconds, 0.99):.3f} | "
                             f"{size / np.median(seconds):,.0f} | "
                             f"{batch_difference(streamed, batch)} |")
                print(lines[-1], flush=True)
    atomic_write(RESULTS, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

if __name__ == "__main__":
    main()
