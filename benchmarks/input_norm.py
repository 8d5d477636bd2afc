"""Backbone input normalisation: each candidate of `oddity.backbones.INPUT_NORMS` measured for
every detector that uses the backbone, on every shared image set, real test split and synthetic
anomalies on held-out normal training images, for the rule of docs/backbones.md.

Per (dataset, detector, input_norm): the detector (defaults otherwise) is fitted on the
training images less a fixed held-out set (HELD_OUT_FRACTION of them, at most HELD_OUT_MAX,
drawn with seed 0, the same for every candidate); it then scores (1) the real test split and
(2) each held-out image clean and once with a synthetic anomaly of `oddity.image.synth`, the
kinds taken in turn (scratch, spot, cut, CutPaste from another held-out image, DRAEM-style
texture). Image and pixel AUROC of both go to benchmarks/results/input_norm.{json,md}; rows
already there for other cells are kept, so a cell can be re-measured alone.

Usage: python benchmarks/input_norm.py [--datasets bottle magnetic_tile]
       [--detectors patchcore padim gaussian_ad simplenet] [--norms efficientnet imagenet]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import oddity
from oddity.backbones import INPUT_NORMS
from oddity.bench.image import MASK_THRESHOLD, find_datasets
from oddity.core.persistence import atomic_write
from oddity.image.data import ArraySample, read_image, training_samples
from oddity.image.evaluate import evaluate
from oddity.image.synth import cut_paste, draw_defect, texture_anomaly
from oddity.metrics import image_auroc, pixel_auroc

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT_FRACTION = 0.15
HELD_OUT_MAX = 60
SYNTH_KINDS = ("scratch", "spot", "cut", "cutpaste", "texture")
DETECTORS = ("patchcore", "padim", "gaussian_ad", "simplenet")


def held_out_split(samples: list, seed: int = 0) -> tuple[list, list]:
    """(fit samples, held-out samples): a fixed random HELD_OUT_FRACTION, at most HELD_OUT_MAX."""
    count = min(HELD_OUT_MAX, max(2, round(len(samples) * HELD_OUT_FRACTION)))
    order = np.random.default_rng(seed).permutation(len(samples))
    held = set(order[:count].tolist())
    return ([s for i, s in enumerate(samples) if i not in held],
            [s for i, s in enumerate(samples) if i in held])


def synthetic_set(images: list[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each image clean (empty mask), then each with one non-empty synthetic anomaly."""
    rng = np.random.default_rng([seed, 20])
    pixels = list(images)
    masks = [np.zeros(image.shape[:2], dtype=bool) for image in images]
    for i, image in enumerate(images):
        kind = SYNTH_KINDS[i % len(SYNTH_KINDS)]
        mask = np.zeros(0, dtype=bool)
        while not mask.any():
            if kind == "cutpaste":
                changed, mask = cut_paste(image, rng, source=images[(i + 1) % len(images)])
            elif kind == "texture":
                changed, mask = texture_anomaly(image, rng, min_change=0.1)
            else:
                changed, mask = draw_defect(image, kind, rng)
        pixels.append(changed)
        masks.append(mask)
    return pixels, masks


def measure(dataset: Path, detector: str, input_norm: str, max_fit: int | None = None) -> dict:
    """Fit on the non-held-out training images (a fixed random `max_fit` of them when given);
    real-test and synthetic metrics."""
    fit_samples, held = held_out_split(training_samples(dataset))
    if max_fit is not None and len(fit_samples) > max_fit:
        keep = np.sort(np.random.default_rng(1).permutation(len(fit_samples))[:max_fit])
        fit_samples = [fit_samples[i] for i in keep]
    model = oddity.create(detector, input_norm=input_norm)
    start = time.perf_counter()
    model.fit(fit_samples, verbose=False)
    fit_seconds = time.perf_counter() - start
    real = evaluate(model, dataset, mask_threshold=MASK_THRESHOLD, verbose=False).metrics
    pixels, masks = synthetic_set([read_image(s.path) for s in held])
    result = model.score([ArraySample(p, f"synthetic[{i}]") for i, p in enumerate(pixels)], verbose=False)
    labels = np.array([m.any() for m in masks])
    synthetic = {"image_auroc": image_auroc(labels, result.scores),
                 "pixel_auroc": pixel_auroc(result.maps, masks) if result.maps is not None else None}
    return {"dataset": dataset.name, "detector": detector, "input_norm": input_norm,
            "fit_images": len(fit_samples), "held_out": len(held), "fit_seconds": fit_seconds,
            "test_image_auroc": real["image_auroc"], "test_pixel_auroc": real["pixel_auroc"],
            "synth_image_auroc": synthetic["image_auroc"], "synth_pixel_auroc": synthetic["pixel_auroc"]}


