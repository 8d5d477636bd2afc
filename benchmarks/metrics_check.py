"""Speed and agreement check of `oddity.metrics` against reference implementations.

1. Speed of pixel AUROC, AUPRO and AUPIMO on 83 synthetic 512x512 maps with blob masks.
2. AUPRO against an independent re-implementation of the MVTec AD evaluation algorithm
   (argsort of all pixels, per-pixel FPR/PRO increments, cumulative sums), pixel AUROC against
   scikit-learn.
3. AUPIMO against anomalib 2.7.0's `aupimo_scores` (its pure torch/numpy PIMO modules, taken
   from the PyPI wheel with `pip download --no-deps` and run in a subprocess; not installed).
4. PATE and PATE-F1 against the authors' PyPI package `pate` 0.1.1, installed into its own
   virtual environment (it pins old numpy/scikit-learn), on synthetic NAB-style series and on
   the real NAB series under `${ODDITY_DATA:-../shared/data}/series/nab` when present.

Writes benchmarks/results/metrics.md. Reference steps that cannot be set up are skipped with
a message. Run from the repository root:

    .venv/bin/python benchmarks/metrics_check.py [--nab-max-length 4100] [--skip-references]
"""
from __future__ import annotations

import argparse
import bisect
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from oddity.metrics import aupimo, aupro, pate, pixel_auroc

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "metrics.md"
PATE_VENV = Path(tempfile.gettempdir()) / "oddity-pate-venv"
ANOMALIB_DIR = Path(tempfile.gettempdir()) / "oddity-anomalib-ref"
ANOMALIB_WHEEL = "anomalib==2.7.0"
PIMO_MODULES = ("_validate", "binary_classification_curve", "functional", "utils")


