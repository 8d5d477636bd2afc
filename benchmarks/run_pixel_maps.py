"""Pixel maps of PatchCore: each step of the map pipeline changed one at a time
(`oddity.bench.pixel_maps.CANDIDATES`), on the real test split and on the validation protocol
of benchmarks/run_defaults.py, from one fitted model per (dataset, protocol).

`maps` fits PatchCore at its defaults and keeps each scored image's raw patch map (the
kernel's scorer output: nearest-bank distances on the patch grid, before border
standardisation), its sizes and its ground-truth mask:
- ``--protocol test``: fitted on every training image, the whole test split scored;
- ``--protocol validation``: run_defaults.py's split (a fixed random 60 training images, seed 1;
  `oddity.image.select`'s held-out part and its synthetic anomalies, seed 0), the held-out
  normal images and the anomalies scored.
`table` computes pixel AUROC and AUPRO (`oddity.metrics`) of every candidate on every maps
file and writes benchmarks/results/pixel_maps.{md,json}.

Usage:
  python benchmarks/run_pixel_maps.py maps --dataset DIR --protocol test|validation --out FILE.npz
  python benchmarks/run_pixel_maps.py table FILE.npz ... [--command CMD]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
VALIDATION_FIT = 60  # training images of run_defaults.py's validation protocol (--max-fit 60)


def scored_items(dataset: str, protocol: str) -> tuple[Any, list]:
    """A fitted default PatchCore and the (sample, mask) pairs it scores for one protocol.

    Parameters
    ----------
    dataset : str
        An MVTec-layout dataset folder.
    protocol : {"test", "validation"}
        See the module docstring.

    Returns
    -------
    tuple
        (detector, list of (sample, (H, W) bool mask or None)).
    """
    import oddity
    from oddity.bench.image import MASK_THRESHOLD
    from oddity.bench.lighting import subsample
    from oddity.image.data import evaluation_samples, training_samples
    from oddity.image.select import (
        ANOMALIES_PER_IMAGE,
        VALIDATION_FRACTION,
        split_validation,
        validation_set,
    )

    if protocol == "test":
        detector = oddity.create("patchcore").fit(training_samples(dataset), verbose=False)
        return detector, [(s, None) for s in evaluation_samples(dataset, MASK_THRESHOLD)]
    samples = subsample(training_samples(dataset), VALIDATION_FIT, seed=1)
    held = set(split_validation(len(samples), VALIDATION_FRACTION, 0).tolist())
    held_out = [s for i, s in enumerate(samples) if i in held]
    anomalies, masks = validation_set([s.load() for s in held_out], ANOMALIES_PER_IMAGE, 0)
    detector = oddity.create("patchcore", seed=0, target_fpr=0.01)
    detector.fit([s for i, s in enumerate(samples) if i not in held], verbose=False)
    return detector, [(s, None) for s in held_out] + list(zip(anomalies, masks))


def kind_of(sample: Any, mask: np.ndarray | None) -> str:
    """The kind of a scored image: its defect folder, "good", or a synthetic anomaly's kind.

    Parameters
    ----------
    sample : ImageSample or ArraySample
        The image (synthetic anomalies are named ``kind[image.copy]``).
    mask : numpy.ndarray or None
        A synthetic anomaly's mask; None for a real image.

    Returns
    -------
    str
        The kind.
    """
    if mask is not None:
        return sample.name.split("[")[0]
    return getattr(sample, "defect", None) or "good"


def keep_maps(dataset: str, protocol: str, out: str) -> None:
    """Write one maps file (see the module docstring).

    Parameters
    ----------
    dataset : str
        An MVTec-layout dataset folder.
    protocol : {"test", "validation"}
        Which images.
    out : str
        The .npz written.
    """
    import torch

    from oddity.core.persistence import atomic_write

    detector, items = scored_items(dataset, protocol)
    spec, kernel = detector.spec(), detector.kernel()
    arrays: dict[str, np.ndarray] = {"border_mean": detector.border_.mean, "border_std": detector.border_.std}
    hws, input_hws, kinds = [], [], []
    with torch.inference_mode():
        for i, (sample, mask) in enumerate(items):
            pixels = sample.load()
            hw = pixels.shape[:2]
            (x,) = spec.prepare(pixels)
            _, raw = kernel.scorer(torch.from_numpy(x[None]))
            arrays[f"raw{i}"] = raw[0].numpy()
            known = mask is not None or getattr(sample, "label", 0) == 0 or getattr(sample, "mask_path", None)
            arrays[f"mask{i}"] = (mask if mask is not None else
                                  sample.load_mask(hw) if known else np.zeros(hw, dtype=bool))
            hws.append(hw)
            input_hws.append(x.shape[1:])
            kinds.append(kind_of(sample, mask))
    arrays.update(hw=np.array(hws), input_hw=np.array(input_hws), kind=np.array(kinds),
                  dataset=np.array(Path(dataset).name), protocol=np.array(protocol))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as stream:  # a file object: savez would add ".npz" to a name
            np.savez_compressed(stream, **arrays)

    atomic_write(out, write)


def measure(path: str) -> dict[str, Any]:
    """Pixel AUROC and AUPRO of every candidate on one maps file.

    Parameters
    ----------
    path : str
        A file written by `keep_maps`.

    Returns
    -------
    dict
        Dataset, protocol, image count and one row per candidate.
    """
    from oddity.bench.pixel_maps import CANDIDATES, candidate_map
    from oddity.metrics import aupro, pixel_auroc

    data = np.load(path)
    count = len(data["hw"])
    raws = [data[f"raw{i}"] for i in range(count)]
    masks = [data[f"mask{i}"] for i in range(count)]
    rows = []
    for candidate in CANDIDATES:
        maps = [candidate_map(raw, tuple(ihw), tuple(hw), data["border_mean"], data["border_std"], candidate)
                for raw, ihw, hw in zip(raws, data["input_hw"], data["hw"])]
        rows.append({**asdict(candidate), "pixel_auroc": pixel_auroc(maps, masks), "aupro": aupro(maps, masks)})
        print(f"{path}: {candidate.label}: {rows[-1]['pixel_auroc']:.4f} / {rows[-1]['aupro']:.4f}", flush=True)
    default = [candidate_map(raw, tuple(ihw), tuple(hw), data["border_mean"], data["border_std"], CANDIDATES[0])
               for raw, ihw, hw in zip(raws, data["input_hw"], data["hw"])]
    kinds = [str(kind) for kind in data["kind"]]
    by_kind = {}
    for kind in sorted(set(kinds) - {"good"}):
        chosen = [i for i, k in enumerate(kinds) if k in ("good", kind)]
        by_kind[kind] = {"pixel_auroc": pixel_auroc([default[i] for i in chosen], [masks[i] for i in chosen]),
                         "defective_pixels": int(sum(masks[i].sum() for i in chosen))}
    return {"dataset": str(data["dataset"]), "protocol": str(data["protocol"]), "images": count, "rows": rows,
            "default_by_kind": by_kind}


def markdown(results: list[dict[str, Any]], command: str) -> str:
    """The results page: one column pair per (dataset, protocol), one row per candidate.

    Parameters
    ----------
    results : list of dict
        What `measure` returned, one per maps file.
    command : str
        The commands that reproduce it.

    Returns
    -------
    str
        Markdown.
    """
    heads = [f"{r['dataset']} {r['protocol']} ({r['images']} images)" for r in results]
    lines = ["# PatchCore pixel maps: each step of the map pipeline changed alone", "",
             f"Reproduce: {command}.", "",
             ("One PatchCore at its defaults per dataset and protocol (test: fitted on every "
              "training image, whole test split; validation: run_defaults.py's protocol, 48 of a "
              "fixed 60 training images fitted, 12 held-out normal images and 24 synthetic "
              "anomalies); its raw patch maps are turned into pixel maps by each candidate, the "
              "rest of the pipeline unchanged. Figures: pixel AUROC / AUPRO."), "",
             "| candidate | " + " | ".join(heads) + " |",
             "|---|" + "---|" * len(results)]
    for index, row in enumerate(results[0]["rows"]):
        cells = [f"{r['rows'][index]['pixel_auroc']:.4f} / {r['rows'][index]['aupro']:.4f}" for r in results]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines += ["", ("The default map's pixel AUROC over the normal images plus one kind of defect "
                   "(or synthetic anomaly), and that kind's share of all defective pixels:"), "",
              "| set | kind | pixel AUROC | share of defective pixels |", "|---|---|---|---|"]
    for result, head in zip(results, heads):
        total = sum(v["defective_pixels"] for v in result["default_by_kind"].values()) or 1
        lines += [f"| {head} | {kind} | {v['pixel_auroc']:.4f} | {v['defective_pixels'] / total:.2f} |"
                  for kind, v in result["default_by_kind"].items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    maps = commands.add_parser("maps", help="fit PatchCore and keep its raw patch maps")
    maps.add_argument("--dataset", required=True)
    maps.add_argument("--protocol", choices=("test", "validation"), required=True)
    maps.add_argument("--out", required=True)
    table = commands.add_parser("table", help="write benchmarks/results/pixel_maps.{md,json}")
    table.add_argument("files", nargs="+")
    table.add_argument("--command", default="python benchmarks/run_pixel_maps.py ...")
    args = parser.parse_args()
    if args.command == "maps":
        keep_maps(args.dataset, args.protocol, args.out)
        return 0
    from oddity.core.persistence import atomic_write

    results = [measure(name) for name in args.files]
    atomic_write(RESULTS / "pixel_maps.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
    atomic_write(RESULTS / "pixel_maps.md", lambda tmp: Path(tmp).write_text(markdown(results, args.command)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
