"""Choosing an image detector without defect labels (`oddity fit auto`, `select_detector`).

Only normal images are given, so the choice is made on what can be made from them. A part of
the normal images (`VALIDATION_FRACTION`, at most `MAX_VALIDATION`) is held out; every
candidate (`CANDIDATES`) is fitted on the rest, at its defaults, and scores:
- the held-out normal images as they are;
- `ANOMALIES_PER_IMAGE` synthetic anomalies made from each of them with the generators of
  `oddity.image.synth`, cycling through `ANOMALY_KINDS` (scratch, spot and cut drawn defects,
  DRAEM-style Perlin texture patches, CutPaste patches from another held-out image), each with
  its exact mask;
- each held-out normal image under every lighting shift of `oddity.image.photometric.SHIFTS`
  (brightness and contrast +-20%, gamma 0.8 and 1.25, a warm white balance).

The rule, fixed before any test set was looked at:

    score = (synthetic image AUROC + synthetic pixel AUROC) / 2
            - max(0, lighting FPR - 2 x max(target FPR, expected FPR))

where the image AUROC ranks the synthetic anomalies against the held-out normal images, the
pixel AUROC pools the pixels of both (a detector without maps counts its image AUROC twice),
and the lighting FPR is the share of all shifted normal images above the candidate's
calibrated image threshold, allowed up to twice the larger of the target false-positive rate
and the rate its calibration expects (`Threshold.achievable_fpr`; a small calibration set
cannot promise less). The highest score wins; a tie goes to the candidate listed first
(cheapest first). A candidate that fails to fit is reported and skipped. The winner is then
fitted again on every normal image (its own calibration as in a plain `fit`), and the
validation table is stored in its model file (`ImageDetector.selection_`).

Cost: one fit per candidate on the images less the held-out part, one more fit of the winner,
and `(1 + ANOMALIES_PER_IMAGE + len(SHIFTS))` scorings per held-out image and candidate.
SimpleNet, DRAEM and EfficientAD are not candidates by default: each trains a network for
minutes on CPU (docs/images.md, "Choosing a detector").
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.image import photometric, synth
from oddity.image.data import ArraySample
from oddity.image.detector import ImageDetector, ImageInput, as_samples
from oddity.metrics import image_auroc, pixel_auroc

# (detector, parameters) tried by default, cheapest first: ties go to the earlier one.
CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("gaussian_ad", {}), ("padim", {}), ("patchcore", {}), ("ensemble", {}),
)
ANOMALY_KINDS = ("scratch", "spot", "cut", "texture", "cut-paste")
VALIDATION_FRACTION = 0.2
MIN_VALIDATION = 4
MAX_VALIDATION = 40
MIN_FIT = 8  # fewest images left for the candidates to fit on
ANOMALIES_PER_IMAGE = 2
FPR_ALLOWANCE = 2.0  # lighting FPR allowed, as a multiple of max(target, expected) FPR


@dataclass
class CandidateResult:
    """One row of the validation table: a candidate and what it scored.

    Attributes
    ----------
    detector, params : str, dict
        The candidate.
    image_auroc, pixel_auroc : float or None
        Synthetic anomalies against held-out normal images (pixel: None without maps).
    lighting_fpr, allowed_fpr : float or None
        Share of shifted normal images above the threshold; the rate allowed before a penalty.
    penalty, score : float or None
        The lighting penalty and the selection score (module docstring).
    fit_seconds : float or None
        Seconds to fit the candidate.
    error : str or None
        Why the candidate could not be measured.
    """

    detector: str
    params: dict[str, Any]
    image_auroc: float | None = None
    pixel_auroc: float | None = None
    lighting_fpr: float | None = None
    allowed_fpr: float | None = None
    penalty: float | None = None
    score: float | None = None
    fit_seconds: float | None = None
    error: str | None = None


@dataclass
class Selection:
    """The outcome of `select_detector`.

    Attributes
    ----------
    rows : list of CandidateResult
        The validation table, in candidate order.
    chosen : int
        Index of the winning row.
    detector : ImageDetector or None
        The winner fitted on every normal image (None when `refit=False`).
    validation_images, fit_images, anomalies : int
        Held-out normal images, images the candidates were fitted on, synthetic anomalies.
    candidates : list of ImageDetector or None
        The candidates as fitted for validation (with `keep_candidates`; None for a failed one).
    """

    rows: list[CandidateResult]
    chosen: int
    detector: ImageDetector | None
    validation_images: int
    fit_images: int
    anomalies: int
    candidates: list[ImageDetector | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The table and counts as JSON-serialisable data (stored in the chosen model).

        Returns
        -------
        dict
            ``rule``, ``chosen``, counts and ``rows``.
        """
        return {"rule": RULE, "chosen": self.rows[self.chosen].detector,
                "chosen_params": self.rows[self.chosen].params,
                "validation_images": self.validation_images, "fit_images": self.fit_images,
                "anomalies": self.anomalies, "rows": [asdict(row) for row in self.rows]}

    def table(self) -> str:
        """The validation table as aligned text, the winner marked with ``*``.

        Returns
        -------
        str
            The table.
        """
        return format_table(self.to_dict())


