"""Pictures of the "choosing settings" page (docs/choosing-settings.md), made from the shared
image sets under $ODDITY_DATA (default ../shared/data/images); writes docs/images/settings_*.png
and the figures' numbers to benchmarks/results/settings.json.

- resolution: PatchCore at a 256 px input and at `image_size="auto"` on magnetic tile images
  enlarged to about 1024 px, held-out images with a small synthetic defect
  (`oddity.bench.resolution.small_defect`); the maps side by side.
- lighting: a normal bottle under the shifts of `oddity.image.photometric.SHIFTS`, and what
  Gaussian-AD, PaDiM and PatchCore scores do to the 20 normal bottle test images so shifted,
  without and with the robustness options (`fit_jitter`, `per_image_contrast`).
- select: `oddity.image.select.select_detector` on bottle images, one synthetic anomaly of each
  kind it scores, and each candidate's map of it.

Every detector is fitted on a fixed random subset of `--n-fit` training images (60: minutes on
two cores, not the full sets). Settings that the pictures are about are passed explicitly, so
that a later change of a default does not change what a picture shows.

Usage: python benchmarks/plot_settings.py [--figures resolution lighting select] [--n-fit 60]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

import oddity
from oddity.bench.image import MASK_THRESHOLD
from oddity.bench.lighting import subsample
from oddity.bench.resolution import DEFECT_WINDOW, TARGET_SHORT, small_defect
from oddity.core.persistence import atomic_write
from oddity.image import photometric
from oddity.image.data import ArraySample, evaluation_samples, read_size, training_samples
from oddity.image.select import (ANOMALIES_PER_IMAGE, ANOMALY_KINDS, VALIDATION_FRACTION, as_uint8_sample,
                                 format_table, select_detector, split_validation, validation_set)
from oddity.metrics import image_auroc, pixel_auroc
from oddity.plots import save_figure
from oddity.viz import centre_range, outline, overlay

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
RESULTS = ROOT / "benchmarks" / "results" / "settings.json"
COLOURS = 192  # palette size of the written PNGs (small files)
CLIP = 100.0  # lighting figure: scaled scores beyond this are drawn at it
# The settings each picture compares; everything else at the detector's default.
FIXED = {"per_image_contrast": False}
PATCHCORE = {**FIXED, "local_pool": 3}
LIGHTING = {
    "gaussian_ad": [("no augmentation", {**FIXED, "fit_jitter": 0.0}),
                    ("fit_jitter=0.2", {**FIXED, "fit_jitter": 0.2})],
    "padim": [("no augmentation", {**FIXED, "fit_jitter": 0.0}),
              ("fit_jitter=0.2", {**FIXED, "fit_jitter": 0.2})],
    "patchcore": [("no augmentation", {**PATCHCORE, "fit_jitter": 0.0}),
                  ("per_image_contrast=true", {**PATCHCORE, "per_image_contrast": True, "fit_jitter": 0.0})],
}


def enlarged(sample: Any, factor: int) -> np.ndarray:
    """An image enlarged `factor` times (Lanczos), as run_resolution.py writes it, uint8 RGB."""
    with Image.open(sample.path) as image:
        rgb = image.convert("RGB")
        return np.asarray(rgb.resize((rgb.width * factor, rgb.height * factor), Image.LANCZOS))


def map_panel(axis: Any, image: np.ndarray, score_map: np.ndarray | None, value_range: tuple[float, float],
              mask: np.ndarray | None, title: str) -> None:
    """Show an image (with the map overlaid and the mask outlined, when given) on `axis`."""
    shown = image if score_map is None else overlay(image, score_map, value_range)
    if mask is not None:
        shown = outline(shown, mask, colour=(1.0, 1.0, 1.0), width=1)
    axis.imshow(np.clip(shown, 0.0, 1.0))
    axis.set_title(title, fontsize=8)
    axis.set_xticks([])
    axis.set_yticks([])


def fitted(name: str, params: dict[str, Any], samples: list) -> tuple[Any, float]:
    """A detector fitted on `samples`, and the seconds it took."""
    model = oddity.create(name, **params)
    start = time.perf_counter()
    model.fit(samples, verbose=False)
    return model, time.perf_counter() - start


def map_range(model: Any, maps: list[np.ndarray]) -> tuple[float, float]:
    """Colour range of a model's maps: from their lowest value, the pixel threshold in the middle."""
    threshold = model.pixel_threshold_.value if model.pixel_threshold_ is not None else float("nan")
    return centre_range(float(min(m.min() for m in maps)), float(max(m.max() for m in maps)), threshold)


