"""Lighting benchmark: how a fitted image detector reads global lighting changes of normal parts.

Per (dataset, detector, settings), in a fresh process: the detector is fitted once on the
training images (a fixed random subset of at most `max_fit` of them when asked); the normal
test images are then scored as they are and under each shift of
`oddity.image.photometric.SHIFTS`, the defective test images once as they are. Per shift: the
realised false-positive rate of the calibrated image threshold on the shifted normal images
(beside its target and the rate its calibration expects) and the image AUROC of shifted
normals against the unchanged defective images. Results go to `lighting.json` and
`lighting.md`, beside the unshifted row.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oddity.bench.common import cell, run_in_child

UNSHIFTED = "unshifted"
# Targets of the lighting benchmark: under these shifts the image AUROC may drop by at most
# AUROC_DROP and the realised FPR may reach at most FPR_FACTOR times the target.
TARGET_SHIFTS = ("brightness -20%", "brightness +20%", "contrast -20%", "contrast +20%")
AUROC_DROP = 0.02
FPR_FACTOR = 2.0


@dataclass
class LightingRun:
    """One (dataset, detector, settings) cell: per shift name, {"fpr", "image_auroc"}."""

    dataset: str
    detector: str
    params: dict[str, Any]
    shifts: dict[str, dict[str, float]] = field(default_factory=dict)
    target_fpr: float | None = None
    expected_fpr: float | None = None
    fit_images: int | None = None
    normal_images: int | None = None
    defective_images: int | None = None
    fit_seconds: float | None = None
    error: str | None = None
    command: str = ""

    @property
    def key(self) -> tuple[str, str, str, int | None, int | None]:
        """Dataset, detector, settings and the image counts (a subset run keeps a full one)."""
        return (Path(self.dataset).name, self.detector, json.dumps(self.params, sort_keys=True),
                self.fit_images, self.normal_images)


def subsample(items: list, most: int | None, seed: int) -> list:
    """A fixed random subset of at most `most` items, in their order.

    Parameters
    ----------
    items : list
        The items.
    most : int or None
        The most to keep (all when None).
    seed : int
        Seed of the subset.

    Returns
    -------
    list
        The kept items in their original order.
    """
    if most is None or len(items) <= most:
        return items
    keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:most])
    return [items[i] for i in keep]


def worker(dataset: str, detector: str, params: dict[str, Any], max_fit: int | None,
           max_test: int | None) -> dict[str, Any]:
    """Run in the child process: fit once, then score normal test images under every shift.

    Parameters
    ----------
    dataset : str
        An MVTec-layout dataset folder.
    detector : str
        A registered image detector.
    params : dict
        Its parameters.
    max_fit, max_test : int or None
        The most training images and the most test images of each kind (all when None).

    Returns
    -------
    dict
        The fields of a `LightingRun`: per shift the realised FPR and the image AUROC.
    """
    import oddity
    from oddity.image.data import ArraySample, evaluation_samples, training_samples
    from oddity.image.photometric import SHIFTS
    from oddity.metrics import image_auroc

    model = oddity.create(detector, **params)
    fit_samples = subsample(training_samples(dataset), max_fit, seed=1)
    start = time.perf_counter()
    model.fit(fit_samples, verbose=False)
    fit_seconds = time.perf_counter() - start
    test = evaluation_samples(dataset)
    normal = subsample([s for s in test if s.label == 0], max_test, seed=2)
    defective = subsample([s for s in test if s.label == 1], max_test, seed=3)
    defect_scores = model.score(defective, verbose=False).scores
    pixels = [s.load() for s in normal]
    threshold = model.threshold_
    labels = np.r_[np.zeros(len(normal)), np.ones(len(defect_scores))]
    shifts = {}
    for name, shift in [(UNSHIFTED, None), *SHIFTS.items()]:
        images = [ArraySample(p if shift is None else shift(p), f"{name}[{i}]") for i, p in enumerate(pixels)]
        scores = model.score(images, verbose=False).scores
        shifts[name] = {"fpr": float(np.mean(scores > threshold.value)),
                        "image_auroc": image_auroc(labels, np.r_[scores, defect_scores])}
    return {"shifts": shifts, "target_fpr": threshold.target_fpr, "expected_fpr": threshold.achievable_fpr,
            "fit_images": len(fit_samples), "normal_images": len(normal),
            "defective_images": len(defective), "fit_seconds": fit_seconds}


def run_one(dataset: Path, detector: str, params: dict[str, Any], max_fit: int | None,
            max_test: int | None, timeout: float) -> LightingRun:
    """One cell in a fresh Python process; failures are recorded, not raised.

    Parameters
    ----------
    dataset : pathlib.Path
        An MVTec-layout dataset folder.
    detector : str
        A registered image detector.
    params : dict
        Its parameters.
    max_fit, max_test : int or None
        As in `worker`.
    timeout : float
        Seconds allowed for the child process.

    Returns
    -------
    LightingRun
        The results, or the error.
    """
    run = LightingRun(dataset=str(dataset), detector=detector, params=params)
    result, run.error = run_in_child("oddity.bench.lighting:worker",
                                     [str(dataset), detector, params, max_fit, max_test], timeout)
    if result is not None:
        for name, value in result.items():
            setattr(run, name, value)
    return run


def passes(run: LightingRun) -> bool:
    """Whether a run meets the lighting targets on every shift of TARGET_SHIFTS.

    Parameters
    ----------
    run : LightingRun
        A finished run.

    Returns
    -------
    bool
        True when every shift keeps the AUROC drop within `AUROC_DROP` and the realised FPR
        within `FPR_FACTOR` times the target (or the expected rate, if larger).
    """
    base = run.shifts[UNSHIFTED]["image_auroc"]
    limit = FPR_FACTOR * max(run.target_fpr or 0.0, run.expected_fpr or 0.0)
    return all(base - run.shifts[s]["image_auroc"] <= AUROC_DROP and run.shifts[s]["fpr"] <= limit
               for s in TARGET_SHIFTS)


def markdown_table(runs: list[LightingRun]) -> str:
    """One row per run: realised FPR / image AUROC under each shift, and whether it passes.

    Parameters
    ----------
    runs : list of LightingRun
        The runs to show.

    Returns
    -------
    str
        The Markdown page.
    """
    names = [UNSHIFTED] + [s for s in next((r.shifts for r in runs if r.shifts), {}) if s != UNSHIFTED]
    commands = list(dict.fromkeys(run.command for run in runs))
    lines = [
        "# Lighting benchmark",
        "",
        f"Reproduce: {' then '.join(f'`{c}`' for c in commands)}.",
        "",
        "Each detector is fitted once per dataset; the normal test images are scored as they are and "
        "under each shift (`oddity.image.photometric.SHIFTS`: brightness and contrast factors 0.8 / 1.2, "
        "gamma 0.8 / 1.25, white-balance gains R 1.1, G 1, B 0.9), the defective test images as they are. "
        "Each shift cell: realised false-positive rate of the calibrated image threshold on the shifted "
        "normal images / image AUROC of shifted normals against the defective originals. FPR column: "
        "target / expected (from the calibration). Pass: on every +-20% brightness and contrast shift "
        f"the AUROC drops by <= {AUROC_DROP} and the FPR stays <= {FPR_FACTOR:g}x the larger of target "
        "and expected rate.",
        "",
        "| dataset | detector | settings | fit / normal / defective images | FPR target / expected | "
        + " | ".join(names) + " | pass |",
        "|---" * (6 + len(names)) + "|",
    ]
    for run in runs:
        name = Path(run.dataset).name
        settings = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "defaults"
        if run.error:
            lines.append(f"| {name} | {run.detector} | {settings} | failed: {run.error} |" + " |" * (len(names) + 2))
            continue
        shifts = " | ".join(f"{cell(run.shifts[s]['fpr'], 2)} / {cell(run.shifts[s]['image_auroc'])}"
                            if s in run.shifts else "–" for s in names)
        lines.append(f"| {name} | {run.detector} | {settings} | {run.fit_images} / {run.normal_images} / "
                     f"{run.defective_images} | {run.target_fpr:.3g} / {run.expected_fpr:.3g} | {shifts} | "
                     f"{'yes' if passes(run) else 'no'} |")
    return "\n".join(lines) + "\n"