def synthetic_maps(seed: int, dtype=np.float32, images: int = 83, normal: int = 20,
                   size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random maps with elliptic blob masks on all but the first `normal` images."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((images, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    for mask in masks[normal:]:
        for _ in range(rng.integers(1, 4)):
            (cy, cx), (ry, rx) = rng.integers(0, size, 2), rng.integers(2, 40, 2)
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    maps = ndimage.gaussian_filter(rng.random(masks.shape), (0, 3, 3))
    return (maps + 0.06 * masks * rng.random(masks.shape)).astype(dtype), masks


def timed(fn, *args, repeat: int = 3, **kwargs):
    """Result of `fn` and its median wall time over `repeat` runs."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return result, float(np.median(times))


def mvtec_style_aupro(maps: np.ndarray, masks: np.ndarray, limit: float = 0.3) -> float:
    """The MVTec AD evaluation's algorithm, re-implemented: every pixel adds 1/#normal to the
    FPR or 1/(#regions * region size) to the PRO; argsort all pixels by descending score,
    cumulate, keep the last point of each tie group, and integrate with a bisect-interpolated
    trapezoid up to `limit` (float64 throughout, where the original casts FPRs to float32)."""
    fp_change, pro_change = np.zeros(masks.shape), np.zeros(masks.shape)
    regions = 0
    for i, mask in enumerate(masks):
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += count
        fp_change[i][labels == 0] = 1
        sizes = np.bincount(labels.ravel())
        pro_change[i][labels > 0] = 1.0 / sizes[labels[labels > 0]]
    fp_change /= fp_change.sum()
    pro_change /= regions
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    scores = maps.ravel()[order]
    fpr, pro = np.cumsum(fp_change.ravel()[order]), np.cumsum(pro_change.ravel()[order])
    keep = np.append(np.diff(scores) != 0, True)
    x = np.concatenate(([0.0], fpr[keep], [1.0]))
    y = np.concatenate(([0.0], pro[keep], [1.0]))
    correction = 0.0
    if limit not in x:
        i = bisect.bisect(x, limit)
        y_lim = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1])
        correction = 0.5 * (y_lim + y[i - 1]) * (limit - x[i - 1])
    inside = x <= limit
    x, y = x[inside], y[inside]
    return float((np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)) + correction) / limit)


ANOMALIB_RUNNER = """
import sys, time, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from anomalib_pimo_ref.functional import aupimo_scores
data = np.load(sys.argv[2])
maps, masks = torch.from_numpy(data["maps"]), torch.from_numpy(data["masks"])
start = time.perf_counter()
out = aupimo_scores(maps, masks, num_thresholds=300_000, fpr_bounds=(1e-5, 1e-4))
np.savez(sys.argv[3], aucs=out[4].numpy(), seconds=time.perf_counter() - start)
"""


def anomalib_pimo_package() -> Path | None:
    """Directory holding `anomalib_pimo_ref/` (anomalib's PIMO modules), or None."""
    package = ANOMALIB_DIR / "anomalib_pimo_ref"
    if package.exists():
        return ANOMALIB_DIR
    ANOMALIB_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           ANOMALIB_WHEEL, "-d", str(ANOMALIB_DIR)], capture_output=True)
    wheels = sorted(ANOMALIB_DIR.glob("anomalib-*.whl"))
    if done.returncode or not wheels:
        print("anomalib reference skipped: cannot download the wheel:", done.stderr.decode()[-300:])
        return None
    package.mkdir()
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in PIMO_MODULES:
            source = wheel.read(f"anomalib/metrics/pimo/{name}.py")
            (package / f"{name}.py").write_bytes(source)
    (package / "__init__.py").write_text("")
    return ANOMALIB_DIR


def anomalib_aupimo(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, float] | None:
    """anomalib's per-image AUPIMO and its seconds, or None when unavailable."""
    where = anomalib_pimo_package()
    if where is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(f"{tmp}/in.npz", maps=maps, masks=masks)
        done = subprocess.run([sys.executable, "-c", ANOMALIB_RUNNER, str(where), f"{tmp}/in.npz",
                               f"{tmp}/out.npz"], capture_output=True, text=True)
        if done.returncode:
            print("anomalib reference failed:", done.stderr[-500:])
            return None
        out = np.load(f"{tmp}/out.npz")
        return out["aucs"], float(out["seconds"])


PATE_RUNNER = """
import json, sys, time, numpy as np
from pate.PATE_metric import PATE
data = np.load(sys.argv[1])
names = [n for n in json.loads(sys.argv[3])]
out = {}
for name in names:
    y, s, b = data[name + "/y"], data[name + "/s"], data[name + "/b"]
    start = time.perf_counter()
    value = PATE(y, s, binary_scores=False)
    middle = time.perf_counter()
    out[name] = [value, PATE(y, b, binary_scores=True), middle - start,
                 time.perf_counter() - middle]
json.dump(out, open(sys.argv[2], "w"))
"""


def pate_python() -> Path | None:
    """Python of a virtual environment with `pate` 0.1.1, created on first use, or None."""
    python = PATE_VENV / "bin" / "python"
    if not (python.exists() and subprocess.run([python, "-c", "import pate.PATE_metric"],
                                               capture_output=True).returncode == 0):
        steps = [[sys.executable, "-m", "venv", str(PATE_VENV)],
                 [python, "-m", "pip", "install", "--quiet", "pate==0.1.1"]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode:
                print("PATE reference skipped: cannot install `pate` into", PATE_VENV, ":",
                      done.stderr[-300:])
                return None
    return python


def rolling_score(values: np.ndarray) -> np.ndarray:
    """A simple deterministic anomaly score: |value - local mean| / local spread."""
    mean = ndimage.uniform_filter1d(values, 25, mode="nearest")
    spread = np.sqrt(np.maximum(ndimage.uniform_filter1d((values - mean) ** 2, 200,
                                                       mode="nearest"), 0))
    return np.abs(values - mean) / (spread + 1e-9)


def synthetic_series(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """NAB-style series: daily pattern plus noise, 1-3 windows covering ~10% of the length,
    with a spike or level shift inside each window."""
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(1000, 4000))
    t = np.arange(steps)
    values = np.sin(2 * np.pi * t / 288) + 0.2 * rng.standard_normal(steps)
    labels = np.zeros(steps, int)
    count = int(rng.integers(1, 4))
    width = steps // (10 * count)
    for start in rng.choice(np.arange(width, steps - 2 * width, 2 * width), count, replace=False):
        labels[start:start + width] = 1
        where = start + int(rng.integers(width // 3, 2 * width // 3))
        values[where:where + int(rng.integers(1, width // 3))] += rng.choice([-3, 3])
    return labels, values


def nab_series(max_length: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real NAB series with at least one window and at most `max_length` points."""
    root = Path(os.environ.get("ODDITY_DATA", ROOT.parent / "shared" / "data")) / "series" / "nab"
    windows_file = root / "labels" / "combined_windows.json"
    if not windows_file.exists():
        print("real NAB skipped: not found under", root)
        return {}
    out = {}
    for name, windows in sorted(json.loads(windows_file.read_text()).items()):
        with open(root / "data" / name) as handle:
            rows = list(csv.reader(handle))[1:]
        if not windows or len(rows) > max_length:
            continue
        stamps = np.array([np.datetime64(r[0].replace(" ", "T")) for r in rows])
        labels = np.zeros(len(rows), int)
        for first, last in windows:
            first, last = (np.datetime64(v.replace(" ", "T")) for v in (first, last))
            labels[(stamps >= first) & (stamps <= last)] = 1
        out["nab:" + name] = labels, np.array([float(r[1]) for r in rows])
    return out


def pate_agreement(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Our PATE / PATE-F1 vs the reference package, per series (two worker processes)."""
    python = pate_python()
    if python is None or not series:
        return []
    arrays, ours = {}, {}
    for name, (labels, values) in series.items():
        scores = rolling_score(values)
        binary = (scores >= np.quantile(scores, 0.99)).astype(int)
        arrays.update({name + "/y": labels, name + "/s": scores, name + "/b": binary})
        (value, seconds), (value_f1, seconds_f1) = (
            timed(pate, labels, scores, repeat=1),
            timed(pate, labels, binary, binary_scores=True, repeat=1))
        ours[name] = [value, value_f1, seconds, seconds_f1]
    names = sorted(series, key=lambda n: -series[n][0].size)
    halves = [names[0::2], names[1::2]]
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(f"{tmp}/in.npz", **arrays)
        workers = [subprocess.Popen([python, "-c", PATE_RUNNER, f"{tmp}/in.npz",
                                     f"{tmp}/out{i}.json", json.dumps(half)],
                                    stderr=subprocess.PIPE, text=True)
                   for i, half in enumerate(halves)]
        reference = {}
        for i, worker in enumerate(workers):
            if worker.wait():
                print("PATE reference failed:", worker.stderr.read()[-500:])
                return []
            reference.update(json.loads(Path(f"{tmp}/out{i}.json").read_text()))
    return [{"name": n, "ours": ours[n], "reference": reference[n]} for n in series]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nab-max-length", type=int, default=4100,
                        help="longest real NAB series to check PATE on (the reference package "
                             "needs ~15 s for 4,000 points); 0 skips real NAB")
    parser.add_argument("--skip-references", action="store_true",
                        help="only measure speed and the in-process cross-checks")
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args()
    rows = []

    maps, masks = synthetic_maps(0)
    size = f"83x512x512 {maps.dtype}"
    auroc, auroc_s = timed(pixel_auroc, maps, masks)
    sk_auroc, sk_s = timed(roc_auc_score, masks.ravel(), maps.ravel(), repeat=1)
    rows.append(("pixel AUROC", size, auroc_s, "scikit-learn roc_auc_score", sk_s,
                 abs(auroc - sk_auroc)))
    pro, pro_s = timed(aupro, maps, masks)
    ref_pro, ref_pro_s = timed(mvtec_style_aupro, maps, masks, repeat=1)
    rows.append(("AUPRO (FPR <= 0.3)", size, pro_s, "MVTec AD algorithm, re-implemented",
                 ref_pro_s, abs(pro - ref_pro)))
    print(f"pixel AUROC {auroc:.6f} ({auroc_s:.2f}s), AUPRO {pro:.6f} ({pro_s:.2f}s)")

    for dtype in (np.float32, np.float64):
        maps, masks = synthetic_maps(0, dtype)
        result, aupimo_s = timed(aupimo, maps, masks)
        reference = None if args.skip_references else anomalib_aupimo(maps, masks)
        label = "anomalib 2.7.0 aupimo_scores" if reference else "(reference skipped)"
        diff = float(np.nanmax(np.abs(result.per_image - reference[0]))) if reference else None
        rows.append(("AUPIMO (1e-5, 1e-4), 300k thresholds", f"83x512x512 {maps.dtype}",
                     aupimo_s, label, reference[1] if reference else None, diff))
        print(f"AUPIMO {maps.dtype} mean {result.mean:.6f} ({aupimo_s:.2f}s), diff {diff}")

    if not args.skip_references:
        series = {f"synthetic:{seed}": synthetic_series(seed) for seed in range(12)}
        if args.nab_max_length:
            series.update(nab_series(args.nab_max_length))
        checks = pate_agreement(series)
        for kind, group in (("synthetic", "synthetic NAB-style"), ("nab", "real NAB")):
            chosen = [c for c in checks if c["name"].startswith(kind)]
            if not chosen:
                continue
            steps = [series[c["name"]][0].size for c in chosen]
            data = f"{len(chosen)} {group} series, {min(steps)}-{max(steps)} steps"
            for column, metric in ((0, "PATE (early=delay=100)"), (1, "PATE-F1 (top 1%)")):
                diff = max(abs(c["ours"][column] - c["reference"][column]) for c in chosen)
                rows.append((metric, data, sum(c["ours"][2 + column] for c in chosen),
                             "PyPI pate 0.1.1", sum(c["reference"][2 + column] for c in chosen),
                             diff))
            print(f"PATE {group}: {len(chosen)} series checked")
    write_results(rows, args)


NOTES = [
    "Notes",
    "- Maps: Gaussian-smoothed uniform noise (sigma 3 px) plus up to 0.06 inside 1-3 random "
    "elliptic blobs on 63 of the 83 images (20 normal images), seed 0.",
    "- AUPRO reference: the MVTec AD evaluation's algorithm (argsort of all pixels, per-pixel "
    "FPR and PRO increments, cumulative sums, last point of each tie group, bisect-interpolated "
    "trapezoid), re-implemented in this script; the original casts FPRs to float32, ours and "
    "this re-implementation stay in float64. The test suite also checks AUPRO against a "
    "threshold-by-threshold brute force (tests/metrics).",
    "- AUPIMO reference: anomalib 2.7.0's `anomalib.metrics.pimo` functional modules, read "
    "from the PyPI wheel (`pip download --no-deps`) and run in a subprocess with torch. "
    "anomalib builds its thresholds with `torch.linspace` in the maps' dtype; ours are float64, "
    "so on float32 maps pixels lying exactly on a float32 threshold can count differently "
    "(difference ~1e-7 here); on float64 maps the two agree to rounding.",
    "- PATE reference: `PATE(y, scores)` and `PATE(y, predictions, binary_scores=True)` with "
    "the package defaults (buffers 100/100, 250 percentile thresholds after dropping "
    "intermediate ones), in a separate virtual environment (/tmp/oddity-pate-venv). Scores "
    "are a rolling z-score of each series; predictions are its top 1%. Real NAB labels: every "
    "time stamp inside a window of labels/combined_windows.json.",
]


def write_results(rows: list[tuple], args: argparse.Namespace) -> None:
    """Markdown table of the rows, with the reproducing command."""
    command = "make install && .venv/bin/python benchmarks/metrics_check.py"
    if args.nab_max_length != 4100:
        command += f" --nab-max-length {args.nab_max_length}"
    if args.skip_references:
        command += " --skip-references"
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = [
        "# Metrics: speed and agreement with reference implementations",
        "",
        f"Written by `benchmarks/metrics_check.py` on {os.cpu_count()} CPU cores, numpy "
        f"{np.__version__}. Reproduce with `{command}`.",
        "Seconds are medians of 3 runs for our image metrics, single runs otherwise; PATE rows "
        "give the total over all series of the row.",
        "",
        "| metric | data | ours (s) | reference | reference (s) | max abs diff |",
        "|---|---|---:|---|---:|---:|",
    ]
    for metric, data, ours, reference, ref_s, diff in rows:
        lines.append(f"| {metric} | {data} | {ours:.2f} | {reference} | {fmt(ref_s, '.2f')} | "
                     f"{fmt(diff, '.1e')} |")
    lines += ["", *NOTES]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("wrote", args.output)


if __name__ == "__main__":
    main()
