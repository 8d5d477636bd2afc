"""Few-shot fitting: learn normal from K normal images (shots) chosen with a seed.

A new product line may have only a handful of good parts. `fit_few_shot` picks K images of a
training set with the detector's `seed` (or takes the K given), optionally adds augmented
views of each shot, fits the detector on them and calibrates its thresholds.

Augmentation (`augment`, default "none"): "flips" adds the horizontal and vertical mirror
images, "rotations" the 90/180/270 degree rotations, "flips+rotations" all eight symmetries of
the square. Only use it where the product allows: a view must look like a normal part (a
bottle seen from above, a texture), never like a defect (a mirrored screw thread, text).

Calibration: with K shots there is no held-out normal image, so thresholds come from
leave-one-shot-out: for each shot, a copy of the detector is fitted on the other shots (with
their views) and scores that shot; the K scores (and map maxima) calibrate the thresholds
with the same conformal rule as held-out images (`oddity.core.thresholds`), method
"leave-one-shot-out". They are exchangeable with a new normal image's score up to the
difference between a model of K - 1 shots and one of K (slightly conservative). With K = 1
and augmentation the views are left out one at a time instead ("leave-one-view-out"): views
of one part vary less than parts do, so that threshold is optimistic. With K = 1 and no
augmentation nothing can be left out: the thresholds come from the shot itself ("in-sample",
as `ImageDetector.fit` does with a single image) and a warning says to set one.
K scores cannot resolve a false-positive rate below 1 / (K + 1): the threshold is then the
largest left-out score and `achievable_fpr` says so.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from oddity.core.errors import ConfigError, DataError
from oddity.image.data import ArraySample, load_all
from oddity.image.detector import ImageDetector, ImageInput, as_samples

Views = Callable[[np.ndarray], list[np.ndarray]]


def _flips(pixels: np.ndarray) -> list[np.ndarray]:
    return [pixels, pixels[:, ::-1], pixels[::-1]]


def _rotations(pixels: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(pixels, k) for k in range(4)]


def _dihedral(pixels: np.ndarray) -> list[np.ndarray]:
    return [view for rotated in _rotations(pixels) for view in (rotated, rotated[:, ::-1])]


AUGMENTATIONS: dict[str, Views] = {
    "none": lambda pixels: [pixels],
    "flips": _flips,
    "rotations": _rotations,
    "flips+rotations": _dihedral,
}


def augmented_views(pixels: np.ndarray, augment: str) -> list[np.ndarray]:
    """The image itself first, then its views under `augment` (see module docstring).

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) image.
    augment : str
        One of `AUGMENTATIONS`.

    Returns
    -------
    list of numpy.ndarray
        The views, the image itself first.

    Raises
    ------
    ConfigError
        If `augment` is unknown.
    """
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    return [np.ascontiguousarray(view) for view in AUGMENTATIONS[augment](pixels)]


def choose_shots(samples: list, shots: int, seed: int) -> list:
    """`shots` of the samples drawn without replacement with `seed`, in their original order.

    Parameters
    ----------
    samples : list
        The training samples.
    shots : int
        How many to draw.
    seed : int
        Seed of the draw.

    Returns
    -------
    list
        The chosen samples.

    Raises
    ------
    ConfigError
        If `shots` is not positive.
    DataError
        If there are fewer samples than `shots`.
    """
    if shots < 1:
        raise ConfigError(f"shots must be a positive number of images, got {shots}")
    if shots > len(samples):
        raise DataError(f"asked for {shots} shots but the training set has only {len(samples)} images")
    picked = np.random.default_rng(seed).choice(len(samples), shots, replace=False)
    return [samples[i] for i in sorted(picked.tolist())]


def fit_few_shot(detector: ImageDetector, data: ImageInput, shots: int, *,
                 augment: str = "none", verbose: bool = True) -> ImageDetector:
    """Fit `detector` on `shots` normal images of `data` chosen with `detector.seed`, with
    `augment` views of each, and calibrate its thresholds by leave-one-shot-out (see module
    docstring).

    Memory-bank methods should keep every patch of so few images: for PatchCore pass
    `coreset_ratio=1.0` (the CLI's `--shots` does).

    Parameters
    ----------
    detector : ImageDetector
        An unfitted detector.
    data : str, path, list or array
        Normal images, as `ImageDetector.fit` takes them.
    shots : int
        Number of images to learn from.
    augment : str, default "none"
        Views added per shot (`AUGMENTATIONS`).
    verbose : bool, default True
        Show progress bars.

    Returns
    -------
    ImageDetector
        `detector`, fitted.

    Raises
    ------
    ConfigError
        If a parameter is invalid or the method needs more shots.
    DataError
        If none of the chosen shots can be read.
    """
    detector.validate_params()
    samples = as_samples(data, for_fit=True)
    chosen = choose_shots(samples, shots, detector.seed)
    if len(chosen) < detector.min_shots:
        raise ConfigError(f"{detector.name} needs at least {detector.min_shots} shots (it estimates "
                          f"statistics across images), got {len(chosen)}; use more shots or patchcore")
    groups = [[ArraySample(view, f"{sample.name}#{i}") for i, view in enumerate(augmented_views(pixels, augment))]
              for sample, pixels in load_all(chosen, detector.skip_bad)]
    if not groups:
        raise DataError("none of the chosen shots could be read")
    detector._learn([view for group in groups for view in group], verbose)
    if detector.threshold_ is not None and not detector.localises:
        return detector
    if len(groups) >= 2:
        detector._calibrate(detector.left_out_scores(groups, verbose, first_only=True), "leave-one-shot-out")
    elif len(groups[0]) >= 2:
        views = [[view] for view in groups[0]]
        detector._calibrate(detector.left_out_scores(views, verbose, first_only=True), "leave-one-view-out")
    else:
        warnings.warn("one shot without augmentation: thresholds are calibrated on the shot itself "
                      "and are too low; set one with set_threshold or use more shots", stacklevel=2)
        detector._calibrate(detector.score(groups[0], verbose=False, _calibrating=True), "in-sample")
    return detector
