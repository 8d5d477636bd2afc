"""Choose SimpleNet's `noise_std` on synthetic data, never on a benchmark test set.

Generates three synthetic products (woven, marble, stripes textures with scratch / spot / cut
defects, `oddity.image.synth`), fits SimpleNet with each candidate noise scale and reports image
and pixel AUROC on their synthetic test sets; writes benchmarks/results/simplenet_noise.md.

Usage: python benchmarks/simplenet_noise.py [--noise 0.05 0.1 0.25 0.5 1.0] [--epochs 10]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import oddity
from oddity.image.evaluate import evaluate
from oddity.image.synth import make_inspection_set

RESULTS = Path(__file__).resolve().parent / "results"
TEXTURES = ("woven", "marble", "stripes")
PLATEAU = 0.005  # AUROC differences below this are noise between runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.05, 0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {t: make_inspection_set(Path(tmp) / t, n_train=60, n_test_good=20, n_test_defect=10,
                                       size=args.size, seed=7, texture=t) for t in TEXTURES}
        for noise in args.noise:
            image, pixel = [], []
            for texture, root in sets.items():
                detector = oddity.create("simplenet", noise_std=noise, epochs=args.epochs)
                detector.fit(root, verbose=False)
                metrics = evaluate(detector, root, verbose=False).metrics
                image.append(metrics["image_auroc"])
                pixel.append(metrics["pixel_auroc"])
                print(f"noise {noise} {texture}: image {image[-1]:.3f} pixel {pixel[-1]:.3f}", flush=True)
            rows.append((noise, image, pixel))
    lines = ["# SimpleNet noise scale chosen on synthetic data", "",
             f"`python benchmarks/simplenet_noise.py` ({args.epochs} epochs, {args.size} px; textures "
             f"{', '.join(TEXTURES)}; 60 train, 20 good + 30 defective test images each).", "",
             "| noise_std | " + " | ".join(f"{t} image / pixel" for t in TEXTURES) + " | mean image | mean pixel |",
             "|---|" + "---|" * (len(TEXTURES) + 2)]
    for noise, image, pixel in rows:
        cells = " | ".join(f"{i:.3f} / {p:.3f}" for i, p in zip(image, pixel))
        lines.append(f"| {noise} | {cells} | {np.mean(image):.3f} | {np.mean(pixel):.3f} |")
    quality = {noise: np.mean(image) + np.mean(pixel) for noise, image, pixel in rows}
    best = max(quality.values())
    chosen = min(noise for noise, q in quality.items() if q >= best - PLATEAU)
    lines += ["", f"Smallest noise_std whose mean image + pixel AUROC is within {PLATEAU} of the best: "
                  f"{chosen}."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simplenet_noise.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
