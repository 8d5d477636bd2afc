"""Shared machinery of image detectors: input handling, tiling, calibration, maps.

A method subclasses `ImageDetector` and writes two hooks, nothing else:
- `_fit_images(images)`: learn normal from an `ImageStream` of (1, 3, h, w) tensors (RGB in
  [0, 1], already resized; re-iterable, so a method may take several passes). A method that
  learns in one pass from features computed from each tensor alone (PatchCore, PaDiM,
  Gaussian-AD) instead sets `feature_fit = True` and writes `fit_features(x)` (those
  features, as numpy arrays) and `_fit_features(features, images)` (the learning step);
  `fit_on_cluster` (`oddity.distributed.fit`) then computes the features on Dask workers
  and only the learning step runs here;
- `_scorer(portable)`: its fitted scoring as a `torch.nn.Module` taking a batch (N, 3, h, w)
  of such tensors to (image scores (N,), patch maps (N, h', w')), everything learned held as
  buffers or sub-modules. `portable=True` asks for pure torch operations only (for export);
  otherwise a scorer may call faster in-process libraries (faiss) with the same results.
`kernel()` wraps the scorer with border standardisation (`oddity.image.kernel`); `score` and
`predict` run every image through that one graph in batches, with the pre- and post-processing
of `spec()` (`oddity.image.spec`, `oddity.image.pipeline`): resizing, tiling, maps back at
each image's original size. This class also holds out normal images to calibrate thresholds
(see `oddity.core.thresholds`). A method that cannot be one graph (it scores a batch against
itself) sets `not_a_graph` to the reason, and overrides `score`.

Calibration (`calibration`): "holdout" fits on all but a held-out part of the training images
and calibrates on that part (`calibration_fraction`); "cross" fits the model on every image
and calibrates on out-of-fold scores (`CROSS_FOLDS` extra fits on the other folds: the cost of
one fit times the number of folds, so only for detectors whose fit is cheap and that need no
border statistics); "leave-one-out" fits the model on every image and scores each training
image by the fitted model without what that image contributed to it, with no refit: only for
a class with `image_out = True`, which writes `_left_out_scorer(image)` (the scorer without
training image `image`, its index in the fitted stream; PatchCore drops the memory-bank
patches the image gave). Those left-out scores are computed exactly as test scores are (the
same pipeline and graph; the raw left-out maps, computed once, first learn the border
statistics and are then replayed through the standardisation, `ReplayScorer`), then calibrate. "auto" (the default)
is "leave-one-out" for a class with `image_out = True`, "cross" for one with
`cheap_refit = True` and "holdout" otherwise; both all-image methods need at least
`2 * CROSS_FOLDS` images. The threshold's `method` says which was used.

Image-level detectors (no localisation, e.g. Gaussian-AD) set the class attribute
`localises = False` and return (N, 1, 1) maps holding the scores. For them `score` and
`predict` give `maps = None` and `masks = None`, no pixel threshold is calibrated
(`pixel_threshold_` stays None), `evaluate` reports no pixel metrics (with a note saying why),
`write_predictions` writes scores only and the report leaves out its heat-map section.
A detector whose model implies a threshold (a distributional assumption rather than held-out
images) returns it from `_model_threshold()`; it then replaces the conformal image threshold.

Zero-shot detectors (`zero_shot = True`, e.g. MuSc) learn nothing: they override `score` to
score a whole batch of images against each other, `fit` only stores their configuration, and
`decision_thresholds` derives the thresholds of a prediction from the batch itself. `evaluate`
and the benchmark runner then score the test split alone, with no training image.
"""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.detector import Detector
from oddity.core.checks import check_calibration, check_seed
from oddity.core.errors import ConfigError, DataError, ModelFileError, NotFittedError
from oddity.core.results import ImagePrediction, ImageScores
from oddity.core.thresholds import CROSS_FOLDS, Threshold, calibrate_threshold, fold_indices, held_out_count
from oddity.image import geometry, photometric, resolution
from oddity.image.border import BorderStandardiser
from oddity.image.data import (ArraySample, ImageSample, load_all, read_size, skip_bad_file,
                               training_samples, unlabelled_samples)
from oddity.image.kernel import ImageKernel, run_kernel
from oddity.image.pipeline import BATCH_SIZE, decide, engine_threads, score_samples
from oddity.image.spec import ImageSpec

SINGLE_IMAGE_WARNING = (
    "fitting on a single image ({name}): the model learns that one image's appearance only, "
    "and no image is left to calibrate on, so the thresholds are in-sample (the image's own "
    "score): any other normal image may well be flagged, and the false-positive rate is "
    "unknown. Fit on more normal images, or set thresholds by hand (set_threshold)")
CALIBRATIONS = ("auto", "holdout", "cross", "leave-one-out")
ImageInput = Any  # folder/file path(s), ImageSample list, array(s) or an (N, 3, H, W) tensor


