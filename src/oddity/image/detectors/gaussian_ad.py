"""Gaussian-AD: a multivariate Gaussian of globally pooled features at every backbone level.

Rippel, Mertens and Merhof, "Modeling the Distribution of Normal Data in Pre-Trained Deep
Features for Anomaly Detection", ICPR 2020, https://arxiv.org/abs/2005.14140

Method: each backbone level's features are averaged over all positions; per level, the mean and
a Ledoit-Wolf covariance of the normal images are fitted, and an image's score is the sum over
levels of its Mahalanobis distances. Optional NPCA (`variance_kept`) keeps only the directions
of least variance. Image-level only: no anomaly map (`localises = False`).
`threshold_method="chi2"` gives the paper's working point: the exact quantile of a sum of chi
variables (`chi_sum_quantile`).

Deviations (reasons and figures: docs/methods/gaussian_ad.md):
- EfficientNet-Lite0 stages 1-7 at 256 px instead of EfficientNet-B4 at 380 px (offline weights).
- NPCA keeps exactly the minimal set of components reaching `variance_kept`.
- Default threshold is conformal on held-out images: the chi-squared one flags far too many
  normal images on real data.
- Each image's intensities standardised before the backbone (`per_image_contrast`): pooled
  global features read any lighting change as an anomaly otherwise.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from scipy.signal import fftconvolve
from scipy.stats import chi
from sklearn.covariance import LedoitWolf

from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.core.thresholds import Threshold
from oddity.image.detector import ImageDetector, ImageStream
from oddity.image.features import DEFAULT_INPUT_NORM, LEGACY_PARAMS, check_layers, feature_extractor

ALL_STAGES = tuple(f"stage{i}" for i in range(1, 8))
THRESHOLD_METHODS = ("conformal", "chi2")
_GRID_STEP = 1e-3  # chi_sum_quantile: bin width of the numerical convolution
_TAIL = 1e-12  # chi_sum_quantile: probability mass left out at each end of each density


def chi_sum_quantile(dofs: Sequence[int], probability: float) -> float:
    """The `probability` quantile of a sum of independent chi-distributed variables with `dofs`
    degrees of freedom (a chi variable is the square root of a chi-squared one).

    One variable: the exact quantile. Several: each density is discretised into bins of width
    1e-3 (exact bin probabilities from the CDF, 1e-12 of the mass cut at each end), the bin
    probabilities are convolved, and the quantile is read off the cumulative sum; the result is
    within len(dofs) * 1e-3 / 2 of the exact value.

    Parameters
    ----------
    dofs : sequence of int
        Degrees of freedom of each variable (positive).
    probability : float
        In (0, 1).

    Returns
    -------
    float
        The quantile.

    Raises
    ------
    ConfigError
        If a degree of freedom or the probability is out of range.
    """
    dofs = [int(d) for d in dofs]
    if not dofs or min(dofs) < 1:
        raise ConfigError(f"degrees of freedom must be positive integers, got {dofs}")
    if not 0.0 < probability < 1.0:
        raise ConfigError(f"probability must lie in (0, 1), got {probability}")
    if len(dofs) == 1:
        return float(chi.ppf(probability, dofs[0]))
    offset, pmf = 0, np.ones(1)
    for d in dofs:
        low = int(chi.ppf(_TAIL, d) // _GRID_STEP)
        high = int(chi.isf(_TAIL, d) // _GRID_STEP) + 1
        edges = np.arange(low, high + 1) * _GRID_STEP
        bins = np.diff(chi.cdf(edges, d))
        pmf = np.clip(fftconvolve(pmf, bins), 0.0, None)
        offset += low
    cumulative = np.cumsum(pmf) / pmf.sum()
    index = int(np.searchsorted(cumulative, probability))
    # The sum of the bins' left edges is index * step; the true sum lies up to len(dofs) bins
    # to the right of it: take the middle of that interval.
    return float((offset + index + len(dofs) / 2) * _GRID_STEP)


def npca_components(centred: np.ndarray, variance_kept: float) -> np.ndarray:
    """(k, d) principal directions of the rows of `centred` (already mean-free) with the least
    variance: the fewest trailing components (smallest variances) whose variances together
    make up at least `variance_kept` of the total.

    Parameters
    ----------
    centred : numpy.ndarray
        (n, d) mean-free rows.
    variance_kept : float
        Share of the variance, in (0, 1].

    Returns
    -------
    numpy.ndarray
        (k, d) directions.

    Raises
    ------
    DataError
        If the rows do not vary.
    """
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    total = variance.sum()
    if total <= 0:
        raise DataError("NPCA: the normal images' features do not vary at this level")
    tail = np.cumsum(variance[::-1])[::-1] / total  # tail[j]: share of components j, j+1, ...
    first = int(np.flatnonzero(tail >= variance_kept - 1e-12).max())
    return directions[first:]


def fit_gaussian(features: np.ndarray, variance_kept: float | None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The Gaussian of one level, fitted to the (n, C) pooled features of normal images.

    Parameters
    ----------
    features : numpy.ndarray
        (n, C) float64 rows, one per image.
    variance_kept : float or None
        NPCA share (`npca_components`); None keeps every dimension.

    Returns
    -------
    mean : numpy.ndarray
        (C,) mean row.
    projection : numpy.ndarray or None
        (k, C) NPCA directions, None without NPCA.
    precision : numpy.ndarray
        (k, k) inverse Ledoit-Wolf covariance of the (projected) centred rows.

    Raises
    ------
    DataError
        If fewer than two rows are given (no covariance).
    """
    if len(features) < 2:
        raise DataError(f"Gaussian-AD learns from {len(features)} image(s) here (the others "
                        "are held out to calibrate thresholds, see calibration_fraction) "
                        "and needs at least two to fit a covariance: give at least three "
                        "normal images")
    mean = features.mean(axis=0)
    centred = features - mean
    projection = None
    if variance_kept is not None:
        projection = npca_components(centred, variance_kept)
        centred = centred @ projection.T
    estimate = LedoitWolf(assume_centered=True).fit(centred)
    return mean, projection, np.asarray(estimate.precision_, dtype=np.float64)


