"""Resolution validation: which model input size keeps small defects on large images, at what speed.

No test set decides it. Per shared dataset (`prepare`): a fixed random subset of the training
images is upsampled by an integer factor so that their median short side is about
`TARGET_SHORT` px (a copy in a scratch folder, mimicking ~1000 px parts); the detector fits on
`n_fit` of them. Other training images (held out from the fit) are scored as they are and
once with a small synthetic defect (`small_defect`: an `oddity.image.synth` defect drawn in a
`DEFECT_WINDOW` px window of the large image, so a scratch is 1-3 px wide and a spot 12-26 px
across); a fixed random subset of the real test images, upsampled the same way (masks with
them), checks that real defects are not lost either. Per candidate setting (`run_one`, in a
fresh process): image and pixel AUROC on the synthetic and on the real images, the input size
"auto" resolved to, and images/s of `score` end to end (decoding the large files included).
"""
from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oddity.bench.common import cell, run_in_child
from oddity.bench.image import MASK_THRESHOLD
from oddity.bench.lighting import subsample
from oddity.image.data import ImageSample, evaluation_samples, read_image, read_size, training_samples
from oddity.image.synth import DEFECTS, draw_defect

TARGET_SHORT = 1024
DEFECT_WINDOW = 128  # px of the large image a synthetic defect is drawn in
SEED = 0


@dataclass
class ResolutionRun:
    """One (dataset, detector, settings) candidate and what it measured."""

    dataset: str
    detector: str
    params: dict[str, Any]
    factor: int = 1
    input_size: int | None = None
    synth_image_auroc: float | None = None
    synth_pixel_auroc: float | None = None
    real_image_auroc: float | None = None
    real_pixel_auroc: float | None = None
    images_per_second: float | None = None
    cpu_ms_per_image: float | None = None
    fit_seconds: float | None = None
    counts: dict[str, int] | None = None
    error: str | None = None
    command: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Dataset, detector, settings and image counts (a run on other counts keeps this one)."""
        return (self.dataset, self.detector, json.dumps(self.params, sort_keys=True),
                json.dumps(self.counts, sort_keys=True))


def upsample(path: Path, factor: int, out: Path, mask: bool = False) -> Path:
    """Write `path` enlarged `factor` times to `out` (PNG; Lanczos, masks nearest and
    binarised at `MASK_THRESHOLD` of their brightest value).

    Parameters
    ----------
    path : Path
        Image or mask file.
    factor : int
        Enlargement.
    out : Path
        File written.
    mask : bool, default False
        Whether `path` is a mask.

    Returns
    -------
    Path
        `out`.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(path) as image:
        size = (image.width * factor, image.height * factor)
        if mask:
            grey = np.asarray(image.convert("L"))
            binary = grey >= MASK_THRESHOLD * max(int(grey.max()), 1)
            Image.fromarray(binary.astype(np.uint8) * 255).resize(size, Image.NEAREST).save(out)
        else:
            image.convert("RGB").resize(size, Image.LANCZOS).save(out)
    return out


