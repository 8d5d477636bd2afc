"""EfficientAD teacher validation: how well a distilled teacher separates synthetic anomalies.

Judges the teacher distillation alone, without touching a test set: the normal training images
of an MVTec-layout dataset are split (seeded) into `--held-out` validation images and the rest;
the teacher is distilled exactly as `fit` does (the detector's own pool: training images, their
anomalous copies, generic images, per the parameters given) on the rest, then a PatchCore-like
nearest-neighbour score on its normalised outputs (memory bank: `--bank` random output vectors of
the distillation's training images, exact L2 search with faiss) scores the held-out images and
one anomalous copy of each, in three families: DRAEM-like Perlin-mask foreign texture, small
cut-paste patches and drawn defects (scratch, spot, cut). `--lite0` scores the backbone features
the teacher imitates instead (the upper bound). Also reports, per backbone layer, the mean squared
correlation of teacher and target channels on held-out images (how much of each layer the PDN can
express). Rows are appended to benchmarks/results/efficientad_teacher.md with the load average.

The validation anomalies use their own seed, and cut-paste patches and drawn defects come from
generators that the distillation pool does not use (its cut-paste copies take large patches of
other images), so a teacher is not judged on the very anomalies it was distilled on.

Usage: python benchmarks/efficientad_teacher.py [--data DIR] [--lite0] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from efficientad_rows import append_rows, load_average

import oddity
from oddity.image import geometry
from oddity.image.data import training_samples
from oddity.image.detectors.efficientad import MAP_PAD, distillation_targets, pdn_grid
from oddity.image.features import feature_extractor
from oddity.image.synth import DEFECTS, cut_paste, draw_defect, texture_anomaly
from oddity.metrics import image_auroc, pixel_auroc

RESULTS = Path(__file__).resolve().parent / "results" / "efficientad_teacher.md"
FAMILIES = ("texture", "cut-paste", "drawn")
HEADER = ("| dataset | features | settings | distil s | image AUROC (all / texture / cut-paste / drawn) "
          "| pixel AUROC (all / texture / cut-paste / drawn) | corr^2 per layer | load avg |\n"
          "|---|---|---|---|---|---|---|---|\n")


def _array(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def anomalous(image: np.ndarray, family: str, k: int, sources: list[np.ndarray],
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A validation anomaly of `family` on `image` with at least 30 changed pixels."""
    while True:
        if family == "texture":
            result, mask = texture_anomaly(image, rng, sources=sources, opacity=(0.5, 1.0), min_change=0.05)
        elif family == "cut-paste":
            result, mask = cut_paste(image, rng, area=(0.005, 0.03))
        else:
            result, mask = draw_defect(image, DEFECTS[k % len(DEFECTS)], rng)
        if mask.sum() >= 30:
            return result, mask