def resolution_figure(data: Path, n_fit: int, n_val: int) -> dict[str, Any]:
    """Figure (a): a small defect on an enlarged magnetic tile, PatchCore at 256 px and at auto."""
    dataset = data / "magnetic_tile"
    train = training_samples(dataset)
    factor = max(1, round(TARGET_SHORT / float(np.median([min(read_size(s.path)) for s in train]))))
    chosen = subsample(train, n_fit + n_val, seed=0)
    order = np.random.default_rng(0).permutation(len(chosen))
    fit = [ArraySample(enlarged(chosen[i], factor), f"fit[{i}]") for i in order[n_val:]]
    normals = [enlarged(chosen[i], factor).astype(np.float32) / 255.0 for i in order[:n_val]]
    defects = [small_defect(pixels, index) for index, pixels in enumerate(normals)]
    samples = ([as_uint8_sample(p, f"normal[{i}]") for i, p in enumerate(normals)]
               + [as_uint8_sample(p, f"defect[{i}]") for i, (p, _) in enumerate(defects)])
    labels = np.r_[np.zeros(n_val), np.ones(n_val)]
    masks = [np.zeros(p.shape[:2], bool) for p in normals] + [m for _, m in defects]
    numbers: dict[str, Any] = {"dataset": "magnetic_tile", "factor": factor, "fit_images": len(fit),
                               "held_out": n_val, "settings": PATCHCORE, "sizes": []}
    results = []
    for size in (256, "auto"):
        model, seconds = fitted("patchcore", {**PATCHCORE, "image_size": size}, fit)
        scored = model.score(samples, verbose=False)
        results.append((model, scored))
        numbers["sizes"].append({"image_size": size, "input_size": model.input_size(), "fit_s": round(seconds, 1),
                                 "image_auroc": image_auroc(labels, scored.scores),
                                 "pixel_auroc": pixel_auroc(scored.maps, masks),
                                 "threshold": model.threshold_.value})
    rows = [n_val + i for i in range(min(3, n_val))]  # one defect of each kind
    figure = Figure(figsize=(12.0, 2.2 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), 6, squeeze=False)
    ranges = [map_range(model, scored.maps) for model, scored in results]
    for row, index in enumerate(rows):
        image, mask = defects[index - n_val]
        ys, xs = np.nonzero(mask)
        half = DEFECT_WINDOW
        top = int(np.clip((ys.min() + ys.max()) // 2 - half, 0, max(0, image.shape[0] - 2 * half)))
        left = int(np.clip((xs.min() + xs.max()) // 2 - half, 0, max(0, image.shape[1] - 2 * half)))
        crop = np.s_[top:top + 2 * half, left:left + 2 * half]
        axis = axes[row][0]
        map_panel(axis, image, None, (0, 1), None,
                  f"{image.shape[1]}x{image.shape[0]} px, {DEFECT_WINDOW * 2} px box")
        axis.add_patch(Rectangle((left, top), 2 * half, 2 * half, fill=False, edgecolor="red", linewidth=1))
        map_panel(axes[row][1], image[crop], None, (0, 1), mask[crop], "zoom, defect outlined")
        for column, ((model, scored), value_range, size) in enumerate(zip(results, ranges, numbers["sizes"])):
            score = scaled(scored.scores[index:index + 1], scored.scores[:n_val], model.threshold_.value)[0]
            map_panel(axes[row][2 + column], image, scored.maps[index], value_range, None,
                      f"input {size['input_size']} px: score {score:.2f}")
            axes[row][2 + column].add_patch(Rectangle((left, top), 2 * half, 2 * half, fill=False,
                                                      edgecolor="white", linewidth=1))
            map_panel(axes[row][4 + column], image[crop], scored.maps[index][crop], value_range, mask[crop],
                      f"input {size['input_size']} px, zoom")
    save_figure(figure, IMAGES / "settings_resolution.png", dpi=90, colours=COLOURS)
    return numbers


def scaled(scores: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """Scores on a scale where the median of `reference` is 0 and the threshold 1."""
    middle = float(np.median(reference))
    return (np.asarray(scores, float) - middle) / max(threshold - middle, 1e-12)


def lighting_figure(data: Path, n_fit: int) -> dict[str, Any]:
    """Figure (b): a normal bottle under each shift, and the normal test images' scores so
    shifted, without and with each detector's robustness option."""
    dataset = data / "mvtec_ad" / "bottle"
    fit = subsample(training_samples(dataset), n_fit, seed=1)
    normal = [s for s in evaluation_samples(dataset, MASK_THRESHOLD) if s.label == 0]
    images = [s.load() for s in normal]
    conditions = {"as is": lambda pixels: pixels, **photometric.SHIFTS}
    shifted = {name: [as_uint8_sample(shift(p), f"{name}[{i}]") for i, p in enumerate(images)]
               for name, shift in conditions.items()}
    figure = Figure(figsize=(10.0, 8.4), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.0, 3.2])
    thumbs = top.subplots(1, len(conditions))
    for axis, (name, shift) in zip(thumbs, conditions.items()):
        map_panel(axis, shift(images[0])[::4, ::4], None, (0, 1), None, name.replace(" R+10% B-10%", ""))
    panels = bottom.subplots(1, len(LIGHTING), sharey=True)
    numbers: dict[str, Any] = {"dataset": "bottle", "fit_images": len(fit), "normal_images": len(images),
                               "detectors": []}
    for axis, (name, variants) in zip(panels, LIGHTING.items()):
        for offset, (colour, (label, params)) in zip((-0.18, 0.18), zip(("tab:red", "tab:blue"), variants)):
            model, seconds = fitted(name, params, fit)
            print(f"{name} {label}: fitted in {seconds:.0f} s", file=sys.stderr)
            threshold = model.threshold_.value
            scores = {c: model.score(samples, verbose=False).scores for c, samples in shifted.items()}
            fpr = {c: float(np.mean(s > threshold)) for c, s in scores.items()}
            for x, condition in enumerate(conditions):
                y = np.clip(scaled(scores[condition], scores["as is"], threshold), -1.0, CLIP)
                axis.scatter(np.full(len(y), x + offset), y, s=9, color=colour, alpha=0.7,
                             label=label if x == 0 else None)
            numbers["detectors"].append({"detector": name, "label": label, "params": params, "fit_s": round(seconds, 1),
                                         "threshold": threshold, "fpr": fpr})
        axis.axhline(1.0, color="black", linewidth=1)
        axis.set_yscale("symlog", linthresh=1.0)
        axis.set_ylim(-1.5, 2.0 * CLIP)
        axis.set_xticks(range(len(conditions)), [c.replace(" R+10% B-10%", "") for c in conditions],
                        rotation=60, ha="right", fontsize=7)
        axis.set_title(name, fontsize=9)
        axis.legend(fontsize=7, loc="upper left")
    panels[0].set_ylabel(f"score: 0 = median normal as is, 1 = threshold (cut at -1 and {CLIP:g})")
    save_figure(figure, IMAGES / "settings_lighting.png", dpi=80, colours=COLOURS)
    return numbers


def select_figure(data: Path, n_fit: int) -> dict[str, Any]:
    """Figure (c): `fit auto` on bottle images, the synthetic anomalies it scores (one of each
    kind) and each candidate's map of them."""
    dataset = data / "mvtec_ad" / "bottle"
    samples = subsample(training_samples(dataset), n_fit, seed=1)
    start = time.perf_counter()
    selection = select_detector(samples, keep_candidates=True, refit=False, verbose=False)
    seconds = time.perf_counter() - start
    held = split_validation(len(samples), VALIDATION_FRACTION, seed=0)
    normal = [samples[i] for i in held]
    anomalies, masks = validation_set([s.load() for s in normal], ANOMALIES_PER_IMAGE, seed=0)
    shown = [next(i for i, a in enumerate(anomalies) if a.name.startswith(kind + "[")) for kind in ANOMALY_KINDS]
    models = [(row.detector, model) for row, model in zip(selection.rows, selection.candidates) if model is not None]
    figure = Figure(figsize=(1.7 * (1 + len(models)), 1.8 * len(shown)), layout="constrained")
    axes = figure.subplots(len(shown), 1 + len(models), squeeze=False)
    picked = [anomalies[i] for i in shown]
    for column, (name, model) in enumerate(models, start=1):
        scored = model.score(picked, verbose=False)
        reference = model.score(normal, verbose=False).scores
        value_range = map_range(model, scored.maps) if scored.maps is not None else (0.0, 1.0)
        chosen = " (chosen)" if name == selection.rows[selection.chosen].detector else ""
        for row, index in enumerate(shown):
            image = anomalies[index].load()
            score = scaled(scored.scores[row:row + 1], reference, model.threshold_.value)[0]
            title = f"{name}{chosen}\nscore {score:.2f}" if row == 0 else f"score {score:.2f}"
            map_panel(axes[row][column], image, None if scored.maps is None else scored.maps[row],
                      value_range, None, title)
    for row, index in enumerate(shown):
        map_panel(axes[row][0], anomalies[index].load(), None, (0, 1), masks[index],
                  anomalies[index].name.split("[")[0] + " (outlined)")
    save_figure(figure, IMAGES / "settings_select.png", dpi=80, colours=COLOURS)
    table = format_table(selection.to_dict())
    print(table)
    return {"dataset": "bottle", "seconds": round(seconds, 1), "selection": selection.to_dict(), "table": table}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ODDITY_DATA", "../shared/data")) / "images"
    parser.add_argument("--data", default=str(default_data), help="folder holding magnetic_tile and mvtec_ad/bottle")
    parser.add_argument("--figures", nargs="+", default=["resolution", "lighting", "select"],
                        choices=["resolution", "lighting", "select"])
    parser.add_argument("--n-fit", type=int, default=60, help="training images each detector is fitted on")
    parser.add_argument("--n-val", type=int, default=10,
                        help="held-out images of the resolution figure, each also with a small defect")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "magnetic_tile").is_dir() or not (data / "mvtec_ad" / "bottle").is_dir():
        print(f"magnetic_tile or mvtec_ad/bottle missing under {data}; set ODDITY_DATA", file=sys.stderr)
        return 2
    IMAGES.mkdir(parents=True, exist_ok=True)
    makers = {"resolution": lambda: resolution_figure(data, args.n_fit, args.n_val),
              "lighting": lambda: lighting_figure(data, args.n_fit),
              "select": lambda: select_figure(data, args.n_fit)}
    for name in args.figures:
        start = time.perf_counter()
        made = {**makers[name](), "n_fit": args.n_fit,
                "command": f"python benchmarks/plot_settings.py --figures {name} --n-fit {args.n_fit}"}
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        numbers = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # as it is now: keep other figures
        numbers[name] = made
        text = json.dumps(numbers, indent=2, default=float) + "\n"
        atomic_write(RESULTS, lambda tmp, text=text: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