def level_distances(levels: list[torch.Tensor], model: nn.Module) -> torch.Tensor:
    """(n, L) Mahalanobis distances of (n, C_l) float64 rows at each of the L levels of a
    `GaussianADScorer`'s Gaussians (projected first where NPCA is on).

    Parameters
    ----------
    levels : list of torch.Tensor
        (n, C_l) float64 pooled features per level.
    model : torch.nn.Module
        A `GaussianADScorer` (its buffers hold the Gaussians).

    Returns
    -------
    torch.Tensor
        (n, L) distances.
    """
    columns = []
    for level, features in enumerate(levels):
        delta = features - getattr(model, f"mean_{level}")
        projection = getattr(model, f"projection_{level}", None)
        if projection is not None:
            delta = delta @ projection.T
        squared = ((delta @ getattr(model, f"precision_{level}")) * delta).sum(dim=1)
        columns.append(squared.clamp_min(0).sqrt())
    return torch.stack(columns, dim=1)


class GaussianADScorer(nn.Module):
    """Summed per-level Mahalanobis distances of globally pooled features, in float64;
    the (N, 1, 1) maps hold the scores (image-level detector)."""

    def __init__(self, extractor: nn.Module | None, means: list[np.ndarray],
                 projections: list[np.ndarray | None], precisions: list[np.ndarray]):
        super().__init__()
        self.extractor = extractor
        for level, (mean, projection, precision) in enumerate(zip(means, projections, precisions)):
            self.register_buffer(f"mean_{level}", torch.from_numpy(np.asarray(mean, np.float64)))
            self.register_buffer(f"precision_{level}", torch.from_numpy(np.asarray(precision, np.float64)))
            if projection is not None:
                self.register_buffer(f"projection_{level}", torch.from_numpy(np.asarray(projection, np.float64)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a batch.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, h, w) model inputs, RGB in [0, 1].

        Returns
        -------
        tuple of torch.Tensor
            (scores (N,), maps (N, h', w')).
        """
        assert self.extractor is not None
        pooled = [feature.mean(dim=(2, 3)).double() for feature in self.extractor(x)]
        total = level_distances(pooled, self).sum(dim=1)
        return total, total[:, None, None]


@register("gaussian_ad")
class GaussianAD(ImageDetector):
    """Summed Mahalanobis distances of pooled features to per-level Gaussians (image-level).

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        Pretrained feature extractor (`oddity.backbones.list_backbones`).
    layers : tuple of str, default all stages
        Backbone levels, each with its own Gaussian.
    variance_kept : float, optional
        NPCA: keep the least-variance directions explaining this share of the variance; None
        keeps every dimension.
    threshold_method : {"conformal", "chi2"}, default "conformal"
        Calibrate on held-out images, or use the chi-squared working point of the model.
    per_image_contrast : bool, default True
        Standardise each image's intensities before the model (see `ImageDetector`; on by
        default here, docs/methods/gaussian_ad.md says why).
    **common
        Parameters shared by every image detector (`ImageDetector`).

    Attributes
    ----------
    means_ : list of numpy.ndarray
        Mean pooled feature per level.
    precisions_ : list of numpy.ndarray
        Inverse Ledoit-Wolf covariance per level.
    projections_ : list of numpy.ndarray or None
        NPCA projection per level (None without NPCA).

    See Also
    --------
    docs/methods/gaussian_ad.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> images = np.random.default_rng(0).uniform(0.4, 0.6, size=(10, 64, 64, 3))
    >>> detector = oddity.create("gaussian_ad", image_size=64, layers=("stage3", "stage5")).fit(images, verbose=False)
    >>> probe = images[:2].copy()
    >>> probe[1, 20:40, 20:40] = 1.0                           # a bright square
    >>> result = detector.predict(probe, verbose=False)
    >>> result.maps is None, result.labels.tolist()
    (True, [False, True])
    """

    legacy_params = LEGACY_PARAMS
    cheap_refit = True  # fit = feature statistics: cross-fitting costs CROSS_FOLDS more passes
    feature_fit = True

    localises = False
    min_shots = 2  # statistics across images: one image has no covariance

    def __init__(self, *, backbone: str = "efficientnet_lite0", input_norm: str = DEFAULT_INPUT_NORM, layers: tuple[str, ...] = ALL_STAGES,
                 variance_kept: float | None = None, threshold_method: str = "conformal",
                 per_image_contrast: bool = True, **common: Any):
        super().__init__(per_image_contrast=per_image_contrast, **common)
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = layers
        self.variance_kept = variance_kept
        self.threshold_method = threshold_method
        # Per level: mean (d,), projection (k, d) or None without NPCA, precision (k, k).
        self.means_: list[np.ndarray] | None = None
        self.projections_: list[np.ndarray | None] | None = None
        self.precisions_: list[np.ndarray] | None = None

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_layers(self.layers)
        variance_kept, threshold_method = self.variance_kept, self.threshold_method
        if variance_kept is not None and not 0.0 < variance_kept <= 1.0:
            raise ConfigError(f"variance_kept must lie in (0, 1] (or None for no NPCA), got {variance_kept}")
        if threshold_method not in THRESHOLD_METHODS:
            raise ConfigError(f"threshold_method must be one of {', '.join(THRESHOLD_METHODS)}, "
                              f"got {threshold_method!r}")
        if threshold_method == "chi2" and self.tile is not None:
            raise ConfigError("threshold_method='chi2' bounds the false-positive rate of one image, not "
                              "of the highest of several tiles; use tile=None or threshold_method='conformal'")

    # --- features ------------------------------------------------------------------------
    def _pooled(self, x: torch.Tensor) -> list[np.ndarray]:
        """Globally average-pooled features of one image, one (C,) vector per level."""
        features = feature_extractor(self.backbone, self.layers, self.input_norm)(x)
        return [f.mean(dim=(2, 3))[0].double().numpy() for f in features]

    @property
    def degrees_of_freedom_(self) -> list[int]:
        """Dimensions of the Gaussian at each level (after NPCA)."""
        assert self.precisions_ is not None
        return [len(p) for p in self.precisions_]

    # --- ImageDetector hooks ---------------------------------------------------------------
    def _split_calibration(self, samples: list) -> tuple[list, list]:
        if self.threshold_method == "chi2":
            return samples, []  # the model gives the threshold: fit on every image
        return super()._split_calibration(samples)

    def fit_features(self, x: torch.Tensor) -> list[np.ndarray]:
        """Globally average-pooled features of one model input, one (C,) vector per level (see
        `ImageDetector.fit_features`).

        Parameters
        ----------
        x : torch.Tensor
            (1, 3, h, w) model input.

        Returns
        -------
        list of numpy.ndarray
            One vector per level.
        """
        return self._pooled(x)

    def _fit_features(self, features: Iterable[list[np.ndarray]], images: ImageStream) -> None:
        pooled = list(features)
        if not pooled:
            raise DataError("no training images could be read")
        fitted = [fit_gaussian(np.stack(level), self.variance_kept) for level in zip(*pooled)]
        self.means_, self.projections_, self.precisions_ = (list(part) for part in zip(*fitted))

    def _model_threshold(self) -> Threshold | None:
        if self.threshold_method != "chi2":
            return None
        value = chi_sum_quantile(self.degrees_of_freedom_, 1.0 - self.target_fpr)
        return Threshold(value=value, target_fpr=self.target_fpr, achievable_fpr=self.target_fpr,
                         n_calibration=0, method="chi2")

    def _scorer(self, portable: bool) -> GaussianADScorer:
        assert self.means_ is not None and self.projections_ is not None and self.precisions_ is not None
        return GaussianADScorer(feature_extractor(self.backbone, self.layers, self.input_norm), self.means_,
                                self.projections_, self.precisions_)

    # --- persistence -----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.means_ is not None and self.projections_ is not None and self.precisions_ is not None
        for level, (mean, projection, precision) in enumerate(zip(self.means_, self.projections_,
                                                                  self.precisions_)):
            arrays[f"mean_{level}"] = mean
            arrays[f"precision_{level}"] = precision
            if projection is not None:
                arrays[f"projection_{level}"] = projection
        return values, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        levels = range(len(self.layers))
        missing = [name for level in levels for name in (f"mean_{level}", f"precision_{level}")
                   if name not in arrays]
        if self.variance_kept is not None:
            missing += [f"projection_{level}" for level in levels if f"projection_{level}" not in arrays]
        if missing:
            raise DataError(f"model file lacks the Gaussian-AD arrays {missing}")
        self.means_ = [arrays[f"mean_{level}"] for level in levels]
        self.precisions_ = [arrays[f"precision_{level}"] for level in levels]
        self.projections_ = [arrays.get(f"projection_{level}") for level in levels]

