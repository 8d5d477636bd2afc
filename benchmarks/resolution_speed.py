"""Speed of PatchCore at the auto input size on ~1000 px images, beside `image_size=256`.

MVTec bottle (512 px in ../shared/data) enlarged 2x to 1024 px (`oddity.bench.resolution.upsample`,
copies in a scratch folder): PatchCore at its defaults is fitted on the first `--n-fit` training
images and scores the first `--n-test` test images end to end (`score`: decoding, resizing, the
graph, maps at 1024 px; best of two after a warm-up), and its model graph alone (backbone and
search) is timed on random batches of 2 at the model input size. Writes
benchmarks/results/resolution_speed.md.

    PYTHONPATH=src python benchmarks/resolution_speed.py [--n-fit 40] [--n-test 24]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

import oddity
from oddity.bench.resolution import upsample
from oddity.core.persistence import atomic_write
from oddity.image.data import evaluation_samples, training_samples

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ODDITY_DATA", ROOT.parent / "shared" / "data")) / "images" / "mvtec_ad" / "bottle"
RESULTS = ROOT / "benchmarks" / "results" / "resolution_speed.md"
FACTOR = 2
GRAPH_CALLS = 5


def enlarged(samples: list, folder: Path) -> list[Path]:
    """The samples' images enlarged `FACTOR` times into `folder`."""
    return [upsample(s.path, FACTOR, folder / f"{number:03d}.png") for number, s in enumerate(samples)]


def measure(size: int | str, fit: list[Path], test: list[Path]) -> dict:
    """Fit PatchCore at `size`, then time `score` end to end and the graph alone."""
    model = oddity.create("patchcore", image_size=size)
    start = time.perf_counter()
    model.fit(fit, verbose=False)
    fit_seconds = time.perf_counter() - start
    model.score(test[:4], verbose=False)  # warm-up
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        model.score(test, verbose=False)
        seconds.append(time.perf_counter() - start)
    side = model.input_size()
    graph, batch = model.kernel(), torch.rand(2, 3, side, side)
    with torch.inference_mode():
        graph(batch)
        start = time.perf_counter()
        for _ in range(GRAPH_CALLS):
            graph(batch)
        graph_rate = 2 * GRAPH_CALLS / (time.perf_counter() - start)
    return {"setting": str(size), "input": side, "fit_seconds": fit_seconds,
            "score_images_per_second": len(test) / min(seconds), "graph_images_per_second": graph_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fit", type=int, default=40)
    parser.add_argument("--n-test", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        fit = enlarged(training_samples(DATA)[:args.n_fit], Path(scratch) / "fit")
        test = enlarged(evaluation_samples(DATA)[:args.n_test], Path(scratch) / "test")
        rows = [measure(size, fit, test) for size in ("auto", 256)]
    lines = ["# PatchCore speed at the auto input size on 1024 px images", "",
             f"Reproduce: `PYTHONPATH=src python benchmarks/resolution_speed.py --n-fit {args.n_fit} "
             f"--n-test {args.n_test}` (2 CPU cores). MVTec bottle enlarged {FACTOR}x to 1024 px; PatchCore "
             f"at its defaults fitted on {args.n_fit} training images; `score` end to end on {args.n_test} test "
             "images (best of two); the graph alone on random batches of 2.", "",
             "| image_size | model input short side | fit s | score img/s, end to end | graph img/s |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['setting']} | {row['input']} | {row['fit_seconds']:.1f} | "
                     f"{row['score_images_per_second']:.1f} | {row['graph_images_per_second']:.1f} |")
        print(row, flush=True)
    page = "\n".join(lines) + "\n"
    atomic_write(RESULTS, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))


if __name__ == "__main__":
    main()
