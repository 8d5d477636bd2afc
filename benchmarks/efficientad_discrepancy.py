"""EfficientAD diagnosis: where the student-teacher discrepancy is high, on which images.

Answers "is the local map weak because normal discrepancy is high and noisy (student underfit)
or because defect discrepancy is low (the student imitates the teacher on defects too)?" for a
saved model. Raw local discrepancy (mean over channels of (teacher - student)^2 per PDN cell)
is summarised on the student's training images, held-out normal training images (the map and
calibration hold-outs), the test set's good images, non-defect and defect cells of defective
test images (a cell is a defect cell when over half of its 4 x 4 px footprint at the model
input is in the ground-truth mask) and the generic (penalty) images. Beside it the squared
distance of the teacher's output to its nearest normal output (faiss kNN over `--bank` cells
of the training images, divided by the channel count): the discrepancy a student would show if
it output the nearest normal description, i.e. how much the teacher's output changed.
Rows are appended to benchmarks/results/efficientad_discrepancy.md with the load average.

Usage: python benchmarks/efficientad_discrepancy.py MODEL.oddity [--data DIR] [--bank 20000]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from efficientad_rows import append_rows, load_average

import oddity
from oddity.image.data import evaluation_samples, training_samples
from oddity.metrics import image_auroc

RESULTS = Path(__file__).resolve().parent / "results" / "efficientad_discrepancy.md"
HEADER = ("| model | group | images | cells | local mean | local p99 | local max/image (mean) "
          "| teacher change mean | teacher change p99 | local / change (median per cell) | load avg |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|\n")


def split_training(detector, root: str) -> tuple[list, list, list]:
    """(student's training images, map hold-out, calibration hold-out) as `fit` split them."""
    fit, calibration = detector._split_calibration(training_samples(root))
    order = torch.randperm(len(fit), generator=torch.Generator().manual_seed(detector.seed)).tolist()
    count = max(1, round(len(fit) * detector.map_fraction)) if len(fit) > 1 else 0
    return [fit[i] for i in order[count:]], [fit[i] for i in order[:count]], calibration


def cells(detector, index, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Raw local discrepancy and teacher change (squared kNN distance / channels) per cell."""
    local, _ = detector._raw_maps(x)
    teacher = detector._teacher(x)[0]
    distance, _ = index.search(np.ascontiguousarray(teacher.flatten(1).T.numpy()), 1)
    return local.ravel(), distance[:, 0] / teacher.shape[0]


def defect_cells(mask: np.ndarray, input_hw: tuple[int, int], grid: tuple[int, int], pad: int) -> np.ndarray:
    """Cells (PDN grid) over half covered by the mask, the mask first resized to the input."""
    resized = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=input_hw, mode="area")
    covered = F.adaptive_avg_pool2d(resized, (grid[0] + 2 * pad, grid[1] + 2 * pad))[0, 0]
    return (covered[pad:-pad, pad:-pad] > 0.5).numpy().ravel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images" / "mvtec_ad" / "bottle"
    parser.add_argument("model", help="a saved efficientad model (.oddity)")
    parser.add_argument("--data", default=str(default), help="one MVTec-layout dataset folder")
    parser.add_argument("--bank", type=int, default=20000, help="teacher outputs in the kNN memory bank")
    args = parser.parse_args()
    detector = oddity.load(args.model)
    detector.precision = "float32"
    train, map_held_out, calibration = split_training(detector, args.data)
    held_out = map_held_out + calibration
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    with torch.inference_mode():
        bank = torch.cat([detector._teacher(detector._model_input(s.load()))[0].flatten(1).T for s in train]).numpy()
        rng = np.random.default_rng(detector.seed)
        bank = bank[rng.choice(len(bank), min(args.bank, len(bank)), replace=False)]
        index = faiss.IndexFlatL2(bank.shape[1])
        index.add(np.ascontiguousarray(bank))
        for name, samples in (("train", train), ("held-out normal", held_out)):
            groups[name] = [cells(detector, index, detector._model_input(s.load())) for s in samples]
        groups["generic (penalty)"] = [cells(detector, index, x) for x in detector._generic(detector.input_shape_)]
        groups["test good"], groups["defective: normal cells"], groups["defective: defect cells"] = [], [], []
        image_scores, labels = [], []
        for sample in evaluation_samples(args.data):
            pixels = sample.load()
            x = detector._model_input(pixels)
            local, change = cells(detector, index, x)
            grid = detector._raw_maps(x)[0].shape
            image_scores.append(local.max())
            labels.append(sample.label)
            if sample.label == 0:
                groups["test good"].append((local, change))
                continue
            defect = defect_cells(sample.load_mask(pixels.shape[:2]), tuple(x.shape[-2:]), grid, 4)
            groups["defective: normal cells"].append((local[~defect], change[~defect]))
            if defect.any():
                groups["defective: defect cells"].append((local[defect], change[defect]))
    load = load_average()
    rows = []
    for name, parts in groups.items():
        local = np.concatenate([p[0] for p in parts])
        change = np.concatenate([p[1] for p in parts])
        rows.append(f"| {Path(args.model).name} | {name} | {len(parts)} | {len(local)} | {local.mean():.3f} | "
                    f"{np.quantile(local, 0.99):.3f} | {np.mean([p[0].max() for p in parts]):.3f} | "
                    f"{change.mean():.3f} | {np.quantile(change, 0.99):.3f} | "
                    f"{np.median(local / np.maximum(change, 1e-6)):.2f} | {load} |\n")
    normal_cells = np.concatenate([p[0] for p in groups["test good"] + groups["defective: normal cells"]])
    defect = np.concatenate([p[0] for p in groups["defective: defect cells"]])
    cell_auroc = image_auroc(np.r_[np.zeros(len(normal_cells)), np.ones(len(defect))], np.r_[normal_cells, defect])
    summary = (f"\n{Path(args.model).name}: raw local map, cell AUROC (test defect cells vs all normal test cells) "
               f"{cell_auroc:.3f}, image AUROC of its maximum {image_auroc(np.array(labels), np.array(image_scores)):.3f}\n")
    append_rows(RESULTS, "# EfficientAD discrepancy by image group\n\n" + HEADER, "".join(rows))
    print(summary, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
