"""Deployment benchmark on MVTec bottle: ONNX parity per exportable detector, in-process vs
onnxruntime predict speed for PatchCore, and Dask (local:N) vs the local threaded path.

    PYTHONPATH=src python benchmarks/run_deploy.py [--detectors ...] [--dask-images N]

Parity does not depend on how long a network trained, so EfficientAD, DRAEM and SimpleNet are
fitted with short schedules here (`QUICK`): the figures are about the graph, not accuracy.
Results: benchmarks/results/deploy.json and deploy.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import oddity
from oddity.core.persistence import atomic_write
from oddity.export.engine import ExportedModel
from oddity.export.onnx import export_onnx, parity
from oddity.image.data import evaluation_samples, unlabelled_samples

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ODDITY_DATA", ROOT.parent / "shared" / "data")) / "images" / "mvtec_ad" / "bottle"
RESULTS = ROOT / "benchmarks" / "results"
QUICK = {
    "patchcore": {}, "padim": {}, "gaussian_ad": {},
    "simplenet": {"epochs": 2},
    "efficientad": {"steps": 100, "distill_steps": 20},
    "draem": {"steps": 50},
}


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def parity_row(name: str, work: Path) -> dict:
    """Fit, export (gate on the calibration images), then compare predictions on the test set.
    The fitted model is saved as work/<name>.oddity for the other rows."""
    detector, fit_seconds = timed(oddity.create(name, seed=0, **QUICK[name]).fit, DATA, verbose=False)
    detector.save(work / f"{name}.oddity")
    metadata = export_onnx(detector, work / name, verbose=False)
    test = evaluation_samples(DATA)
    reference, in_process = timed(detector.predict, test, verbose=False)
    exported, onnx_seconds = timed(ExportedModel(work / name).predict, test, verbose=False)
    on_test = parity(reference, exported, detector)
    return {"detector": name, "settings": QUICK[name], "fit_seconds": fit_seconds,
            "gate": metadata["parity"], "test": on_test.to_dict(),
            "labels_identical_on_test": bool(np.array_equal(reference.labels, exported.labels)),
            "test_images": len(test), "in_process_images_per_second": len(test) / in_process,
            "onnx_images_per_second": len(test) / onnx_seconds}


def speed_row(work: Path, repeats: int) -> dict:
    """PatchCore (defaults) end-to-end predict on bottle's test images: in process vs onnxruntime,
    best of `repeats`, plus accuracy of both."""
    from oddity.image.evaluate import evaluate

    detector = oddity.load(work / "patchcore.oddity")  # fitted by the parity row, defaults
    exported = ExportedModel(work / "patchcore")
    test = evaluation_samples(DATA)
    row = {"images": len(test), "repeats": repeats}
    for label, run in (("in_process", detector.predict), ("onnxruntime", exported.predict)):
        seconds = min(timed(run, test, verbose=False)[1] for _ in range(repeats))
        row[f"{label}_images_per_second"] = len(test) / seconds
    metrics = evaluate(detector, DATA, verbose=False).metrics
    row["accuracy"] = {k: metrics.get(k) for k in ("image_auroc", "pixel_auroc", "aupro")}
    return row


def dask_row(work: Path, count: int, workers: int) -> dict:
    """`count` images (bottle test images and their flips, repeated) through the local threaded
    path and through `--dask local:workers`, PatchCore defaults; results compared."""
    from oddity.distributed import dask_client, predict_on_cluster

    folder = work / "dask-images"
    folder.mkdir()
    test = [s.load() for s in evaluation_samples(DATA)]
    views = [v for image in test for v in (image, image[:, ::-1], image[::-1], image[::-1, ::-1])]
    for index in range(count):
        Image.fromarray((views[index % len(views)] * 255).round().astype(np.uint8)).save(folder / f"{index:05d}.png")
    samples = unlabelled_samples([folder])
    model = work / "patchcore.oddity"  # fitted by the parity row, defaults
    local, local_seconds = timed(oddity.load(model).predict, samples, verbose=False)
    with dask_client(f"local:{workers}") as client:
        predict_on_cluster(client, str(model), samples[:16], verbose=False)  # workers load the model
        cluster, dask_seconds = timed(predict_on_cluster, client, str(model), samples, verbose=False)
    same = (cluster.paths == local.paths and bool(np.array_equal(cluster.labels, local.labels))
            and float(np.max(np.abs(cluster.scores - local.scores))) == 0.0)
    return {"images": count, "workers": workers, "local_images_per_second": count / local_seconds,
            "dask_images_per_second": count / dask_seconds, "ratio": local_seconds / dask_seconds,
            "identical": same, "max_score_difference": float(np.max(np.abs(cluster.scores - local.scores)))}


def markdown(results: dict) -> str:
    lines = ["# Deployment: ONNX parity, onnxruntime speed, Dask", "",
             f"MVTec bottle, {results['machine']}; command: `{results['command']}`.",
             "Speed figures were measured on a 2-core machine and are recorded as measured.", "",
             "## Parity (export gate on the calibration images; then the test set)", "",
             "| detector | settings | gate: max rel. score diff | gate: max map diff / pixel thr. | "
             "gate: labels | test: max rel. score diff | test: mask pixels differing | test: labels (ties excluded) | "
             "test: labels identical, raw |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in results["parity"]:
        gate, test = row["gate"], row["test"]
        mapd = "n/a (image-level)" if gate["max_map_difference"] is None else f"{gate['max_map_difference']:.2e}"
        masks = "n/a" if test["mask_pixels_differing"] is None else f"{test['mask_pixels_differing']:.1e}"
        lines.append(f"| {row['detector']} | {row['settings'] or 'defaults'} | {gate['max_score_difference']:.2e} | "
                     f"{mapd} | {gate['labels_identical']} | {test['max_score_difference']:.2e} | {masks} | "
                     f"{test['labels_identical']} | {row['labels_identical_on_test']} |")
    lines += ["", "A tie is a score within the gate's tolerance (1e-4 relative) of the image threshold: "
              "its label can flip on float rounding alone. \"Raw\" compares every label."]
    if "speed" in results:
        speed = results["speed"]
        accuracy = speed["accuracy"]
        lines += ["", "## PatchCore (defaults) predict, end to end, bottle test set", "",
                  f"{speed['images']} images, best of {speed['repeats']}: in process "
                  f"{speed['in_process_images_per_second']:.1f} images/s, onnxruntime "
                  f"{speed['onnxruntime_images_per_second']:.1f} images/s "
                  f"({speed['onnxruntime_images_per_second'] / speed['in_process_images_per_second']:.2f}x). "
                  f"Accuracy (in process): image AUROC {accuracy['image_auroc']:.3f}, pixel AUROC "
                  f"{accuracy['pixel_auroc']:.3f}, AUPRO {accuracy['aupro']:.3f}."]
    if "dask" in results:
        dask = results["dask"]
        lines += ["", "## Dask", "",
                  f"{dask['images']} images (bottle test images and flips), PatchCore defaults: local threaded "
                  f"path {dask['local_images_per_second']:.1f} images/s, `--dask local:{dask['workers']}` "
                  f"{dask['dask_images_per_second']:.1f} images/s ({dask['ratio']:.2f}x the local path); "
                  f"results identical: {dask['identical']} (max score difference {dask['max_score_difference']:.1e}).",
                  "Scaling: each worker scores whole partitions with its own copy of the model (loaded "
                  "once), so throughput grows with workers until the cores are used: on one machine "
                  "the local path already uses every core, and Dask adds partition scheduling and "
                  "result transfer (maps at full image size) on top; across machines it grows with "
                  "their number, bounded by the client's gathering of maps."]
    return "\n".join(lines) + "\n"


def rewrite_page(stem: str = "deploy") -> None:
    """Regenerate the Markdown page from the stored JSON (no measurement)."""
    results = json.loads((RESULTS / f"{stem}.json").read_text(encoding="utf-8"))
    page = markdown(results)
    atomic_write(RESULTS / f"{stem}.md", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=list(QUICK))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dask-images", type=int, default=332)
    parser.add_argument("--out", default="deploy", help="results file stem under benchmarks/results")
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=["speed", "dask"])
    args = parser.parse_args()
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                     "command": "PYTHONPATH=src python benchmarks/run_deploy.py " + " ".join(sys.argv[1:])}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        results["parity"] = []
        for name in args.detectors:
            results["parity"].append(parity_row(name, work))
            print(json.dumps(results["parity"][-1]), flush=True)
        if "speed" not in args.skip:
            results["speed"] = speed_row(work, args.repeats)
            print(json.dumps(results["speed"]), flush=True)
        if "dask" not in args.skip:
            results["dask"] = dask_row(work, args.dask_images, args.dask_workers)
            print(json.dumps(results["dask"]), flush=True)
    text = json.dumps(results, indent=2) + "\n"
    atomic_write(RESULTS / f"{args.out}.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    page = markdown(results)
    atomic_write(RESULTS / f"{args.out}.md", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))


if __name__ == "__main__":
    main()
