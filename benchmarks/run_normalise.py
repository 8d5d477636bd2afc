"""PatchCore accuracy with colour balance and per-image contrast applied to the image before the
resize (`normalise_after_resize=False`, as models saved before the option) or with the image's
statistics to the model input after it (True, the default): MVTec bottle on its whole training
and test sets, magnetic tile on the subsets of `run_lighting.py --max-fit 150 --max-test 60`
(the same fixed random subsets), each with several seeds.

    PYTHONPATH=src python benchmarks/run_normalise.py [--seeds 0 1 2] [--max-fit 150] [--max-test 60]

Results: benchmarks/results/normalise_after_resize.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

import oddity
from oddity.bench.common import cell, command_line, write_files
from oddity.bench.image import MASK_THRESHOLD
from oddity.bench.lighting import subsample
from oddity.image.data import evaluation_samples, training_samples
from oddity.image.evaluate import evaluate
from oddity.metrics import image_auroc
from oddity.metrics.segmentation import aupro, pixel_auroc

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(os.environ.get("ODDITY_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "images"
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def whole_set(dataset: Path, after: bool, seed: int) -> dict:
    """Fit on every training image, evaluate on the whole test split."""
    model = oddity.create("patchcore", seed=seed, normalise_after_resize=after).fit(dataset, verbose=False)
    metrics = evaluate(model, dataset, mask_threshold=MASK_THRESHOLD, verbose=False).metrics
    return {name: metrics[name] for name in METRICS}


def subsets(dataset: Path, after: bool, seed: int, max_fit: int, max_test: int) -> dict:
    """Fit on `run_lighting.py`'s training subset, score its normal and defective test subsets."""
    model = oddity.create("patchcore", seed=seed, normalise_after_resize=after)
    model.fit(subsample(training_samples(dataset), max_fit, seed=1), verbose=False)
    test = evaluation_samples(dataset, mask_threshold=MASK_THRESHOLD)
    normal = subsample([s for s in test if s.label == 0], max_test, seed=2)
    defective = subsample([s for s in test if s.label == 1], max_test, seed=3)
    samples = normal + defective
    scored = model.score(samples, verbose=False)
    masks = [sample.load_mask(m.shape) for sample, m in zip(samples, scored.maps)]
    labels = np.r_[np.zeros(len(normal)), np.ones(len(defective))]
    return {"image_auroc": image_auroc(labels, scored.scores), "pixel_auroc": pixel_auroc(scored.maps, masks),
            "aupro": aupro(scored.maps, masks)}


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# PatchCore: colour balance and contrast before or after the resize", "",
             (f"Command: `{command}`. Defaults otherwise. \"before\": the image is balanced and "
              "standardised, then resized (models saved before `normalise_after_resize`); \"after\": "
              "the image's statistics are applied to the resized model input (the default)."), "",
             "| dataset | images | seed | before: image AUROC | pixel AUROC | AUPRO | after: image AUROC | pixel AUROC | AUPRO |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        before, after = row["before"], row["after"]
        lines.append(f"| {row['dataset']} | {row['images']} | {row['seed']} | "
                     + " | ".join(cell(before[m]) for m in METRICS) + " | "
                     + " | ".join(cell(after[m]) for m in METRICS) + " |")
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        mine = [row for row in rows if row["dataset"] == dataset]
        if len(mine) > 1:
            means = {side: {m: float(np.mean([row[side][m] for row in mine])) for m in METRICS}
                     for side in ("before", "after")}
            lines.append(f"| {dataset} | mean of {len(mine)} seeds | | "
                         + " | ".join(cell(means["before"][m]) for m in METRICS) + " | "
                         + " | ".join(cell(means["after"][m]) for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of the magnetic tile runs")
    parser.add_argument("--max-fit", type=int, default=150)
    parser.add_argument("--max-test", type=int, default=60)
    args = parser.parse_args()
    bottle, tile = DATA / "mvtec_ad" / "bottle", DATA / "magnetic_tile"
    if not bottle.is_dir() or not tile.is_dir():
        print(f"bottle or magnetic tile missing under {DATA}; set ODDITY_DATA", file=sys.stderr)
        return 2
    command = command_line("run_normalise.py", sys.argv[1:], make_target=None)
    rows = [{"dataset": "MVTec bottle", "images": "all", "seed": 0,
             **{side: whole_set(bottle, side == "after", 0) for side in ("before", "after")}}]
    print(json.dumps(rows[-1]), flush=True)
    for seed in args.seeds:
        rows.append({"dataset": "magnetic tile", "images": f"fit {args.max_fit}, test {args.max_test} + {args.max_test}",
                     "seed": seed, **{side: subsets(tile, side == "after", seed, args.max_fit, args.max_test)
                                     for side in ("before", "after")}})
        print(json.dumps(rows[-1]), flush=True)
    write_files(RESULTS, {"normalise_after_resize.json": json.dumps({"command": command, "rows": rows}, indent=2) + "\n",
                          "normalise_after_resize.md": markdown(rows, command)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