def as_samples(data: ImageInput, for_fit: bool) -> list:
    """Normalise what a user passes to fit/score into a list of lazily loaded samples.

    Parameters
    ----------
    data : str, path, list or array
        A folder or MVTec category, image paths, an (N, H, W, 3) array or a list of images.
    for_fit : bool
        Read a category's ``train/good`` (True) or the images given as they are.

    Returns
    -------
    list
        Samples, loaded when scored.

    Raises
    ------
    DataError
        If no image is given, an array or tensor has the wrong shape, or the items mix kinds.
    """
    if isinstance(data, (str, os.PathLike)):
        return training_samples(data) if for_fit else unlabelled_samples([data])
    if isinstance(data, torch.Tensor):
        if data.ndim != 4 or data.shape[1] != 3:
            raise DataError(f"image tensor must have shape (N, 3, H, W), got {tuple(data.shape)}")
        data = data.permute(0, 2, 3, 1).cpu().numpy()
    if isinstance(data, np.ndarray):
        if data.ndim not in (3, 4):
            raise DataError(f"image array must have shape (N, H, W) or (N, H, W, C), got {data.shape}")
        return [ArraySample(pixels, f"array[{i}]") for i, pixels in enumerate(data)]
    items = list(data)
    if not items:
        raise DataError("no images given")
    if all(isinstance(i, (ImageSample, ArraySample, photometric.JitteredSample)) for i in items):
        return items
    if all(isinstance(i, (str, os.PathLike)) for i in items):
        return unlabelled_samples(items)
    if all(isinstance(i, np.ndarray) for i in items):
        return [ArraySample(pixels, f"array[{i}]") for i, pixels in enumerate(items)]
    raise DataError("images must be paths, ImageSample objects or numpy arrays, not a mix")


def _sample_hw(sample) -> tuple[int, int]:
    if isinstance(sample, ArraySample):
        return tuple(np.shape(sample.pixels)[:2])  # type: ignore[return-value]
    return read_size(sample.path)


