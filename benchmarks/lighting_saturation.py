"""How much of each shared image set's normal test images the lighting benchmark's +20% shifts
clip: brightness x1.2 multiplies and clips at 1, contrast x1.2 spreads about the image mean and
clips at 0 and 1 (`oddity.image.photometric.SHIFTS`). A clipped pixel loses its value, which
per-image standardisation (`per_image_contrast`) cannot give back. Then PatchCore at its
defaults, fitted as `run_lighting.py --max-fit 60` fits it (magnetic tile scored on the same 40
normal test images as `--max-test 40`), scores each normal image as it is and shifted: how its
score rise follows the share of pixels the shift clipped. Writes
benchmarks/results/lighting_saturation.md.
Usage: python benchmarks/lighting_saturation.py [--data DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import oddity
from oddity.bench.image import find_datasets
from oddity.bench.lighting import subsample
from oddity.core.persistence import atomic_write
from oddity.image.data import ArraySample, evaluation_samples, training_samples
from oddity.image.photometric import SHIFTS

RESULTS = Path(__file__).resolve().parent / "results"
FACTOR = np.float32(1.2)
MAX_TEST = {"magnetic_tile": 40}  # normal test images scored, as in the lighting benchmark's runs


def clipped(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """(H, W) masks of the pixels with a channel at a bound: as they are, and newly clipped
    by brightness x1.2 and contrast x1.2 (values the shift pushes past 0 or 1)."""
    mean = np.float32(pixels.mean())
    spread = mean + (pixels - mean) * FACTOR
    return {"white already": (pixels >= 1.0).any(axis=2),
            "brightness +20%": ((pixels * FACTOR > 1.0) & (pixels < 1.0)).any(axis=2),
            "contrast +20%": (((spread > 1.0) & (pixels < 1.0)) | ((spread < 0.0) & (pixels > 0.0))).any(axis=2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder searched for MVTec-layout datasets")
    args = parser.parse_args()
    datasets = find_datasets(args.data)
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    lines = ["# Pixels the +20% lighting shifts clip", "",
             "Reproduce: `python benchmarks/lighting_saturation.py`", "",
             ("All normal test images of each set. Share of pixels (any channel) at white as they are, and "
              "newly clipped (pushed past 0 or 1) by brightness x1.2 and by contrast x1.2 about the image "
              "mean; median and largest share per image; images with more than 1% of their pixels "
              "newly clipped."), "",
             "| dataset | normal images | kind | pixels | median image | largest image | images > 1% |",
             "|---|---|---|---|---|---|---|"]
    for dataset in datasets:
        normal = [s for s in evaluation_samples(dataset) if s.label == 0]
        shares: dict[str, list[float]] = {}
        totals: dict[str, float] = {}
        count = 0
        for sample in normal:
            pixels = sample.load().astype(np.float32)
            count += pixels.shape[0] * pixels.shape[1]
            for kind, mask in clipped(pixels).items():
                shares.setdefault(kind, []).append(float(mask.mean()))
                totals[kind] = totals.get(kind, 0.0) + float(mask.sum())
        for kind, values in shares.items():
            per_image = np.array(values)
            lines.append(f"| {dataset.name} | {len(normal)} | {kind} | {totals[kind] / count:.2%} | "
                         f"{np.median(per_image):.2%} | {per_image.max():.2%} | {(per_image > 0.01).sum()} |")
            print(lines[-1])
    lines += ["", ("PatchCore at its defaults fitted on a fixed random 60 training images (as `run_lighting.py "
                   "--max-fit 60`), on the normal test images of the lighting benchmark's runs: Spearman correlation "
                   "of each image's newly clipped share with its score rise under the shift; mean score rise (in "
                   "units of the image threshold) of the images with at most and more than 1% newly clipped; "
                   "how many of each group the calibrated threshold flags."), "",
              "| dataset | shift | images <= 1% / > 1% clipped | Spearman | mean rise <= 1% / > 1% | flagged <= 1% / > 1% |",
              "|---|---|---|---|---|---|"]
    for dataset in datasets:
        model = oddity.create("patchcore").fit(subsample(training_samples(dataset), 60, seed=1), verbose=False)
        normal = subsample([s for s in evaluation_samples(dataset) if s.label == 0], MAX_TEST.get(dataset.name), seed=2)
        pixels = [s.load().astype(np.float32) for s in normal]
        threshold = model.threshold_.value
        base = model.score([ArraySample(p, f"{i}") for i, p in enumerate(pixels)], verbose=False).scores
        for kind in ("brightness +20%", "contrast +20%"):
            share = np.array([clipped(p)[kind].mean() for p in pixels])
            shifted = model.score([ArraySample(SHIFTS[kind](p), f"{i}") for i, p in enumerate(pixels)],
                                  verbose=False).scores
            rise, many = (shifted - base) / threshold, share > 0.01
            groups = [~many, many]
            mean_rise = " / ".join(f"{rise[g].mean():+.3f}" if g.any() else "-" for g in groups)
            flagged = " / ".join(str(int((shifted[g] > threshold).sum())) for g in groups)
            lines.append(f"| {dataset.name} | {kind} | {(~many).sum()} / {many.sum()} | "
                         f"{spearmanr(share, rise).statistic:.2f} | {mean_rise} | {flagged} |")
            print(lines[-1])
    text = "\n".join(lines) + "\n"
    atomic_write(RESULTS / "lighting_saturation.md", lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