RULE = ("score = (synthetic image AUROC + synthetic pixel AUROC) / 2 - max(0, lighting FPR - "
        f"{FPR_ALLOWANCE:g} x max(target FPR, expected FPR)); highest wins, ties to the earlier candidate")


def format_table(selection: dict[str, Any]) -> str:
    """A validation table (`Selection.to_dict`, or as stored in a model) as aligned text.

    Parameters
    ----------
    selection : dict
        The stored selection.

    Returns
    -------
    str
        One line per candidate, the winner marked with ``*``.
    """
    def number(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    header = ("", "detector", "image AUROC", "pixel AUROC", "lighting FPR", "allowed", "penalty",
              "score", "fit s")
    lines = [header]
    for row in selection["rows"]:
        name = row["detector"] + (" " + ",".join(f"{k}={v}" for k, v in row["params"].items())
                                  if row["params"] else "")
        mark = "*" if (row["detector"], row["params"]) == (selection["chosen"], selection["chosen_params"]) else ""
        if row["error"]:
            lines.append((mark, name, f"failed: {row['error']}", "", "", "", "", "", ""))
            continue
        lines.append((mark, name, number(row["image_auroc"]), number(row["pixel_auroc"]),
                      number(row["lighting_fpr"]), number(row["allowed_fpr"]), number(row["penalty"]),
                      number(row["score"]), number(row["fit_seconds"], 1)))
    widths = [max(len(line[i]) for line in lines if not (line[2].startswith("failed") and i == 2))
              for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in lines)


def selection_score(image: float, pixel: float | None, lighting_fpr: float,
                    allowed_fpr: float) -> tuple[float, float]:
    """The selection rule (module docstring).

    Parameters
    ----------
    image : float
        Synthetic image AUROC.
    pixel : float or None
        Synthetic pixel AUROC (None: the image AUROC stands in).
    lighting_fpr : float
        Share of shifted normal images above the calibrated threshold.
    allowed_fpr : float
        max(target FPR, expected FPR) of that threshold.

    Returns
    -------
    score : float
        The selection score.
    penalty : float
        Its lighting penalty.

    Examples
    --------
    >>> selection_score(0.9, 0.8, lighting_fpr=0.5, allowed_fpr=0.05)
    (0.45000000000000007, 0.4)
    """
    penalty = max(0.0, lighting_fpr - FPR_ALLOWANCE * allowed_fpr)
    return (image + (image if pixel is None else pixel)) / 2 - penalty, penalty


def synthetic_anomaly(pixels: np.ndarray, kind: str, rng: np.random.Generator,
                      source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic anomaly of `kind` on a normal image, with its mask (never empty).

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float32 normal image in [0, 1].
    kind : str
        One of `ANOMALY_KINDS`.
    rng : numpy.random.Generator
        Source of randomness.
    source : numpy.ndarray
        Another normal image, the texture or patch source of "texture" and "cut-paste".

    Returns
    -------
    tuple of numpy.ndarray
        (anomalous image, bool mask).

    Raises
    ------
    ConfigError
        If `kind` is unknown.
    """
    if kind in synth.DEFECTS:
        return synth.draw_defect(pixels, kind, rng)
    if kind == "cut-paste":
        return synth.cut_paste(pixels, rng, source=source)
    if kind != "texture":
        raise ConfigError(f"unknown anomaly kind {kind!r}; choose from {', '.join(ANOMALY_KINDS)}")
    for _ in range(20):  # a Perlin mask can be empty, or the texture can match the image
        image, mask = synth.texture_anomaly(pixels, rng, sources=[source], min_change=0.05)
        if mask.any():
            return image, mask
    return synth.draw_defect(pixels, "spot", rng)


def split_validation(n_images: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the normal images held out for validation.

    Parameters
    ----------
    n_images : int
        Normal images given.
    fraction : float
        Share held out (between `MIN_VALIDATION` and `MAX_VALIDATION` images).
    seed : int
        Seed of the split.

    Returns
    -------
    numpy.ndarray
        Sorted indices.

    Raises
    ------
    DataError
        If fewer than `MIN_FIT` images would be left to fit on.
    """
    count = int(np.clip(round(n_images * fraction), MIN_VALIDATION, MAX_VALIDATION))
    if n_images - count < MIN_FIT:
        raise DataError(f"fit auto needs at least {MIN_VALIDATION + MIN_FIT} normal images "
                        f"({MIN_VALIDATION} held out to validate, {MIN_FIT} to fit), got {n_images}")
    return np.sort(np.random.default_rng([seed, 40]).permutation(n_images)[:count])


def as_uint8_sample(pixels: np.ndarray, name: str) -> ArraySample:
    """An in-memory image sample of float pixels in [0, 1], stored as 8-bit as a camera would.

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image in [0, 1].
    name : str
        Its name.

    Returns
    -------
    ArraySample
        The sample.
    """
    return ArraySample(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8), name)


def validation_set(images: list[np.ndarray], per_image: int, seed: int,
                   verbose: bool = False) -> tuple[list[ArraySample], list[np.ndarray]]:
    """The synthetic anomalies `select_detector` scores: `per_image` of each held-out image,
    their kinds cycling through `ANOMALY_KINDS`, as 8-bit array samples, with their masks.

    Parameters
    ----------
    images : list of numpy.ndarray
        The held-out normal images, (H, W, 3) float in [0, 1].
    per_image : int
        Anomalies made from each image.
    seed : int
        Seed (the same as `select_detector`'s gives its anomalies).
    verbose : bool, default False
        Show a progress bar.

    Returns
    -------
    anomalies : list of ArraySample
        The anomalous images, named ``kind[image.copy]``.
    masks : list of numpy.ndarray
        Their (H, W) bool masks.
    """
    anomalies, masks = [], []
    for index, pixels in enumerate(tqdm(images, desc="synthetic anomalies", unit="img", disable=not verbose)):
        for copy in range(per_image):
            rng = np.random.default_rng([seed, 41, index, copy])
            kind = ANOMALY_KINDS[(index * per_image + copy) % len(ANOMALY_KINDS)]
            source = images[(index + 1 + copy) % len(images)]
            image, mask = synthetic_anomaly(pixels, kind, rng, source)
            anomalies.append(as_uint8_sample(image, f"{kind}[{index}.{copy}]"))
            masks.append(mask)
    return anomalies, masks


def _measure(detector: ImageDetector, held_out: list, images: list[np.ndarray], anomalies: list,
             masks: list, row: CandidateResult) -> None:
    """Score the validation set with a fitted candidate and fill in its row."""
    normal = detector.score(held_out, verbose=False)
    abnormal = detector.score(anomalies, verbose=False)
    labels = np.r_[np.zeros(len(normal)), np.ones(len(abnormal))]
    row.image_auroc = image_auroc(labels, np.r_[normal.scores, abnormal.scores])
    if normal.maps is not None and abnormal.maps is not None:
        normal_masks = [np.zeros(m.shape, dtype=bool) for m in normal.maps]
        row.pixel_auroc = pixel_auroc([*normal.maps, *abnormal.maps], [*normal_masks, *masks])
    threshold = detector.threshold_
    assert threshold is not None
    above = [detector.score([as_uint8_sample(shift(pixels), f"{name}[{i}]") for i, pixels in enumerate(images)],
                            verbose=False).scores > threshold.value
             for name, shift in photometric.SHIFTS.items()]
    row.lighting_fpr = float(np.mean(above))
    expected = threshold.achievable_fpr if np.isfinite(threshold.achievable_fpr) else threshold.target_fpr
    row.allowed_fpr = float(max(threshold.target_fpr, expected))
    row.score, row.penalty = selection_score(row.image_auroc, row.pixel_auroc, row.lighting_fpr,
                                             row.allowed_fpr)


def select_detector(data: ImageInput, *, candidates: Sequence[tuple[str, dict[str, Any]]] | None = None,
                    seed: int = 0, target_fpr: float = 0.01,
                    validation_fraction: float = VALIDATION_FRACTION,
                    anomalies_per_image: int = ANOMALIES_PER_IMAGE, refit: bool = True,
                    keep_candidates: bool = False, verbose: bool = True) -> Selection:
    """Choose an image detector from normal images only, by the rule of the module docstring.

    Parameters
    ----------
    data : str, path, list or array
        Normal images, as for `ImageDetector.fit` (an MVTec category reads ``train/good``).
    candidates : sequence of (str, dict), optional
        Registered image detectors and their parameters, cheapest first; `CANDIDATES` when None.
    seed : int, default 0
        Seed of the split, the synthetic anomalies and every candidate.
    target_fpr : float, default 0.01
        False-positive rate every candidate's thresholds are calibrated for.
    validation_fraction : float, default VALIDATION_FRACTION
        Share of the normal images held out to validate on.
    anomalies_per_image : int, default ANOMALIES_PER_IMAGE
        Synthetic anomalies made from each held-out image.
    refit : bool, default True
        Fit the winner again on every normal image (`Selection.detector`).
    keep_candidates : bool, default False
        Keep the candidates as fitted for validation (`Selection.candidates`).
    verbose : bool, default True
        Show progress bars.

    Returns
    -------
    Selection
        The validation table, the winner and (with `refit`) the winner fitted on every image,
        its `selection_` holding the table.

    Raises
    ------
    ConfigError
        If a candidate is not a trainable image detector, a parameter is invalid, or no
        candidate is given.
    DataError
        If there are too few normal images, they cannot be read, or every candidate fails.
    """
    candidates = CANDIDATES if candidates is None else candidates
    if not candidates:
        raise ConfigError("candidates: give at least one (detector, parameters) pair")
    if anomalies_per_image < 1:
        raise ConfigError(f"anomalies_per_image must be at least 1, got {anomalies_per_image}")
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    created = []
    for name, params in candidates:  # every candidate checked before any work
        detector = oddity.create(name, **{"seed": seed, "target_fpr": target_fpr, **params})
        if not isinstance(detector, ImageDetector) or detector.zero_shot:
            raise ConfigError(f"candidate {name!r} is not an image detector that learns from normal images")
        created.append(detector)
    samples = as_samples(data, for_fit=True)
    held = set(split_validation(len(samples), validation_fraction, seed).tolist())
    fit_samples = [s for i, s in enumerate(samples) if i not in held]
    held_out = [s for i, s in enumerate(samples) if i in held]
    images = [sample.load() for sample in held_out]
    anomalies, masks = validation_set(images, anomalies_per_image, seed, verbose)
    rows, kept = [], []
    for (name, params), detector in zip(candidates, created):
        row = CandidateResult(detector=name, params=dict(params))
        start = time.perf_counter()
        try:
            detector.fit(fit_samples, verbose=verbose)
            row.fit_seconds = time.perf_counter() - start
            _measure(detector, held_out, images, anomalies, masks, row)
        except (ConfigError, DataError) as exc:
            row.error, detector = str(exc).splitlines()[0], None
        rows.append(row)
        kept.append(detector if keep_candidates else None)
        if verbose:
            tqdm.write(f"{name}: " + (f"failed ({row.error})" if row.error else
                                      f"image AUROC {row.image_auroc:.3f}, score {row.score:.3f}"))
    measured = [i for i, row in enumerate(rows) if row.score is not None]
    if not measured:
        raise DataError("every candidate failed: " + "; ".join(f"{r.detector}: {r.error}" for r in rows))
    chosen = max(measured, key=lambda i: (rows[i].score, -i))
    selection = Selection(rows=rows, chosen=chosen, detector=None, validation_images=len(held_out),
                          fit_images=len(fit_samples), anomalies=len(anomalies), candidates=kept)
    if refit:
        name, params = candidates[chosen]
        winner = oddity.create(name, **{"seed": seed, "target_fpr": target_fpr, **params})
        winner.fit(samples, verbose=verbose)
        winner.selection_ = selection.to_dict()
        selection.detector = winner
    return selection


def describe_selection(selection: Selection, data: str | os.PathLike) -> str:
    """What `oddity fit auto` prints: counts, the rule, the table and the winner.

    Parameters
    ----------
    selection : Selection
        The outcome of `select_detector`.
    data : str or os.PathLike
        The normal images' folder, for the text.

    Returns
    -------
    str
        The lines.
    """
    winner = selection.rows[selection.chosen]
    return "\n".join([
        (f"validation: {selection.fit_images} images of {data} to fit each candidate, "
         f"{selection.validation_images} held out, {selection.anomalies} synthetic anomalies made "
         f"from them, {len(photometric.SHIFTS)} lighting shifts of each"),
        f"rule: {RULE}",
        selection.table(),
        f"chosen: {winner.detector}" + (f" {winner.params}" if winner.params else ""),
    ])