METRICS = ("test_image_auroc", "test_pixel_auroc", "synth_image_auroc", "synth_pixel_auroc")


def protocol_scores(rows: list[dict]) -> dict[str, float]:
    """Per input_norm: the mean of every available metric over every (dataset, detector) cell
    measured for all candidates (the decision score of docs/backbones.md)."""
    norms = sorted({r["input_norm"] for r in rows})
    cells = {(r["dataset"], r["detector"]) for r in rows}
    complete = [c for c in sorted(cells) if all(any((r["dataset"], r["detector"], r["input_norm"]) == (*c, n)
                                                    for r in rows) for n in norms)]
    scores = {}
    for norm in norms:
        values = [r[m] for r in rows if r["input_norm"] == norm and (r["dataset"], r["detector"]) in complete
                  for m in METRICS if r[m] is not None]
        scores[norm] = float(np.mean(values)) if values else float("nan")
    return scores


def write(rows: list[dict]) -> None:
    cell = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["# Backbone input normalisation", "",
             "Reproduce: the command of each row (fit on the training images less a fixed held-out "
             f"{HELD_OUT_FRACTION:.0%} (at most {HELD_OUT_MAX}); test = the real test split; synth = "
             "each held-out image clean and with one synthetic anomaly). Rule and reading: docs/backbones.md.", "",
             "| dataset | detector | input_norm | test image AUROC | test pixel AUROC | synth image AUROC | "
             "synth pixel AUROC | fit images | held out | fit s | command |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['detector']} | {r['input_norm']} | "
                     + " | ".join(cell(r[m]) for m in METRICS)
                     + f" | {r['fit_images']} | {r['held_out']} | {r['fit_seconds']:.0f} | `{r.get('command', '')}` |")
    lines += ["", "Decision score (mean of every metric above over the cells measured for every candidate):", ""]
    lines += [f"- {norm}: {score:.4f}" for norm, score in protocol_scores(rows).items()]
    text = "\n".join(lines) + "\n"
    atomic_write(RESULTS / "input_norm.md", lambda tmp: Path(tmp).write_text(text))
    atomic_write(RESULTS / "input_norm.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"))
    parser.add_argument("--datasets", nargs="+", default=None, help="dataset folder names (default: all found)")
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    parser.add_argument("--norms", nargs="+", default=list(INPUT_NORMS))
    parser.add_argument("--max-fit", type=int, default=None,
                        help="fit on a fixed random subset of at most this many images (CPU time)")
    args = parser.parse_args()
    command = "python benchmarks/input_norm.py " + " ".join(sys.argv[1:])
    datasets = [d for d in find_datasets(args.data) if args.datasets is None or d.name in args.datasets]
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    previous = RESULTS / "input_norm.json"
    rows = json.loads(previous.read_text()) if previous.exists() else []
    for dataset in datasets:
        for detector in args.detectors:
            for norm in args.norms:
                row = {**measure(dataset, detector, norm, args.max_fit), "command": command}
                print(json.dumps(row), flush=True)
                key = (row["dataset"], row["detector"], row["input_norm"])
                rows = [r for r in rows if (r["dataset"], r["detector"], r["input_norm"]) != key] + [row]
                write(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