def validation_set(held_out: list[torch.Tensor], sources: list[np.ndarray],
                   seed: int) -> tuple[list[torch.Tensor], list[np.ndarray], np.ndarray]:
    """The held-out normal inputs and one anomaly of each (families in turn), with masks and
    family names ("good" for the normal ones)."""
    shape = tuple(held_out[0].shape[-2:])
    rng = np.random.default_rng([seed, 2024])
    inputs, masks, families = list(held_out), [np.zeros(shape, bool)] * len(held_out), ["good"] * len(held_out)
    for k, x in enumerate(held_out):
        family = FAMILIES[k % len(FAMILIES)]
        image, mask = anomalous(_array(x), family, k // len(FAMILIES), sources, rng)
        inputs.append(geometry.to_tensor(image, shape))
        masks.append(mask)
        families.append(family)
    return inputs, masks, np.array(families)


def aurocs(scores: np.ndarray, maps: list[np.ndarray], masks: list[np.ndarray],
           families: np.ndarray) -> tuple[list[float], list[float]]:
    """Image and pixel AUROC over all validation images and per anomaly family (with all normal ones)."""
    labels = (families != "good").astype(int)
    image, pixel = [], []
    for keep in [np.ones(len(families), bool)] + [(families == "good") | (families == f) for f in FAMILIES]:
        image.append(image_auroc(labels[keep], scores[keep]))
        pixel.append(pixel_auroc([m for m, k in zip(maps, keep) if k], [m for m, k in zip(masks, keep) if k]))
    return image, pixel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images" / "mvtec_ad" / "bottle"
    parser.add_argument("--data", default=str(default), help="one MVTec-layout dataset folder")
    parser.add_argument("--held-out", type=int, default=30, help="normal training images kept for validation")
    parser.add_argument("--bank", type=int, default=20000, help="output vectors in the kNN memory bank")
    parser.add_argument("--lite0", action="store_true", help="score the backbone targets, not a teacher")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="efficientad parameters")
    args = parser.parse_args()
    params = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    detector = oddity.create("efficientad", **params)
    pixels = [sample.load() for sample in training_samples(args.data)]
    shape = geometry.fixed_shape([p.shape[:2] for p in pixels], detector.image_size)
    images = [geometry.to_tensor(p, shape) for p in pixels]
    order = np.random.default_rng(detector.seed).permutation(len(images))
    held_out = [images[i] for i in order[:args.held_out]]
    train = [images[i] for i in order[args.held_out:]]

    validation, masks, families = validation_set(held_out, [_array(x) for x in train[:20]], detector.seed)

    extractor = feature_extractor(detector.backbone, detector.layers, detector.input_norm)
    grid = tuple(pdn_grid(s) for s in shape)

    start = time.perf_counter()
    correlation = ""
    if args.lite0:
        features, seconds = (lambda x: distillation_targets(extractor, x)), 0.0
    else:
        torch.manual_seed(detector.seed)
        generator = torch.Generator().manual_seed(detector.seed)
        pool = detector._distillation_pool(train, detector._generic(shape))
        teacher = detector._distill(pool, sum(extractor.channels), generator, verbose=True)
        features, seconds = teacher, time.perf_counter() - start
        with torch.inference_mode():
            out = torch.cat([teacher(x)[0].flatten(1).T for x in held_out])
            target = torch.cat([distillation_targets(extractor, x)[0].flatten(1).T for x in held_out])
        standard = [(v - v.mean(0)) / v.std(0).clamp_min(1e-6) for v in (out, target)]
        r2 = ((standard[0] * standard[1]).mean(0) ** 2).numpy()
        bounds = np.cumsum([0, *extractor.channels])
        correlation = " / ".join(f"{layer} {r2[a:b].mean():.2f}"
                                 for layer, a, b in zip(detector.layers, bounds[:-1], bounds[1:]))
    with torch.inference_mode():
        bank = torch.cat([features(x)[0].flatten(1).T for x in train])
        mean, std = bank.mean(0), bank.std(0).clamp_min(1e-6)
        bank = ((bank - mean) / std).numpy()
        bank = bank[np.random.default_rng(detector.seed).choice(len(bank), min(args.bank, len(bank)), replace=False)]
        index = faiss.IndexFlatL2(bank.shape[1])
        index.add(np.ascontiguousarray(bank))
        scores, maps = [], []
        for x in validation:
            distance, _ = index.search(np.ascontiguousarray(((features(x)[0].flatten(1).T - mean) / std).numpy()), 1)
            cells = np.sqrt(distance[:, 0]).reshape(grid)
            scores.append(float(cells.max()))
            maps.append(geometry.patch_map_to_image(np.pad(cells, MAP_PAD), shape, shape, detector.smoothing_sigma))
    image, pixel = aurocs(np.array(scores), maps, masks, families)
    load = load_average()
    settings = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    row = (f"| {Path(args.data).name} | {'Lite0 targets' if args.lite0 else 'teacher'} | {settings} | "
           f"{seconds:.0f} | {' / '.join(f'{v:.3f}' for v in image)} | {' / '.join(f'{v:.3f}' for v in pixel)} | "
           f"{correlation or '-'} | {load} |\n")
    append_rows(RESULTS, "# EfficientAD teacher validation\n\n" + HEADER, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
