"""What DRAEM's segmentation network learns over training: focal loss and AUROC on held-out
normal images with simulated anomalies (and, with --test, on the real test split, for
diagnosis only: settings are chosen on the synthetic figures, never on the test split).

The first --held-out training images (in the seed's order) are kept out of training; each is
used clean and with two simulated anomalies drawn exactly as in training (same texture
opacity, Perlin scale and min_change as `oddity.image.detectors.draem`). Every --every steps
the networks are scored on them: the current weights ("last") and, for each --average-from
fraction, the uniform average of the weights since that fraction of the schedule with its
BatchNorm statistics re-estimated, exactly as `average_from` fits it; all from one training
run, so they differ only by the averaging. Rows go to
benchmarks/results/draem_synthetic_val.{md,json} (rows of other --label values are kept).

Usage: python benchmarks/draem_synthetic_val.py --label defaults [--steps 1000 --every 100]
       [--params '{"crop": 64, "batch_size": 8}'] [--average-from 0.3 0.5 0.7] [--test]
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
from torch.optim.swa_utils import AveragedModel

import oddity
from oddity.core.persistence import atomic_write
from oddity.image import geometry
from oddity.image.data import evaluation_samples, read_size, training_samples
from oddity.image.detector import ImageStream
from oddity.image.detectors import draem
from oddity.image.synth import texture_anomaly
from oddity.metrics.classification import image_auroc
from oddity.metrics.segmentation import pixel_auroc

RESULTS = Path(__file__).resolve().parent / "results"
ANOMALIES_PER_IMAGE = 2


def synthetic_validation(images: list[np.ndarray], sources: list[np.ndarray], seed: int
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each image clean and with ANOMALIES_PER_IMAGE non-empty simulated anomalies."""
    rng = np.random.default_rng([seed, 2])
    pixels, masks = [], []
    for image in images:
        pixels.append(image)
        masks.append(np.zeros(image.shape[:2], dtype=bool))
        for _ in range(ANOMALIES_PER_IMAGE):
            mask = np.zeros(0, dtype=bool)
            while not mask.any():
                changed, mask = texture_anomaly(image, rng, sources=sources, opacity=draem.TEXTURE_OPACITY,
                                                max_exponent=draem.PERLIN_MAX_EXPONENT,
                                                min_change=draem.MIN_CHANGE)
            pixels.append(changed)
            masks.append(mask)
    return pixels, masks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images/mvtec_ad/bottle"
    parser.add_argument("--data", default=str(default_data), help="one MVTec-layout category")
    parser.add_argument("--label", required=True, help="name of this configuration in the table")
    parser.add_argument("--params", default="{}", help="DRAEM parameters as JSON (others: defaults)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--held-out", type=int, default=20)
    parser.add_argument("--average-from", nargs="*", type=float, default=[],
                        help="fractions of the schedule from which averaged weights are also scored")
    parser.add_argument("--test", action="store_true", help="also score the test split (diagnosis)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = json.loads(args.params)
    # The training run follows the current weights; the averages are kept here, beside it.
    detector = oddity.create("draem", **{**params, "steps": args.steps, "average_from": None})
    samples = training_samples(args.data)
    order = np.random.default_rng(detector.seed).permutation(len(samples))
    detector.input_shape_ = geometry.fixed_shape([read_size(s.path) for s in samples], detector.image_size)
    cache = [x[0].permute(1, 2, 0).numpy().copy()
             for x in ImageStream(detector, [samples[i] for i in order], False, "load")]
    held_out, fit = cache[:args.held_out], cache[args.held_out:]
    val_pixels, val_masks = synthetic_validation(held_out, fit, detector.seed)
    val_labels = np.array([mask.any() for mask in val_masks])
    test = evaluation_samples(args.data) if args.test else []
    batchnorm_batches = detector._batchnorm_batches(fit)
    starts = {fraction: int(args.steps * fraction) for fraction in args.average_from}
    averages: dict[float, AveragedModel] = {}
    focal_losses: list[float] = []
    rows, start = [], time.time()

    def evaluate(step: int, weights: str) -> None:
        kernel = detector.kernel()
        outputs = [kernel(torch.from_numpy(p).permute(2, 0, 1)[None]) for p in val_pixels]
        scores, maps = [float(s[0]) for s, _ in outputs], [m[0].numpy() for _, m in outputs]
        row = {"label": args.label, "params": params, "step": step, "weights": weights,
               "focal_loss": float(np.mean(focal_losses[-args.every:])),
               "val_image_auroc": image_auroc(val_labels, scores), "val_pixel_auroc": pixel_auroc(maps, val_masks)}
        if test:
            result = detector.score(test, verbose=False, _calibrating=True)  # scored before calibration
            row["test_image_auroc"] = image_auroc([s.label for s in test], result.scores)
            row["test_pixel_auroc"] = pixel_auroc(result.maps, [s.load_mask(m.shape) for s, m in zip(test, result.maps)])
        row["seconds"] = time.time() - start
        row["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
        rows.append(row)
        print(json.dumps(row), flush=True)

    def after_step(step: int, focal: float) -> None:
        """Called after every step with the current networks fitted (eval mode): averages
        them, and every --every steps scores them and each average begun so far."""
        focal_losses.append(focal)
        current = draem.NetworkPair(detector.reconstructive_, detector.discriminative_)
        for fraction, first in starts.items():
            if step > first:  # as `_train`: averaged after each step from index `first` on
                averages.setdefault(fraction, AveragedModel(current)).update_parameters(current)
        if step % args.every:
            return
        evaluate(step, "last")
        for fraction, average in averages.items():
            averaged = draem.averaged_networks(average, batchnorm_batches)
            detector.reconstructive_, detector.discriminative_ = averaged.reconstructive, averaged.discriminative
            evaluate(step, f"average from {fraction:g}")
        detector.reconstructive_, detector.discriminative_ = current.reconstructive, current.discriminative

    detector._train(fit, verbose=False, checkpoint=(1, after_step))
    write(rows, args.label)
    return 0


def write(rows: list[dict], label: str) -> None:
    previous = RESULTS / "draem_synthetic_val.json"
    kept = [row for row in (json.loads(previous.read_text()) if previous.exists() else []) if row["label"] != label]
    rows = kept + rows
    lines = ["# DRAEM: what the segmentation network learns over training", "",
             "Reproduce: `python benchmarks/draem_synthetic_val.py --label LABEL --params PARAMS [--test]` "
             "(bottle; 20 held-out normal images, each clean and with 2 simulated anomalies; test columns "
             "for diagnosis only; seconds include the scoring at each checkpoint; load = /proc/loadavg). "
             "Weights: `last` = the current weights; `average from f` = their uniform average after each step "
             "since f x steps, BatchNorm statistics re-estimated (what DRAEM(average_from=f) fits); "
             "rows before the averaging label predate it and show the current weights.", "",
             "| label | params | step | weights | focal loss | val image AUROC | val pixel AUROC | test image AUROC "
             "| test pixel AUROC | s | load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[k]:.3f}" if k in row else "" for k in
                 ("val_image_auroc", "val_pixel_auroc", "test_image_auroc", "test_pixel_auroc")]
        lines.append(f"| {row['label']} | `{json.dumps(row['params'])}` | {row['step']} | "
                     f"{row.get('weights', 'last')} | {row['focal_loss']:.4f} | {' | '.join(cells)} | {row['seconds']:.0f} | {' '.join(row['loadavg'])} |")
    for name, text in (("draem_synthetic_val.md", "\n".join(lines)),
                       ("draem_synthetic_val.json", json.dumps(rows, indent=2))):
        atomic_write(RESULTS / name, lambda tmp, text=text: Path(tmp).write_text(text + "\n"))


if __name__ == "__main__":
    sys.exit(main())