class ImageStream:
    """Re-iterable stream of model-ready (1, 3, h, w) tensors over training images (tiles
    included), with a progress bar per pass.

    Parameters
    ----------
    detector : ImageDetector
        The detector being fitted (its tiling, input shape and `skip_bad`).
    samples : list
        The training samples.
    verbose : bool
        Show a progress bar.
    desc : str
        Its label.
    jitter : float, default 0.0
        > 0: each image is also yielded once photometrically jittered (`fit_jitter`).
    start : int, default 0
        Images that come before `samples` in the whole training stream (a partition of it):
        their jitter draws are skipped, so each image is jittered as in one whole pass.
    """

    def __init__(self, detector: "ImageDetector", samples: list, verbose: bool, desc: str,
                 jitter: float = 0.0, start: int = 0):
        self.detector, self.samples, self.verbose, self.desc = detector, samples, verbose, desc
        self.jitter, self.start = jitter, start

    def __len__(self) -> int:
        """Images a pass yields (jittered copies included; tiles not counted)."""
        return len(self.samples) * (2 if self.jitter else 1)

    def __iter__(self) -> Iterator[torch.Tensor]:
        bar = tqdm(total=len(self.samples), desc=self.desc, unit="img", disable=not self.verbose)
        rng = np.random.default_rng([self.detector.seed, 20])  # the same jitter on every pass
        if self.jitter:
            for _ in range(self.start):  # the draws of the images before this partition
                photometric.jitter(np.zeros((1, 1, 3)), rng, self.jitter)
        with bar:
            for _, pixels in load_all(self.samples, self.detector.skip_bad, self.detector.skipped_):
                variants = [pixels, photometric.jitter(pixels, rng, self.jitter)] if self.jitter else [pixels]
                for variant in variants:
                    for part in self.detector._parts(variant):
                        yield self.detector._model_input(part)
                bar.update(1)

    def tag_sources(self, features: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """Pair the features of each model input of a pass (computed from this stream, or in its
        order elsewhere, `ImageDetector.feature_source`) with the image it came from.

        An image gives one input per part (`ImageSpec.boxes`, from its header size), twice with
        `jitter`; an image skipped as unreadable gives none (it is in the detector's `skipped_`
        by the time an input after it arrives).

        Parameters
        ----------
        features : iterable
            Per-input features, in stream order.

        Yields
        ------
        tuple
            (index of the image in `samples`, its features).
        """
        skipped = self.detector.skipped_ if self.detector.skipped_ is not None else set()
        spec = self.detector.spec()
        image, left = -1, 0
        for feature in features:
            while left == 0:
                image += 1
                if self.samples[image].name not in skipped:
                    left = len(spec.boxes(_sample_hw(self.samples[image]))) * (2 if self.jitter else 1)
            left -= 1
            yield image, feature


class ReplayScorer(nn.Module):
    """A scorer that gives back patch maps computed before, in order (one per model input),
    so they pass through the kernel's border standardisation and the pipeline unchanged.

    Parameters
    ----------
    maps : list of numpy.ndarray
        (h, w) raw patch maps, in the order the inputs will come.
    """

    def __init__(self, maps: list[np.ndarray]):
        super().__init__()
        self.maps = list(maps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next len(x) maps (x itself is not looked at).

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, h, w) model inputs.

        Returns
        -------
        tuple of torch.Tensor
            (largest value of each map (N,), maps (N, h', w')).
        """
        maps = torch.from_numpy(np.stack(self.maps[:len(x)]))
        del self.maps[:len(x)]
        return maps.flatten(1).amax(dim=1), maps


class ImageDetector(Detector):
    """Base of all image detectors (see the module docstring for the two hooks to write).

    Parameters
    ----------
    image_size : int or "auto", default "auto"
        Short side of the model input in pixels (at least 32); the aspect ratio is kept.
        "auto" picks it at fit from the training images' size (`oddity.image.resolution`:
        256 up to 512 px images, half the short side above, at most 512) and saves the choice.
    tile : int, optional
        Split images into overlapping `tile`-pixel tiles (a quarter overlap), each scored as
        an image; None scores whole images.
    smoothing_sigma : float, default 4.0
        Gaussian smoothing of the patch map, in model-input pixels.
    target_fpr : float, default 0.01
        False-positive rate the calibrated thresholds aim at.
    calibration_fraction : float, default 0.1
        Share of the normal images held out to calibrate thresholds, in [0, 1).
    seed : int, default 0
        Seed of every random step (held-out split, projections, training).
    skip_bad : bool, default False
        Skip unreadable images with a warning instead of failing.
    per_image_contrast : bool, default False
        Standardise each image's intensities before the model (for varying exposure).
    colour_balance : bool, default False
        Grey-world balance of each image's colour channels before the model (and before
        `per_image_contrast`; with it, white-balance changes vanish:
        `oddity.image.geometry.balance_channels`); no effect on grey images.
    normalise_after_resize : bool, default False
        Apply `colour_balance` and `per_image_contrast` with the image's statistics to the
        model input after the resize (`oddity.image.geometry.normalised_input`: the same up to
        where values clip, cheaper by the area ratio) instead of to the image before it.
    border_rings : int, default 0
        Standardise maps by their normal statistics at each distance from the border, over
        this many rings of the patch grid (`oddity.image.border`); 0 turns it off.
    calibration : {"auto", "holdout", "cross", "leave-one-out"}, default "auto"
        How the thresholds are calibrated (see the module docstring).
    fit_jitter : float, default 0.0
        Photometric augmentation at fit: each normal image is learned as it is and once more
        with a random brightness, contrast, gamma and white-balance change of this strength
        (`oddity.image.photometric.jitter`: 0.2 means +-20%, gamma 0.8 to 1.25), so that such
        lighting changes are learned as normal; fit sees twice the images, and each held-out
        (or out-of-fold) image calibrates with the larger of its score as it is and once
        jittered (`calibration_scores`). 0 turns it off.

    Attributes
    ----------
    threshold_ : Threshold
        Image threshold calibrated by `fit`.
    pixel_threshold_ : Threshold or None
        Pixel threshold for masks (None for a detector that does not localise).
    image_size_ : int or None
        The model input's short side `fit` used (`image_size`, or what "auto" chose).
    input_shape_ : tuple of int or None
        The fixed model input shape, for detectors that need one (PaDiM).
    border_ : BorderStandardiser or None
        Border statistics of the maps, when `border_rings` > 0.
    map_range_ : tuple of float or None
        Smallest and largest value of the calibration images' maps: overlays colour maps on
        this range, centred on the pixel threshold (`oddity.viz.centre_range`), so every image
        is coloured alone, the same way in every run (None for models saved before it was
        kept, or that do not localise).
    skipped_ : set of str or None
        Files skipped as unreadable by the last `fit` (not saved).
    fitted_samples_ : list or None
        The training samples of the last `fit`, in the order the model learned them (not
        saved; leave-one-image-out calibration refers to them by index).
    feature_source : callable or None
        Where a `feature_fit` detector's `fit` takes the training features from: called with
        (detector, samples, verbose), it yields `fit_features` of each model input in order;
        None computes them here (`oddity.distributed.fit_on_cluster` sets a Dask cluster).
    selection_ : dict or None
        The validation table of `oddity fit auto` when the detector was chosen by it
        (`oddity.image.select`), saved with the model; None otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> normal = np.random.default_rng(0).uniform(0.4, 0.6, size=(12, 64, 64, 3))
    >>> detector = oddity.create("padim", image_size=64).fit(normal, verbose=False)
    >>> parts = normal[:2].copy()
    >>> parts[1, 20:40, 20:40] = 1.0                       # a bright square on the second part
    >>> result = detector.predict(parts, verbose=False)
    >>> result.labels.tolist(), result.maps[1].shape, bool(result.masks[1][30, 30])
    ([False, True], (64, 64), True)
    """

    modality: ClassVar[str] = "image"
    needs_fixed_shape: ClassVar[bool] = False
    localises: ClassVar[bool] = True  # False: image-level only, no anomaly maps (see module doc)
    zero_shot: ClassVar[bool] = False  # True: scores a batch against itself (see module doc)
    min_shots: ClassVar[int] = 1  # fewest images a few-shot fit accepts (see oddity.image.fewshot)
    not_a_graph: ClassVar[str | None] = None  # why the method has no kernel (see module doc)
    cheap_refit: ClassVar[bool] = False  # True: "auto" calibration cross-fits (see module doc)
    image_out: ClassVar[bool] = False  # True: scores a training image without it, no refit (see module doc)
    feature_fit: ClassVar[bool] = False  # True: fits from `fit_features` of each input (see module doc)

    pixel_threshold_: Threshold | None = None
    image_size_: int | None = None
    input_shape_: tuple[int, int] | None = None
    border_: BorderStandardiser | None = None
    map_range_: tuple[float, float] | None = None
    skipped_: set[str] | None = None  # files skipped as unreadable by the last fit (not saved)
    # Where a feature_fit detector takes its training features from: (detector, samples, verbose)
    # -> features in input order; None computes them here (`oddity.distributed.fit` sets a cluster).
    feature_source: Callable[[ImageDetector, list, bool], Iterable[Any]] | None = None
    calibration_images_: list[str] | None = None  # files that calibrated the thresholds (export checks parity on them)
    fitted_samples_: list | None = None  # the training samples of the last fit, in stream order (not saved)
    selection_: dict[str, Any] | None = None  # validation table of `oddity fit auto` (oddity.image.select)

    def __init__(self, *, image_size: int | str = resolution.AUTO, tile: int | None = None,
                 smoothing_sigma: float = 4.0, target_fpr: float = 0.01,
                 calibration_fraction: float = 0.1, seed: int = 0, skip_bad: bool = False,
                 per_image_contrast: bool = False, border_rings: int = 0, calibration: str = "auto",
                 fit_jitter: float = 0.0, colour_balance: bool = False, normalise_after_resize: bool = False):
        self.image_size = image_size
        self.tile = tile
        self.smoothing_sigma = smoothing_sigma
        self.target_fpr = target_fpr
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.skip_bad = skip_bad
        self.per_image_contrast = per_image_contrast
        self.border_rings = border_rings
        self.calibration = calibration
        self.fit_jitter = fit_jitter
        self.colour_balance = colour_balance
        self.normalise_after_resize = normalise_after_resize

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        resolution.check_image_size(self.image_size)
        if self.tile is not None and self.tile < 32:
            raise ConfigError(f"tile must be at least 32 pixels (or None for no tiling), got {self.tile}")
        if self.border_rings < 0:
            raise ConfigError(f"border_rings must be 0 (off) or positive, got {self.border_rings}")
        check_calibration(self.target_fpr, self.calibration_fraction)
        check_seed(self.seed)
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}")
        if self.calibration == "leave-one-out" and not self.image_out:
            raise ConfigError(f"calibration='leave-one-out' needs a detector that can score a training image "
                              f"without refitting (patchcore); {self.name} cannot: use 'cross' or 'holdout'")
        if not 0.0 <= self.fit_jitter < 1.0:
            raise ConfigError(f"fit_jitter must lie in [0, 1) (0 turns it off), got {self.fit_jitter}")

    # --- hooks for subclasses --------------------------------------------------------------
    def _fit_images(self, images: ImageStream) -> None:
        raise NotImplementedError

    def fit_features(self, x: torch.Tensor) -> Any:
        """The features `fit` learns from, of one model input (detectors with `feature_fit`).

        Parameters
        ----------
        x : torch.Tensor
            (1, 3, h, w) model input.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            Its features; they depend on the parameters (and `input_shape_`) alone.

        Raises
        ------
        NotImplementedError
            If the detector does not fit from per-input features.
        """
        raise NotImplementedError(f"{self.name} does not fit from per-image features")

    def _fit_features(self, features: Iterable[Any], images: ImageStream) -> None:
        raise NotImplementedError

    def _scorer(self, portable: bool) -> nn.Module:
        raise NotImplementedError

    def _left_out_scorer(self, image: int) -> nn.Module:
        """Detectors with `image_out`: the fitted scorer without what training image `image`
        (its index in the fitted stream) contributed, right after `_learn`."""
        raise NotImplementedError

    def _model_threshold(self) -> Threshold | None:
        """Called after `_fit_images`: an image threshold derived from the fitted model itself
        (e.g. a chi-squared quantile), used instead of calibration on held-out images; None
        (the default) calibrates on held-out images."""
        return None

    # --- the scoring graph and its pre- and post-processing ---------------------------------
    def spec(self) -> ImageSpec:
        """Pre- and post-processing of this detector's images, as data.

        Returns
        -------
        ImageSpec
            Sizes, tiling, contrast and smoothing (`oddity.image.spec`).

        Raises
        ------
        NotFittedError
            If the method learns its input shape in fit and is not fitted.
        """
        if self.needs_fixed_shape and self.input_shape_ is None:
            raise NotFittedError(f"{type(self).__name__} learns its input shape in fit: call fit first")
        return ImageSpec(image_size=self.input_size(),
                         input_shape=self.input_shape_ if self.needs_fixed_shape else None,
                         tile=self.tile, per_image_contrast=self.per_image_contrast,
                         colour_balance=self.colour_balance,
                         normalise_after_resize=self.normalise_after_resize,
                         smoothing_sigma=self.smoothing_sigma, localises=self.localises)

    def input_size(self) -> int:
        """The model input's short side: `image_size`, or what "auto" chose at fit.

        Returns
        -------
        int
            Pixels; a zero-shot detector (no training images) resolves "auto" to
            `oddity.image.resolution.BASE_SIZE`.

        Raises
        ------
        NotFittedError
            If `image_size` is "auto" and `fit` has not chosen it yet.
        """
        if self.image_size != resolution.AUTO:
            return int(self.image_size)
        if self.image_size_ is not None:
            return self.image_size_
        if self.zero_shot:
            return resolution.BASE_SIZE
        raise NotFittedError(f"{type(self).__name__} chooses image_size='auto' from the training "
                             "images: call fit first (or give image_size in pixels)")

    def kernel(self, portable: bool = False, left_out: int | None = None) -> ImageKernel:
        """The fitted scoring graph: (N, 3, h, w) model inputs -> (scores (N,), maps (N, h', w')).

        Parameters
        ----------
        portable : bool
            Pure torch operations only (what `oddity export` traces); the default may use
            faster in-process libraries with the same results.
        left_out : int, optional
            Score as the fitted model without training image `left_out` (index in the fitted
            stream; leave-one-image-out calibration, right after fitting a class with
            `image_out`).

        Returns
        -------
        ImageKernel
            A module in eval mode holding everything learned as buffers.

        Raises
        ------
        ConfigError
            If the method cannot be one graph (`not_a_graph` says why).
        NotFittedError
            With `left_out`, if the model was not just fitted (a loaded one cannot leave out).
        DataError
            With `left_out`, if nothing of the model is left without that image.
        """
        if self.not_a_graph is not None:
            raise ConfigError(f"{self.name} has no scoring graph: {self.not_a_graph}")
        scorer = self._scorer(portable) if left_out is None else self._left_out_scorer(left_out)
        return ImageKernel(scorer, self.border_).eval()

    def _parts(self, pixels: np.ndarray) -> list[np.ndarray]:
        return [pixels[t:b, l:r] for t, l, b, r in self.spec().boxes(pixels.shape[:2])]

    def _model_input(self, pixels: np.ndarray) -> torch.Tensor:
        """The (1, 3, h, w) tensor a method sees for one image or tile."""
        return torch.from_numpy(self.spec().model_input(pixels))[None]

    def _split_calibration(self, samples: list) -> tuple[list, list]:
        """Hold out images for calibration by the rule of `oddity.core.thresholds.held_out_count`."""
        count = held_out_count(len(samples), self.calibration_fraction)
        if count == 0:
            return samples, []
        order = np.random.default_rng(self.seed).permutation(len(samples))
        held_out = set(order[:count].tolist())
        fit = [s for i, s in enumerate(samples) if i not in held_out]
        return fit, [s for i, s in enumerate(samples) if i in held_out]

    # --- public API ------------------------------------------------------------------------
    def cross_fits(self, n_images: int) -> bool:
        """Whether `fit` on `n_images` images calibrates by cross-fitting (see module docstring):
        asked for or "auto" on a cheap detector, with at least two images per fold and no
        border statistics to learn.

        Parameters
        ----------
        n_images : int
            Number of normal images `fit` is given.

        Returns
        -------
        bool
            True when `fit` cross-fits.
        """
        wanted = self.calibration == "cross" or (self.calibration == "auto" and self.cheap_refit)
        return wanted and n_images >= 2 * CROSS_FOLDS and not (self.border_rings and self.localises)

    def leaves_images_out(self, n_images: int) -> bool:
        """Whether `fit` on `n_images` images calibrates leave-one-image-out (see module
        docstring): asked for or "auto" on a class with `image_out`, with at least
        `2 * CROSS_FOLDS` images (fewer: held out).

        Parameters
        ----------
        n_images : int
            Number of normal images `fit` is given.

        Returns
        -------
        bool
            True when `fit` leaves one image out.
        """
        wanted = self.calibration == "leave-one-out" or (self.calibration == "auto" and self.image_out)
        return wanted and self.image_out and n_images >= 2 * CROSS_FOLDS

    def calibration_scores(self, samples: list, verbose: bool = False, left_out: int | None = None,
                           threads: int | None = None,
                           patch_maps: list[np.ndarray] | None = None) -> ImageScores:
        """Scores (and maps) of normal `samples` to calibrate thresholds on.

        With `fit_jitter`, each image is also scored once photometrically jittered
        (`oddity.image.photometric`) and keeps the larger score (and the pixel-wise larger
        map): the thresholds then allow for the lighting changes the model learned as normal,
        still one score per image.

        Parameters
        ----------
        samples : list
            Normal image samples (held out, or out of fold).
        verbose : bool, default False
            Show a progress bar.
        left_out : int, optional
            Score by the fitted model without training image `left_out` (`kernel`).
        threads : int, optional
            Engine calls at once with `left_out` (`oddity.image.pipeline.score_samples`).
        patch_maps : list of numpy.ndarray, optional
            With `left_out` and a single sample: the raw left-out patch maps of its parts,
            already computed (for the border statistics). They pass through the kernel's
            border standardisation and the same pipeline instead of running the model again
            (the jittered copy still runs it).

        Returns
        -------
        ImageScores
            One score (and map) per sample.
        """
        if left_out is None:
            def score(images: list, verbose: bool) -> ImageScores:
                return self.score(images, verbose=verbose, desc="calibrate", _calibrating=True)
        else:
            def score(images: list, verbose: bool) -> ImageScores:
                kernel = (self.kernel(left_out=left_out) if patch_maps is None or images is not samples
                          else ImageKernel(ReplayScorer(patch_maps), self.border_).eval())
                return score_samples(self.spec(), run_kernel(kernel), images, skip_bad=self.skip_bad,
                                     skipped=self.skipped_, verbose=verbose, desc="calibrate", threads=threads)
        result = score(samples, verbose)
        if not self.fit_jitter:
            return result
        jittered = score([photometric.JitteredSample(s, self.fit_jitter, (self.seed, 21, i))
                          for i, s in enumerate(samples)], False)
        maps = None if result.maps is None else [np.maximum(a, b) for a, b in zip(result.maps, jittered.maps)]
        return ImageScores(scores=np.maximum(result.scores, jittered.scores), maps=maps, paths=result.paths)

    def left_out_image_scores(self, images: list[int], verbose: bool,
                              patch_maps: list[list[np.ndarray]] | None = None) -> ImageScores:
        """Calibration scores (and maps) of fitted training images, each by the fitted model
        without that image (`calibration_scores` with `left_out`), several images at once.

        Parameters
        ----------
        images : list of int
            Indices of the images in the fitted stream (`fitted_samples_`).
        verbose : bool
            Show a progress bar.
        patch_maps : list of list of numpy.ndarray, optional
            Each image's raw left-out patch maps, already computed (`calibration_scores`).

        Returns
        -------
        ImageScores
            One score (and map) per image, in the order given.
        """
        assert self.fitted_samples_ is not None
        samples = self.fitted_samples_

        def one(position: int) -> ImageScores:
            return self.calibration_scores([samples[images[position]]], left_out=images[position], threads=1,
                                           patch_maps=None if patch_maps is None else patch_maps[position])

        with ThreadPoolExecutor(engine_threads()) as pool:
            parts = list(tqdm(pool.map(one, range(len(images))), total=len(images), desc="calibrate (leave one image out)",
                              unit="img", disable=not verbose))
        maps = [m for part in parts for m in part.maps] if self.localises else None  # type: ignore[union-attr]
        return ImageScores(scores=np.concatenate([part.scores for part in parts]), maps=maps,
                           paths=[path for part in parts for path in part.paths])

    def left_out_scores(self, groups: list[list], verbose: bool, first_only: bool = False) -> ImageScores:
        """Scores (and maps) of each group's images by a copy of this detector fitted on the
        other groups, in group order.

        Parameters
        ----------
        groups : list of list
            Groups of image samples (folds, or one shot and its views).
        verbose : bool
            Show a progress bar over the groups.
        first_only : bool, default False
            Score only the first image of each group.

        Returns
        -------
        ImageScores
            The left-out scores (and maps) of every group, concatenated.
        """
        scores, maps, paths = [], [], []
        for index, group in enumerate(tqdm(groups, desc="calibrate", unit="fit", disable=not verbose)):
            copy = type(self)(**{**self.get_params(), "image_size": self.input_size()})
            copy.skipped_ = set()
            copy.feature_source = self.feature_source
            copy._learn([item for other, g in enumerate(groups) if other != index for item in g], False)
            result = copy.calibration_scores(group[:1] if first_only else group)
            scores.extend(result.scores.tolist())
            maps.extend(result.maps or [])
            paths.extend(result.paths)
        return ImageScores(scores=np.asarray(scores), maps=maps if self.localises else None, paths=paths)

    def fit(self, data: ImageInput, *, verbose: bool = True) -> "ImageDetector":
        """Learn normal from images of normal items, then calibrate thresholds on images the
        model did not learn from: each training image scored without its own contribution when
        leaving one image out (`leaves_images_out`), out-of-fold scores when cross-fitting
        (`cross_fits`; in both the model itself is fitted on every image), else held-out images.

        Parameters
        ----------
        data : str, path, list or array
            A folder of normal images or an MVTec AD category (its ``train/good``), image
            paths, an (N, H, W, 3) array or a list of (H, W, 3) arrays in [0, 1] or uint8.
        verbose : bool, default True
            Show progress bars.

        Returns
        -------
        ImageDetector
            self, fitted.

        Raises
        ------
        DataError
            If no image can be read, or an unreadable one is met without `skip_bad`.
        ConfigError
            If a hyper-parameter is invalid.

        Notes
        -----
        Held out: a `calibration_fraction` of the images (at least one when there are two or
        more, and at least a quarter up to 10 images; `oddity.core.thresholds.held_out_count`)
        is scored and used to set the image threshold (target false-positive rate
        `target_fpr`) and the pixel threshold (same rate, on each held-out image's map maximum,
        so a normal image gets an empty mask with the same confidence). With no image held out
        (`calibration_fraction=0` or a single image) the thresholds come from the training
        images themselves and are optimistic; set one with `set_threshold` in that case.
        A detector that does not localise gets no pixel threshold; one whose model gives an
        image threshold (`_model_threshold`) uses it instead of the held-out images.
        With `border_rings` > 0 the held-out images first learn the border standardisation
        of maps (`oddity.image.border`), then calibrate the thresholds on standardised maps;
        the ring statistics pool thousands of patches, so reusing the images barely moves an
        image's own standardised maximum (splitting the few held-out images would cost more)."""
        self.validate_params()
        samples = as_samples(data, for_fit=True)
        if len(samples) == 1:
            warnings.warn(SINGLE_IMAGE_WARNING.format(name=samples[0].name), stacklevel=2)
        self.skipped_ = set()
        if self.leaves_images_out(len(samples)):
            self._learn(samples, verbose)
            assert self.fitted_samples_ is not None
            images = [i for i, s in enumerate(self.fitted_samples_) if s.name not in self.skipped_]
            self.calibration_images_ = [self.fitted_samples_[i].name for i in images
                                        if isinstance(self.fitted_samples_[i], ImageSample)]
            raw = None
            if self.border_rings and self.localises:
                raw = self._left_out_patch_maps(images, verbose)
                self.border_ = BorderStandardiser.fit([m for parts in raw for m in parts], self.border_rings)
            if self.threshold_ is None or self.localises:
                self._calibrate(self.left_out_image_scores(images, verbose, raw), "leave-one-image-out")
            return self
        if self.cross_fits(len(samples)):
            self._learn(samples, verbose)
            self.calibration_images_ = [s.name for s in samples if isinstance(s, ImageSample)]
            if self.threshold_ is None or self.localises:
                folds = fold_indices(len(samples), CROSS_FOLDS, self.seed)
                scores = self.left_out_scores([[samples[i] for i in fold] for fold in folds], verbose)
                self._calibrate(scores, "cross-conformal")
            return self
        fit_samples, calibration_samples = self._split_calibration(samples)
        self._learn(fit_samples, verbose)
        normal = calibration_samples or fit_samples
        self.calibration_images_ = [s.name for s in normal if isinstance(s, ImageSample)]
        if self.border_rings and self.localises:
            self.border_ = BorderStandardiser.fit(self._patch_maps(normal, verbose), self.border_rings)
        if self.threshold_ is None or self.localises:
            calibration = self.calibration_scores(normal, verbose)
            self._calibrate(calibration, "conformal" if calibration_samples else "in-sample")
        return self

    def _learn(self, samples: list, verbose: bool) -> None:
        """Fit the method on `samples` (no calibration); the image threshold becomes the
        model's own (`_model_threshold`) or None, the pixel threshold None, and maps are
        not border-standardised until `fit` learns the statistics."""
        torch.manual_seed(self.seed)
        self.border_ = None
        self.image_size_ = None if self.image_size == resolution.AUTO else int(self.image_size)
        if self.needs_fixed_shape or self.image_size_ is None:
            samples, sizes = self._readable_sizes(samples)
            if self.image_size_ is None:
                self.image_size_ = resolution.auto_size(sizes, self.tile)
                if verbose:
                    tqdm.write(resolution.describe(sizes, self.image_size_, self.tile), file=sys.stderr)
            if self.tile is not None:
                sizes = [(min(h, self.tile), min(w, self.tile)) for h, w in sizes]
            if self.needs_fixed_shape:
                self.input_shape_ = geometry.fixed_shape(sizes, self.image_size_)
        self.fitted_samples_ = samples
        images = ImageStream(self, samples, verbose, f"fit {self.name}", self.fit_jitter)
        if not self.feature_fit:
            self._fit_images(images)
        else:
            with torch.inference_mode():
                features = ((self.fit_features(x) for x in images) if self.feature_source is None
                            else self.feature_source(self, samples, verbose))
                self._fit_features(features, images)
        self.threshold_, self.pixel_threshold_ = self._model_threshold(), None
        self.map_range_ = None

    def _readable_sizes(self, samples: list) -> tuple[list, list[tuple[int, int]]]:
        """(height, width) of each sample from its header; under `skip_bad` a file whose header
        cannot be read is skipped with a warning (recorded in `skipped_`) instead of failing."""
        kept, sizes = [], []
        for sample in samples:
            try:
                sizes.append(_sample_hw(sample))
            except DataError as exc:
                skip_bad_file(sample, exc, self.skip_bad, self.skipped_)
                continue
            kept.append(sample)
        if not kept:
            raise DataError("none of the training images could be read")
        return kept, sizes

    def _calibrate(self, normal: ImageScores, method: str) -> None:
        """Set the image threshold (unless the model gave one) and, for a detector that
        localises, the pixel threshold from scores and maps of normal images; `method` names
        how those images relate to the fitted ones ("conformal": held out)."""

        def calibrated(scores: np.ndarray) -> Threshold:
            return calibrate_threshold(scores, self.target_fpr, method)

        if self.threshold_ is None:
            self.threshold_ = calibrated(normal.scores)
        if self.localises:
            assert normal.maps is not None
            self.pixel_threshold_ = calibrated(np.array([m.max() for m in normal.maps]))
            self.map_range_ = (float(min(m.min() for m in normal.maps)), float(max(m.max() for m in normal.maps)))

    def _patch_maps(self, samples: list, verbose: bool) -> list[np.ndarray]:
        """The raw patch maps of the method for these images (every tile of each)."""
        raw = ImageKernel(self._scorer(portable=False)).eval()
        with torch.inference_mode():
            return [raw(x)[1][0].numpy() for x in ImageStream(self, samples, verbose, "border statistics")]

    def _left_out_patch_maps(self, images: list[int], verbose: bool) -> list[list[np.ndarray]]:
        """The raw patch maps of each fitted image (every tile) without that image."""
        assert self.fitted_samples_ is not None
        maps = []
        with torch.inference_mode():
            for image in tqdm(images, desc="border statistics", unit="img", disable=not verbose):
                raw = ImageKernel(self._left_out_scorer(image)).eval()
                maps.append([raw(x)[1][0].numpy() for x in ImageStream(self, [self.fitted_samples_[image]], False, "")])
        return maps

    def score(self, data: ImageInput, *, verbose: bool = True, desc: str = "score",
              batch_size: int = BATCH_SIZE, _calibrating: bool = False) -> ImageScores:
        """Anomaly score per image and an anomaly map per image at its original size.

        Parameters
        ----------
        data : str, path, list or array
            Images as for `fit` (a folder is read as it is, not as a training layout).
        verbose : bool, default True
            Show a progress bar.
        desc : str, default "score"
            Label of the progress bar.
        batch_size : int, default BATCH_SIZE
            Most model inputs (images or tiles) scored by `kernel()` at once.

        Returns
        -------
        ImageScores
            Scores (higher = more anomalous) and maps (None for a detector that does not
            localise).

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        DataError
            If none of the images can be read.
        """
        if not _calibrating:
            self._check_fitted()
        samples = as_samples(data, for_fit=False)
        return score_samples(self.spec(), run_kernel(self.kernel()), samples, batch_size=batch_size,
                             skip_bad=self.skip_bad, skipped=self.skipped_ if _calibrating else None,
                             verbose=verbose, desc=desc)

    def predict(self, data: ImageInput, *, verbose: bool = True,
                batch_size: int = BATCH_SIZE) -> ImagePrediction:
        """Scores and maps plus labels and masks from the calibrated thresholds.

        Parameters
        ----------
        data : str, path, list or array
            Images as for `score`.
        verbose : bool, default True
            Show a progress bar.
        batch_size : int, default BATCH_SIZE
            Most model inputs scored at once.

        Returns
        -------
        ImagePrediction
            Scores, maps, labels (score above the image threshold) and masks (map above the
            pixel threshold); maps and masks are None for a detector that does not localise.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        DataError
            If none of the images can be read.
        """
        self._check_fitted()
        result = self.score(data, verbose=verbose, desc="predict", batch_size=batch_size)
        threshold, pixel = self.decision_thresholds(result)
        assert threshold is not None
        return decide(result, threshold, pixel)

    def decision_thresholds(self, result: ImageScores) -> tuple[Threshold | None, Threshold | None]:
        """The (image, pixel) thresholds that decide on `result`.

        Parameters
        ----------
        result : ImageScores
            Scores of the batch being decided on.

        Returns
        -------
        tuple of Threshold
            The calibrated thresholds; a zero-shot detector derives them from the batch.
        """
        return self.threshold_, self.pixel_threshold_

    # --- persistence -----------------------------------------------------------------------
    def _thresholds(self) -> dict[str, Threshold]:
        thresholds = super()._thresholds()
        if self.pixel_threshold_ is not None:
            thresholds["pixel_threshold_"] = self.pixel_threshold_
        return thresholds

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {}
        if self.border_ is not None:
            arrays = {"border_mean": self.border_.mean, "border_std": self.border_.std}
        return {"image_size_": self.image_size_,
                "input_shape_": list(self.input_shape_) if self.input_shape_ else None,
                "border": self.border_ is not None, "pipeline": self.spec().to_dict(),
                "calibration_images_": self.calibration_images_,
                "map_range_": list(self.map_range_) if self.map_range_ else None,
                **({"selection_": self.selection_} if self.selection_ is not None else {})}, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        shape = values.get("input_shape_")
        self.input_shape_ = tuple(shape) if shape else None
        # files saved before image_size="auto" hold the size in their pipeline description only
        size = values.get("image_size_", values.get("pipeline", {}).get("image_size"))
        self.image_size_ = None if size is None else int(size)
        if self.image_size == resolution.AUTO and not self.zero_shot:
            if self.image_size_ is None or self.image_size_ < resolution.MIN_SIZE:
                raise DataError(f"model file lacks a valid input size chosen by image_size='auto' "
                                f"(image_size_ = {self.image_size_!r})")
        self.calibration_images_ = values.get("calibration_images_")
        map_range = values.get("map_range_")
        self.map_range_ = (float(map_range[0]), float(map_range[1])) if map_range else None
        self.selection_ = values.get("selection_")
        self.border_ = None  # a few-shot model has no border statistics (too few images)
        if values.get("border", "border_mean" in arrays):
            if "border_mean" not in arrays or "border_std" not in arrays:
                raise DataError("model file lacks its border statistics (border_mean, border_std)")
            self.border_ = BorderStandardiser(arrays["border_mean"], arrays["border_std"])

    def _verify(self, path: str) -> None:
        """The base checks, a pixel threshold for a detector that localises, and one synthetic
        grey image scored to a finite score: arrays that do not fit the configuration (a
        memory bank of the wrong width, a network of another shape) fail here, at load."""
        super()._verify(path)
        if self.zero_shot:
            return
        if self.localises and self.pixel_threshold_ is None:
            raise ModelFileError(f"{path}: model file has no pixel threshold; refit it")
        side = self.tile or self.input_size()
        h, w = self.input_shape_ if self.needs_fixed_shape and self.input_shape_ else (side, side)
        try:
            with torch.inference_mode():
                grey = np.full((1, h, w, 3), 128, dtype=np.uint8)
                score = float(self.score(grey, verbose=False).scores[0])
        except Exception as exc:  # any failure here means the stored arrays are unusable
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path}: the model's arrays do not fit its configuration "
                                 f"({reason}); refit it") from None
        if not np.isfinite(score):
            raise ModelFileError(f"{path}: the model scores a plain grey image as {score}; refit it")
