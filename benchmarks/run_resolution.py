"""Resolution validation (`oddity.bench.resolution`): candidate input sizes of image detectors
on enlarged copies of each MVTec-layout dataset under $ODDITY_DATA (default
../shared/data/images), with small synthetic defects on held-out normal images; writes
benchmarks/results/resolution.{md,json}, keeping rows of other candidates already there.

Usage: python benchmarks/run_resolution.py [--detectors patchcore padim]
       [--settings image_size=256 image_size=384 defaults] [--datasets bottle]
       [--n-fit N] [--n-val N] [--n-real N] [--scratch DIR] [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from oddity.bench.common import (
    candidate_settings,
    command_line,
    merging_writer,
    run_all,
)
from oddity.bench.image import find_datasets
from oddity.bench.resolution import ResolutionRun, prepare, results_page, run_one

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder searched for MVTec-layout datasets")
    parser.add_argument("--datasets", nargs="+", default=None, help="dataset folder names (default: all found)")
    parser.add_argument("--detectors", nargs="+", default=["patchcore", "padim"])
    parser.add_argument("--settings", nargs="+", default=["image_size=256", "image_size=384", "image_size=512"],
                        help='candidates: "defaults" or "name=value,name=value"')
    parser.add_argument("--n-fit", type=int, default=40, help="training images fitted on")
    parser.add_argument("--n-val", type=int, default=15, help="held-out normal images (each also with a defect)")
    parser.add_argument("--n-real", type=int, default=15, help="normal and defective real test images (each)")
    parser.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "oddity-resolution"),
                        help="folder for the enlarged copies")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    args = parser.parse_args()
    datasets = [d for d in find_datasets(args.data) if args.datasets is None or d.name in args.datasets]
    if not datasets:
        print(f"no MVTec-layout datasets under {args.data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = command_line("run_resolution.py", sys.argv[1:], make_target=None)
    plans = {d: prepare(d, Path(args.scratch), args.n_fit, args.n_val, args.n_real) for d in datasets}
    jobs = [(f"{dataset.name} / {detector} {text}",
             lambda dataset=dataset, detector=detector, text=text: run_one(
                 dataset, plans[dataset], detector, candidate_settings(text), args.timeout))
            for dataset in datasets for detector in args.detectors for text in args.settings]
    run_all(jobs, [], command, merging_writer(RESULTS, "resolution", ResolutionRun, results_page),
            lambda run: run.error or (run.input_size, run.synth_image_auroc, run.synth_pixel_auroc,
                                      run.real_image_auroc, run.images_per_second))
    return 0


if __name__ == "__main__":
    sys.exit(main())
