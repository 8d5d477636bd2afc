"""Service benchmark: load, crash and baseline on MVTec AD bottle, loopback only.

    ODDITY_DATA=../shared/data python benchmarks/run_service.py [--requests 5000] [--clients 50]

1. Fit PatchCore (1% coreset) on the first `--fit-images` bottle training images.
2. Baseline: the same model scoring the bottle test images in process
   (`detector.predict(paths)`, what `oddity predict` runs, without writing its folder).
3. Load: `oddity serve` in a child process, `--clients` concurrent clients posting one test
   image per request, `--requests` requests in all (the test images in turn); p50/p99
   latency, throughput, failures, and the store checked against the answers
   (`oddity.bench.service.verify_store`: rows == 200 answers, files intact).
4. Crash: a fresh store, the same load killed with SIGKILL once `--kill-after` images are
   stored; the store checked against what was answered, then the server restarted on it.
Results: benchmarks/results/service.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import numpy as np

import oddity
from oddity.bench.service import (crash_run, free_port, load_run, start_server, stop_server,
                                  verify_store)
from oddity.core.persistence import atomic_write


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if seconds else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("ODDITY_DATA", "../shared/data"))
                        / "images" / "mvtec_ad" / "bottle")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--fit-images", type=int, default=60)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--kill-after", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    train = sorted((args.data / "train" / "good").glob("*.png"))[: args.fit_images]
    tests = sorted((args.data / "test").rglob("*.png"))
    if not train or not tests:
        print(f"{args.data}: no MVTec AD bottle images; set ODDITY_DATA", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="oddity-service-bench-"))
    model = work / "bottle.oddity"
    start = time.perf_counter()
    detector = oddity.create("patchcore", image_size=args.image_size, coreset_ratio=0.01, seed=0)
    detector.fit(train, verbose=False).save(model)
    fit_s = time.perf_counter() - start
    print(f"fitted on {len(train)} images in {fit_s:.1f} s", flush=True)

    start = time.perf_counter()
    detector.predict(tests, verbose=False)
    baseline = len(tests) / (time.perf_counter() - start)
    del detector
    print(f"in-process predict: {baseline:.2f} img/s", flush=True)

    payloads = [p.read_bytes() for p in tests]
    images = list(islice(cycle(payloads), args.requests))
    url, files = f"sqlite:///{work / 'load' / 'inspections.sqlite'}", work / "load" / "files"
    port = free_port()
    server = start_server([model], url, files, port, log=work / "load.log")
    try:
        load = load_run(port, "bottle", images, args.clients)
    finally:
        stop_server(server)
    load_check = verify_store(url, files, load.answers)
    latencies = [a.seconds for a in load.answers]
    throughput = len(load.answers) / load.wall_s
    print(f"load: {len(load.answers)} answered, failures {load.failures}, {throughput:.2f} req/s", flush=True)

    crash_url, crash_files = f"sqlite:///{work / 'crash' / 'inspections.sqlite'}", work / "crash" / "files"
    server = start_server([model], crash_url, crash_files, port, log=work / "crash.log")
    crash = crash_run(server, port, "bottle", images, args.clients, args.kill_after)
    crash_check = verify_store(crash_url, crash_files, crash.answers)
    server = start_server([model], crash_url, crash_files, port, log=work / "crash.log")
    after = load_run(port, "bottle", payloads[:5], 1)
    stop_server(server)
    print(f"crash: {len(crash.answers)} answered before the kill, check ok={crash_check.ok}", flush=True)

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "model": {"detector": "patchcore", "image_size": args.image_size, "coreset_ratio": 0.01,
                  "fit_images": len(train), "fit_s": round(fit_s, 1)},
        "baseline_img_per_s": round(baseline, 2), "test_images": len(tests),
        "load": {"clients": args.clients, "requests": load.requests, "answered_200": len(load.answers),
                 "failures": load.failures, "wall_s": round(load.wall_s, 1),
                 "throughput_req_per_s": round(throughput, 2), "vs_predict": round(throughput / baseline, 3),
                 "p50_ms": round(percentile_ms(latencies, 50), 1), "p99_ms": round(percentile_ms(latencies, 99), 1),
                 "rows": load_check.rows, "missing_rows": len(load_check.missing_rows),
                 "wrong_rows": len(load_check.wrong_rows), "rows_with_bad_files": len(load_check.bad_files),
                 "integrity_errors": load_check.integrity_errors},
        "crash": {"answered_before_kill": len(crash.answers), "failed_by_kill": crash.failures,
                  "rows_after_restart": crash_check.rows, "answered_but_missing": len(crash_check.missing_rows),
                  "wrong_rows": len(crash_check.wrong_rows), "rows_with_bad_files": len(crash_check.bad_files),
                  "integrity_errors": crash_check.integrity_errors,
                  "answered_after_restart": len(after.answers)},
        "command": "ODDITY_DATA=../shared/data python benchmarks/run_service.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(args.out / "service.json", lambda tmp: Path(tmp).write_text(text))
    markdown = render(result)
    atomic_write(args.out / "service.md", lambda tmp: Path(tmp).write_text(markdown))
    print(markdown)
    return 0


def render(r: dict) -> str:
    load, crash, m = r["load"], r["crash"], r["model"]
    return f"""# Service benchmark (MVTec AD bottle, loopback)

`{r['command']}` on {r['machine']}.
Model: PatchCore, image size {m['image_size']}, coreset {m['coreset_ratio']:.0%}, fitted on the first
{m['fit_images']} bottle training images ({m['fit_s']} s). Server: `oddity serve` defaults (1 scoring
worker, SQLite WAL store with `synchronous=FULL`, image and map files flushed before each answer).

## Load: {load['clients']} concurrent clients, one image per request

| requests | 200 answers | failed | rows | answered but missing | rows with bad files | p50 ms | p99 ms | req/s | in-process predict img/s | ratio |
|---|---|---|---|---|---|---|---|---|---|---|
| {load['requests']} | {load['answered_200']} | {sum(load['failures'].values())} | {load['rows']} | {load['missing_rows']} | {load['rows_with_bad_files']} | {load['p50_ms']} | {load['p99_ms']} | {load['throughput_req_per_s']} | {r['baseline_img_per_s']} | {load['vs_predict']} |

The baseline is `detector.predict` on the {r['test_images']} bottle test images in one process (what
`oddity predict` runs, without writing its output folder). Latency is what a client waits with
{load['clients']} clients queued on one scoring worker, so p50 is mostly queueing.

## Crash: SIGKILL during the load, then restart

| answered before the kill | failed by the kill | rows after restart | answered but missing | wrong rows | rows with bad files | integrity errors | answered after restart |
|---|---|---|---|---|---|---|---|
| {crash['answered_before_kill']} | {sum(crash['failed_by_kill'].values())} | {crash['rows_after_restart']} | {crash['answered_but_missing']} | {crash['wrong_rows']} | {crash['rows_with_bad_files']} | {len(crash['integrity_errors'])} | {crash['answered_after_restart']} |

Rows beyond the answers are requests committed whose answer the kill cut off (the client saw an
error and may retry; the record is complete).
"""


if __name__ == "__main__":
    sys.exit(main())
