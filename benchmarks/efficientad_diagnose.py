"""EfficientAD diagnosis: which part of a fitted model finds the defects of a test set.

Scores the test split of an MVTec-layout dataset with a saved EfficientAD and prints image /
pixel AUROC of
- the local (student-teacher) map alone, the global (autoencoder-student) map alone and their
  average (the detector's own map), each normalised, padded, smoothed and resized exactly as
  the detector does;
- a PatchCore-like nearest-neighbour score on the teacher's normalised outputs (memory bank:
  `--bank` random output vectors of the training images, exact L2 search with faiss), which
  says how good the distilled teacher is as a feature space, whatever the student learned.
Rows are appended to benchmarks/results/efficientad_diagnose.md with the load average.

Usage: python benchmarks/efficientad_diagnose.py MODEL.oddity [--data DIR] [--bank 20000]
       [--fit [KEY=VALUE ...]]   (first fit efficientad on the training split and save it as MODEL)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import faiss
import numpy as np
import torch
from efficientad_rows import append_rows, load_average

import oddity
from oddity.image import geometry
from oddity.image.data import evaluation_samples, training_samples
from oddity.image.detectors.efficientad import MAP_PAD
from oddity.metrics import image_auroc, pixel_auroc

RESULTS = Path(__file__).resolve().parent / "results" / "efficientad_diagnose.md"
HEADER = ("| dataset | model | settings | map | image AUROC | pixel AUROC | load avg |\n"
          "|---|---|---|---|---|---|---|\n")


def teacher_vectors(detector, pixels: np.ndarray) -> torch.Tensor:
    """(cells, channels) normalised teacher outputs of one image."""
    output = detector._teacher(detector._model_input(pixels))[0]
    return output.flatten(1).T.contiguous()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images" / "mvtec_ad" / "bottle"
    parser.add_argument("model", help="a saved efficientad model (.oddity)")
    parser.add_argument("--data", default=str(default), help="one MVTec-layout dataset folder")
    parser.add_argument("--bank", type=int, default=20000, help="teacher vectors in the kNN memory bank")
    parser.add_argument("--fit", nargs="*", metavar="KEY=VALUE", help="fit (these parameters) and save first")
    args = parser.parse_args()
    if args.fit is not None:
        params = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.fit)}
        oddity.create("efficientad", **params).fit(args.data).save(args.model)
    detector = oddity.load(args.model)
    rng = np.random.default_rng(detector.seed)
    with torch.inference_mode():
        bank = torch.cat([teacher_vectors(detector, s.load()) for s in training_samples(args.data)]).numpy()
        bank = bank[rng.choice(len(bank), min(args.bank, len(bank)), replace=False)]
        index = faiss.IndexFlatL2(bank.shape[1])
        index.add(np.ascontiguousarray(bank))
        samples = evaluation_samples(args.data)
        parts: dict[str, tuple[list[float], list[np.ndarray]]] = {
            name: ([], []) for name in ("local", "global", "combined (the detector)", "teacher kNN")}
        masks = []
        for sample in samples:
            pixels = sample.load()
            x = detector._model_input(pixels)
            local, global_ = detector._normalised_maps(x)
            distance, _ = index.search(teacher_vectors(detector, pixels).numpy(), 1)
            grid = np.sqrt(distance[:, 0]).reshape(local.shape[0] - 2 * MAP_PAD, -1)
            knn = np.pad(grid, MAP_PAD)  # distance 0: the padded cells show nothing abnormal
            for name, cells in zip(parts, (local, global_, 0.5 * (local + global_), knn)):
                parts[name][0].append(float(cells[MAP_PAD:-MAP_PAD, MAP_PAD:-MAP_PAD].max()))
                parts[name][1].append(geometry.patch_map_to_image(
                    cells, tuple(x.shape[-2:]), pixels.shape[:2], detector.smoothing_sigma))
            masks.append(sample.load_mask(pixels.shape[:2]))
    labels = np.array([s.label for s in samples])
    load = load_average()
    settings = ", ".join(f"{k}={v}" for k, v in detector.get_params().items()
                         if k in ("width", "steps", "distill_steps", "lr", "precision", "natural_images",
                                   "distill_anomalies"))
    rows = [f"| {Path(args.data).name} | {Path(args.model).name} | {settings} | {name} | "
            f"{image_auroc(labels, np.array(scores)):.3f} | {pixel_auroc(maps, masks):.3f} | {load} |\n"
            for name, (scores, maps) in parts.items()]
    append_rows(RESULTS, "# EfficientAD diagnosis\n\n" + HEADER, "".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