def small_defect(pixels: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic defect on a copy of a large image: defect kind `index` modulo the
    kinds of `oddity.image.synth.DEFECTS`, drawn in a `DEFECT_WINDOW` px window placed at
    random in the central 60% of the image (grey on a grey image).

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image.
    index : int
        Which image (seeds the position and the defect).

    Returns
    -------
    tuple of numpy.ndarray
        (defective image, (H, W) bool mask).
    """
    rng = np.random.default_rng([SEED, 7, index])
    height, width = pixels.shape[:2]
    side = min(DEFECT_WINDOW, height, width)
    top = int(rng.uniform(0.2 * height, max(0.2 * height, 0.8 * height - side)))
    left = int(rng.uniform(0.2 * width, max(0.2 * width, 0.8 * width - side)))
    window = pixels[top:top + side, left:left + side]
    painted, mask = draw_defect(window, DEFECTS[index % len(DEFECTS)], rng)
    if np.allclose(pixels[..., 0], pixels[..., 1]) and np.allclose(pixels[..., 0], pixels[..., 2]):
        painted = np.repeat(painted.mean(axis=2, keepdims=True), 3, axis=2)
    result, full = pixels.copy(), np.zeros((height, width), dtype=bool)
    result[top:top + side, left:left + side][mask] = painted[mask]
    full[top:top + side, left:left + side] = mask
    return result, full


def prepare(dataset: Path, scratch: Path, n_fit: int, n_val: int, n_real: int) -> dict[str, Any]:
    """Write the large copies of one dataset under `scratch` (kept when already there).

    Parameters
    ----------
    dataset : Path
        MVTec-layout category.
    scratch : Path
        Folder for the copies.
    n_fit, n_val, n_real : int
        Training images to fit on, held-out normal images (each also with a synthetic
        defect), and normal and defective real test images (each).

    Returns
    -------
    dict
        "factor", "fit" (paths), "synth" and "real" (lists of [path, label, mask path]).
    """
    train = training_samples(dataset)
    factor = max(1, round(TARGET_SHORT / float(np.median([min(read_size(s.path)) for s in train]))))
    chosen = subsample(train, n_fit + n_val, SEED)
    order = np.random.default_rng(SEED).permutation(len(chosen))
    fit = [chosen[i].path for i in order[n_val:]]
    val = [chosen[i].path for i in order[:n_val]]
    tests = evaluation_samples(dataset, mask_threshold=MASK_THRESHOLD)
    real = (subsample([s for s in tests if s.label == 0], n_real, SEED)
            + subsample([s for s in tests if s.label == 1], n_real, SEED))
    root = scratch / f"{dataset.name}-x{factor}-{n_fit}-{n_val}-{n_real}"
    manifest = root / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text())
    plan: dict[str, Any] = {"factor": factor, "fit": [], "synth": [], "real": []}
    for path in fit:
        plan["fit"].append(str(upsample(path, factor, root / "fit" / f"{path.stem}.png")))
    for index, path in enumerate(val):
        normal = upsample(path, factor, root / "synth" / "good" / f"{path.stem}.png")
        defective, mask = small_defect(read_image(normal), index)
        bad = root / "synth" / "defect" / f"{path.stem}.png"
        bad_mask = root / "synth" / "mask" / f"{path.stem}.png"
        for array, out in ((np.round(defective * 255).astype(np.uint8), bad),
                           (mask.astype(np.uint8) * 255, bad_mask)):
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(out)
        plan["synth"] += [[str(normal), 0, None], [str(bad), 1, str(bad_mask)]]
    for sample in real:
        name = f"{sample.defect}_{sample.path.stem}.png"
        image = upsample(sample.path, factor, root / "real" / "images" / name)
        mask = (upsample(sample.mask_path, factor, root / "real" / "masks" / name, mask=True)
                if sample.mask_path else None)
        plan["real"].append([str(image), sample.label, None if mask is None else str(mask)])
    manifest.write_text(json.dumps(plan))
    return plan


def _cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _metrics(model: Any, items: list) -> tuple[float, float, float, float]:
    """(image AUROC, pixel AUROC, images/s, CPU ms per image) of `model` on [path, label,
    mask path] items; CPU time depends far less on other processes' load than wall time."""
    from oddity.metrics.classification import image_auroc
    from oddity.metrics.segmentation import pixel_auroc

    samples = [ImageSample(Path(p), label=label, mask_path=Path(m) if m else None,
                           mask_threshold=MASK_THRESHOLD if m else None) for p, label, m in items]
    start, cpu = time.perf_counter(), _cpu_seconds()
    result = model.score(samples, verbose=False)
    speed = len(samples) / (time.perf_counter() - start)
    cpu_ms = 1000.0 * (_cpu_seconds() - cpu) / len(samples)
    labels = np.array([s.label for s in samples])
    pixel = float("nan")
    if result.maps is not None:
        masks = [s.load_mask(m.shape) for s, m in zip(samples, result.maps)]
        pixel = pixel_auroc(result.maps, masks)
    return image_auroc(labels, result.scores), pixel, speed, cpu_ms


def worker(plan: dict[str, Any], detector: str, params: dict[str, Any]) -> dict[str, Any]:
    """Fit and measure one candidate (runs in a child process, `run_in_child`).

    Parameters
    ----------
    plan : dict
        What `prepare` wrote.
    detector : str
        Registered image detector.
    params : dict
        Its settings.

    Returns
    -------
    dict
        The measured fields of `ResolutionRun`.
    """
    import oddity

    model = oddity.create(detector, **params)
    start = time.perf_counter()
    model.fit(plan["fit"], verbose=False)
    fit_seconds = time.perf_counter() - start
    synth = _metrics(model, plan["synth"])
    real = _metrics(model, plan["real"])
    return {"input_size": model.input_size(), "fit_seconds": round(fit_seconds, 1),
            "synth_image_auroc": synth[0], "synth_pixel_auroc": synth[1],
            "real_image_auroc": real[0], "real_pixel_auroc": real[1],
            "images_per_second": round(synth[2], 2), "cpu_ms_per_image": round(synth[3], 1),
            "counts": {"fit": len(plan["fit"]), "synth": len(plan["synth"]), "real": len(plan["real"])}}


def run_one(dataset: Path, plan: dict[str, Any], detector: str, params: dict[str, Any],
            timeout: float) -> ResolutionRun:
    """Measure one candidate in a fresh process.

    Parameters
    ----------
    dataset : Path
        The dataset the plan was made from.
    plan : dict
        What `prepare` wrote.
    detector : str
        Registered image detector.
    params : dict
        Its settings.
    timeout : float
        Seconds allowed.

    Returns
    -------
    ResolutionRun
        The measurements, or the error.
    """
    run = ResolutionRun(dataset.name, detector, params, factor=plan["factor"])
    result, error = run_in_child("oddity.bench.resolution:worker", [plan, detector, params], timeout)
    if error is not None:
        run.error = error
        return run
    for name, value in (result or {}).items():
        setattr(run, name, value)
    return run


def markdown_table(runs: list[ResolutionRun]) -> str:
    """The results as a Markdown table, one row per candidate.

    Parameters
    ----------
    runs : list of ResolutionRun
        The runs.

    Returns
    -------
    str
        The table.
    """
    lines = ["| dataset (enlarged) | detector | settings | input short side | synthetic image AUROC | "
             "synthetic pixel AUROC | real image AUROC | real pixel AUROC | score img/s | CPU ms / img | fit s | "
             "images fit / synth / real |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        settings = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "defaults"
        if run.error:
            lines.append(f"| {run.dataset} (x{run.factor}) | {run.detector} | {settings} | "
                         f"error: {run.error} |||||||||")
            continue
        counts = run.counts or {}
        lines.append(f"| {run.dataset} (x{run.factor}) | {run.detector} | {settings} | {run.input_size} | "
                     f"{cell(run.synth_image_auroc)} | {cell(run.synth_pixel_auroc)} | "
                     f"{cell(run.real_image_auroc)} | {cell(run.real_pixel_auroc)} | "
                     f"{cell(run.images_per_second, 1)} | {cell(run.cpu_ms_per_image, 0)} | "
                     f"{cell(run.fit_seconds, 1)} | "
                     f"{counts.get('fit')} / {counts.get('synth')} / {counts.get('real')} |")
    return "\n".join(lines) + "\n"



def results_page(runs: list[ResolutionRun]) -> str:
    """The resolution.md page: the commands that made the runs, the protocol and the table.

    Parameters
    ----------
    runs : list of ResolutionRun
        The runs.

    Returns
    -------
    str
        Markdown.
    """
    commands = sorted({run.command for run in runs if run.command})
    return ("# Resolution validation\n\nReproduce: " + " then ".join(f"`{c}`" for c in commands)
            + "\n\nSynthetic small defects on held-out normal images and real test images, all enlarged "
              "(x factor) to mimic ~1000 px parts (`oddity.bench.resolution`). Speeds are indicative "
              "wall-clock figures, not a timing run: read them as ratios.\n\n" + markdown_table(runs))
