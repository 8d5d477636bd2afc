"""EfficientAD student validation: retrain student and autoencoder on a saved model's teacher.

Compares training settings (steps, hard_count, lr, penalty, ...) with the teacher held fixed,
so each comparison costs one training run and no distillation. The saved model's splits are
rebuilt as `fit` made them; student and autoencoder are trained afresh on its training images
(`--set KEY=VALUE` overrides the detector's parameters first), the map quantiles recomputed on
its map hold-out. Validation, no test image used: the held-out normal training images (map and
calibration hold-outs) and one synthetic anomaly on each (texture / cut-paste / drawn, as
benchmarks/efficientad_teacher.py), image and pixel AUROC of the local, global and combined maps.
`--as-saved` validates the saved networks as they are. `--save PATH` writes the retrained model (for benchmarks/efficientad_diagnose.py or
efficientad_discrepancy.py). Rows go to benchmarks/results/efficientad_student.md.

Usage: python benchmarks/efficientad_student.py MODEL.oddity [--data DIR] [--set KEY=VALUE ...] [--save PATH]
       [--as-saved]   (one thread per run is faster than two on a busy 2-core machine: OMP_NUM_THREADS=1)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from efficientad_discrepancy import split_training
from efficientad_rows import append_rows, load_average
from efficientad_teacher import FAMILIES, _array, aurocs, validation_set

import oddity
from oddity.image import geometry
from oddity.image.detectors.efficientad import (
    MAP_PAD,
    MAP_QUANTILES,
    Autoencoder,
    pdn_small,
)

RESULTS = Path(__file__).resolve().parent / "results" / "efficientad_student.md"
HEADER = ("| teacher of | settings | train s | image AUROC local / global / combined "
          "| pixel AUROC local / global / combined | combined per family (image; pixel) | load avg |\n"
          "|---|---|---|---|---|---|---|\n")


def retrain(detector, train: list[torch.Tensor], map_held_out: list[torch.Tensor]) -> float:
    """Fresh student and autoencoder trained as `fit` does; returns the seconds it took."""
    torch.manual_seed(detector.seed)
    generator = torch.Generator().manual_seed(detector.seed)
    channels = int(detector.teacher_mean_.shape[1])
    detector.student_ = pdn_small(detector.width, 2 * channels)
    detector.autoencoder_ = Autoencoder(detector.input_shape_, detector.ae_width, channels)
    start = time.perf_counter()
    detector._train(train, detector._generic(detector.input_shape_), generator, verbose=True)
    seconds = time.perf_counter() - start
    with torch.inference_mode():
        maps = [detector._raw_maps(x) for x in map_held_out]
    detector.map_quantiles_ = [float(q) for part in zip(*maps)
                               for q in np.quantile(np.concatenate([m.ravel() for m in part]), MAP_QUANTILES)]
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images" / "mvtec_ad" / "bottle"
    parser.add_argument("model", help="a saved efficientad model (.oddity) whose teacher is kept")
    parser.add_argument("--data", default=str(default), help="the MVTec-layout dataset the model was fitted on")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="efficientad parameters")
    parser.add_argument("--save", help="write the retrained model here")
    parser.add_argument("--as-saved", action="store_true", help="validate the saved networks, no retraining")
    args = parser.parse_args()
    detector = oddity.load(args.model)
    params = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    unknown = set(params) - set(detector.get_params())
    if unknown:
        parser.error(f"unknown efficientad parameters: {', '.join(sorted(unknown))}")
    for key, value in params.items():
        setattr(detector, key, value)
    train, map_held_out, calibration = split_training(detector, args.data)
    seconds = 0.0 if args.as_saved else retrain(detector, [detector._model_input(s.load()) for s in train],
                                                [detector._model_input(s.load()) for s in map_held_out])
    if args.save:
        detector.save(args.save)
    held_out = [detector._model_input(s.load()) for s in map_held_out + calibration]
    inputs, masks, families = validation_set(held_out, [_array(x) for x in held_out[:10]], detector.seed)
    results = {name: ([], []) for name in ("local", "global", "combined")}
    with torch.inference_mode():
        for x in inputs:
            local, global_ = detector._normalised_maps(x)
            for name, cells in zip(results, (local, global_, 0.5 * (local + global_))):
                results[name][0].append(float(cells[MAP_PAD:-MAP_PAD, MAP_PAD:-MAP_PAD].max()))
                results[name][1].append(geometry.patch_map_to_image(cells, tuple(x.shape[-2:]), tuple(x.shape[-2:]),
                                                                    detector.smoothing_sigma))
    figures = {name: aurocs(np.array(scores), maps, masks, families) for name, (scores, maps) in results.items()}
    load = load_average()
    image = " / ".join(f"{figures[n][0][0]:.3f}" for n in results)
    pixel = " / ".join(f"{figures[n][1][0]:.3f}" for n in results)
    family = ", ".join(f"{f} {i:.2f}; {p:.2f}" for f, i, p in
                       zip(FAMILIES, figures["combined"][0][1:], figures["combined"][1][1:]))
    settings = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    settings += " (as saved: the fit's own student)" if args.as_saved else ""
    row = f"| {Path(args.model).name} | {settings} | {seconds:.0f} | {image} | {pixel} | {family} | {load} |\n"
    append_rows(RESULTS, "# EfficientAD student validation\n\n" + HEADER, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
