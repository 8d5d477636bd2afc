"""Service benchmark: load, crash and baseline on MVTec AD bottle, loopback only.

    ODDITY_DATA=../shared/data python benchmarks/run_service.py [--requests 5000] [--clients 50]

The defaults are the load protocol of the service's targets: 5,000 requests from 50 clients.

1. Fit PatchCore (1% coreset) on the first `--fit-images` bottle training images.
2. Baselines: the same model scoring the bottle test images in process, scores and maps in
   memory (`detector.predict(paths)`) and end to end as `oddity predict` does (the same call
   plus writing its output folder), each before and after the load run (the means are the
   baselines: the machine's speed drifts).
3. Load: `oddity serve` in a child process, `--clients` concurrent clients posting one test
   image per request, `--requests` requests in all (the test images in turn); p50/p99
   latency, throughput, failures, and the store checked against the answers
   (`oddity.bench.service.verify_store`: rows == 200 answers, files intact).
4. Crash: a fresh store, the same load killed with SIGKILL once `--kill-after` images are
   stored; the store checked against what was answered, then the server restarted on it.
5. Bad input: the server restarted with an API key, every entry of
   `oddity.bench.service.bad_requests` sent once; its status against the expected one, and the
   server still scoring with an intact store after all of them.
`--stages` runs some of load, crash, bad-input (all by default); results of stages not run are
kept from the previous benchmarks/results/service.json. Results: service.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import numpy as np

import oddity
import httpx

from oddity.bench.service import (bad_requests, crash_run, free_port, load_run, send, start_server,
                                  stop_server, verify_store)
from oddity.core.persistence import atomic_write
from oddity.image.predictions import write_predictions
from oddity.serve.settings import ServiceSettings

API_KEY = "benchmark-key"


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if seconds else float("nan")


def predict_rate(detector, paths: list[Path], folder: Path | None = None) -> float:
    """Images per second of `detector.predict` on `paths` in this process; with `folder`, also
    writing the prediction folder there as `oddity predict` does (scores.csv, overlays, masks)."""
    start = time.perf_counter()
    prediction = detector.predict(paths, verbose=False)
    if folder is not None:
        write_predictions(folder, prediction)
    return len(paths) / (time.perf_counter() - start)


def server_model_ms(port: int) -> float:
    """Mean model time per image inside the server, from its Prometheus metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("oddity_inference_seconds_")}
    return 1000.0 * values["oddity_inference_seconds_sum"] / max(values["oddity_inference_seconds_count"], 1)


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
    parser.add_argument("--stages", default="load,crash,bad-input")
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

    stages = set(args.stages.split(","))
    previous = args.out / "service.json"
    result = json.loads(previous.read_text()) if previous.is_file() else {}
    for stage in ("load", "crash", "bad_input"):  # each stage keeps the command that measured it
        if stage in result and "command" in result:
            result[stage].setdefault("command", result["command"])
    result.update({
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "model": {"detector": "patchcore", "image_size": args.image_size, "coreset_ratio": 0.01,
                  "fit_images": len(train), "fit_s": round(fit_s, 1)},
        "command": "ODDITY_DATA=../shared/data python benchmarks/run_service.py " + " ".join(sys.argv[1:]),
        "batch": ServiceSettings().batch,
    })
    payloads = [p.read_bytes() for p in tests]
    images = list(islice(cycle(payloads), args.requests))
    port = free_port()
    if "load" in stages:
        before = predict_rate(detector, tests)
        before_cli = predict_rate(detector, tests, work / "predict-before")
        url, files = f"sqlite:///{work / 'load' / 'inspections.sqlite'}", work / "load" / "files"
        server = start_server([model], url, files, port, log=work / "load.log")
        try:
            load = load_run(port, "bottle", images, args.clients)
            model_ms = server_model_ms(port)
        finally:
            stop_server(server)
        after_rate = predict_rate(detector, tests)
        after_cli = predict_rate(detector, tests, work / "predict-after")
        baseline = (before + after_rate) / 2
        baseline_cli = (before_cli + after_cli) / 2
        print(f"in-process predict: {before:.2f} img/s before, {after_rate:.2f} after", flush=True)
        check = verify_store(url, files, load.answers)
        latencies = [a.seconds for a in load.answers]
        throughput = len(load.answers) / load.wall_s
        print(f"load: {len(load.answers)} answered, failures {load.failures}, {throughput:.2f} req/s", flush=True)
        result["baseline_img_per_s"], result["test_images"] = round(baseline, 2), len(tests)
        result["baseline_before_after"] = [round(before, 2), round(after_rate, 2)]
        result["predict_with_folder_img_per_s"] = round(baseline_cli, 2)
        result["predict_with_folder_before_after"] = [round(before_cli, 2), round(after_cli, 2)]
        result["load"] = {
            "command": result["command"], "clients": args.clients, "requests": load.requests,
            "answered_200": len(load.answers),
            "failures": load.failures, "wall_s": round(load.wall_s, 1),
            "throughput_req_per_s": round(throughput, 2), "vs_predict": round(throughput / baseline, 3),
            "vs_predict_with_folder": round(throughput / baseline_cli, 3),
            "p50_ms": round(percentile_ms(latencies, 50), 1), "p99_ms": round(percentile_ms(latencies, 99), 1),
            "rows": check.rows, "missing_rows": len(check.missing_rows), "wrong_rows": len(check.wrong_rows),
            "rows_with_bad_files": len(check.bad_files), "integrity_errors": check.integrity_errors,
            "server_model_ms_per_image": round(model_ms, 1), "baseline_ms_per_image": round(1000 / baseline, 1)}
    del detector
    crash_url, crash_files = f"sqlite:///{work / 'crash' / 'inspections.sqlite'}", work / "crash" / "files"
    if "crash" in stages:
        server = start_server([model], crash_url, crash_files, port, log=work / "crash.log")
        crash = crash_run(server, port, "bottle", images, args.clients, args.kill_after)
        check = verify_store(crash_url, crash_files, crash.answers)
        server = start_server([model], crash_url, crash_files, port, log=work / "crash.log")
        after = load_run(port, "bottle", payloads[:5], 1)
        stop_server(server)
        print(f"crash: {len(crash.answers)} answered before the kill, check ok={check.ok}", flush=True)
        result["crash"] = {
            "command": result["command"], "clients": args.clients, "answered_before_kill": len(crash.answers),
            "failed_by_kill": crash.failures,
            "rows_after_restart": check.rows, "answered_but_missing": len(check.missing_rows),
            "wrong_rows": len(check.wrong_rows), "rows_with_bad_files": len(check.bad_files),
            "integrity_errors": check.integrity_errors, "answered_after_restart": len(after.answers)}
    if "bad-input" in stages:
        server = start_server([model], crash_url, crash_files, port, extra=["--api-key", API_KEY],
                              log=work / "bad.log")
        rows = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                for bad in bad_requests(payloads[0], "bottle", ServiceSettings()):
                    answer = send(client, bad, API_KEY)
                    is_json = answer.headers.get("content-type", "").startswith("application/json")
                    rows.append({"what": bad.what, "expected": bad.status, "got": answer.status_code,
                                 "json_error": is_json and "error" in answer.json()})
                healthy = client.get("/v2/health/ready").status_code == 200
            after = load_run(port, "bottle", payloads[:3], 1, api_key=API_KEY)
        finally:
            stop_server(server)
        check = verify_store(crash_url, crash_files, after.answers)
        result["bad_input"] = {"command": result["command"], "cases": rows,
                               "right_status": sum(r["expected"] == r["got"] for r in rows),
                               "healthy_after": healthy and len(after.answers) == 3 and check.ok}
        print(f"bad input: {result['bad_input']['right_status']} of {len(rows)} right", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(args.out / "service.json", lambda tmp: Path(tmp).write_text(text))
    markdown = render(result)
    atomic_write(args.out / "service.md", lambda tmp: Path(tmp).write_text(markdown))
    print(markdown)
    return 0


def render(r: dict) -> str:
    m = r["model"]
    parts = [f"""# Service benchmark (MVTec AD bottle, loopback)

On {r['machine']}; each section names the command that measured it.
Model: PatchCore, image size {m['image_size']}, coreset {m['coreset_ratio']:.0%}, fitted on the first
{m['fit_images']} bottle training images ({m['fit_s']} s). Server: `oddity serve` defaults (concurrent
requests scored in micro-batches of up to {r.get('batch', '?')} images, SQLite WAL store with `synchronous=FULL`,
image and map files flushed and the batch's rows committed before its answers).
"""]
    if "load" in r:
        load = r["load"]
        parts.append(f"""## Load: {load['clients']} concurrent clients, one image per request

`{load['command']}`

| requests | 200 answers | failed | rows | answered but missing | rows with bad files | p50 ms | p99 ms | req/s | predict, scores only img/s | ratio | `oddity predict` with its folder img/s | ratio |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| {load['requests']} | {load['answered_200']} | {sum(load['failures'].values())} | {load['rows']} | {load['missing_rows']} | {load['rows_with_bad_files']} | {load['p50_ms']} | {load['p99_ms']} | {load['throughput_req_per_s']} | {r['baseline_img_per_s']} | {load['vs_predict']} | {r.get('predict_with_folder_img_per_s', '–')} | {load.get('vs_predict_with_folder', '–')} |

Two baselines on the {r['test_images']} bottle test images in one process, each measured before
and after the load run (the ratios use the means): `detector.predict` alone, scores and maps in
memory ({' and '.join(map(str, r.get('baseline_before_after', [])))} img/s,
{load.get('baseline_ms_per_image', '?')} ms per image), and what `oddity predict` does end to
end, the same call plus writing its output folder (scores.csv, overlay and mask PNGs;
{' and '.join(map(str, r.get('predict_with_folder_before_after', [])))} img/s), which is the like-for-like
comparison for a server that also writes every image's map and record; inside the server under load the model took {load.get('server_model_ms_per_image', '?')} ms per image
(its own metric: a batch's time divided among its images), the rest of each request being upload,
decoding, the map PNG, hashing, flushing files and committing the rows. The clients run on the same
machine as the server. Latency is what a client waits with {load['clients']} clients queued on one
model, so p50 is mostly queueing.
""")
    if "crash" in r:
        crash = r["crash"]
        parts.append(f"""## Crash: SIGKILL during the load ({crash['clients']} clients), then restart

`{crash['command']}`

| answered before the kill | failed by the kill | rows after restart | answered but missing | wrong rows | rows with bad files | integrity errors | answered after restart |
|---|---|---|---|---|---|---|---|
| {crash['answered_before_kill']} | {sum(crash['failed_by_kill'].values())} | {crash['rows_after_restart']} | {crash['answered_but_missing']} | {crash['wrong_rows']} | {crash['rows_with_bad_files']} | {len(crash['integrity_errors'])} | {crash['answered_after_restart']} |

Rows beyond the answers are requests committed whose answer the kill cut off (the client saw an
error and may retry; the record is complete).
""")
    if "bad_input" in r:
        bad = r["bad_input"]
        rows = "\n".join(f"| {c['what']} | {c['expected']} | {c['got']} | {'yes' if c['json_error'] else 'no'} |"
                         for c in bad["cases"])
        parts.append(f"""## Bad input: {bad['right_status']} of {len(bad['cases'])} answered with the expected status

`{bad['command']}`

Server with an API key and default limits; healthy after all of them (still scoring, store
intact): {'yes' if bad['healthy_after'] else 'NO'}.

| request | expected | got | JSON error |
|---|---|---|---|
{rows}
""")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
