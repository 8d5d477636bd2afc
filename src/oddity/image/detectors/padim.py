"""PaDiM: a multivariate Gaussian of patch features at every image position.

Defard et al., "PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and
Localization", ICPR 2020, https://arxiv.org/abs/2011.08785

Method: three backbone stages (stride 4, 8, 16) are concatenated on the stride-4 grid and a
fixed random subset of `n_features` channels is kept. Fit: mean and covariance (+ 0.01 I) per
position over the normal images. Score: Mahalanobis distance per position; the map is
upsampled and smoothed, the image score is its maximum.

Deviations (reasons and figures: docs/methods/padim.md):
- EfficientNet-Lite0 stages 2, 3, 5 instead of ResNet-18 layers 1-3 (offline weights; same strides).
- Statistics accumulated in float64 one image at a time; the inverse covariance is kept as an
  inverse Cholesky factor computed with numpy (batched torch inversion was unreliable).
- Every image resized to the training set's median aspect ratio (one shape for all positions).
- Photometric augmentation of the normal images by default (`fit_jitter=0.2`), so that global
  lighting changes are not read as anomalies.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from oddity.core.checks import check_positive_ints
from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.image.detector import ImageDetector, ImageStream
from oddity.image.features import (
    DEFAULT_INPUT_NORM, LEGACY_PARAMS, check_layers, concat_on_first_grid, feature_extractor,
)

REGULARISATION = 0.01


class PaDiMScorer(nn.Module):
    """Mahalanobis distance of each position's selected features to that position's Gaussian;
    the image score is the map's maximum."""

    def __init__(self, extractor: nn.Module, channels: torch.Tensor, mean: torch.Tensor,
                 whitening: torch.Tensor):
        super().__init__()
        self.extractor = extractor
        self.register_buffer("channels", channels)
        self.register_buffer("mean", mean)  # (positions, d)
        self.register_buffer("whitening", whitening)  # (positions, d, d)

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
        features = concat_on_first_grid(self.extractor(x)).index_select(1, self.channels)
        count, dims, height, width = features.shape
        delta = features.reshape(count, dims, height * width).permute(2, 0, 1) - self.mean[:, None, :]
        whitened = torch.bmm(delta, self.whitening.transpose(1, 2))
        maps = whitened.square().sum(dim=2).sqrt().T.reshape(count, height, width)
        return maps.flatten(1).amax(dim=1), maps


@register("padim")
class PaDiM(ImageDetector):
    """Mahalanobis distance of each patch to the Gaussian of normal patches at its position.

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        Pretrained feature extractor (`oddity.backbones.list_backbones`).
    layers : tuple of str, default ("stage2", "stage3", "stage5")
        Backbone stages concatenated on the finest grid.
    n_features : int, default 100
        Number of randomly chosen feature channels kept.
    fit_jitter : float, default 0.2
        Photometric augmentation of the normal images (`ImageDetector`; 0 turns it off). On by
        default for PaDiM: docs/images.md, "Lighting".
    **common
        Parameters shared by every image detector (`ImageDetector`).

    Attributes
    ----------
    channels_ : numpy.ndarray
        Indices of the kept channels.
    mean_ : numpy.ndarray
        Mean feature at every position.
    whitening_ : numpy.ndarray
        Inverse Cholesky factor of the covariance at every position.

    See Also
    --------
    docs/methods/padim.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> images = np.random.default_rng(0).uniform(0.4, 0.6, size=(10, 64, 64, 3))
    >>> detector = oddity.create("padim", image_size=64).fit(images, verbose=False)
    >>> probe = images[:2].copy()
    >>> probe[1, 20:40, 20:40] = 1.0                           # a bright square
    >>> result = detector.predict(probe, verbose=False)
    >>> result.labels.tolist(), detector.threshold_.method
    ([False, True], 'cross-conformal')
    """

    legacy_params = LEGACY_PARAMS
    cheap_refit = True  # fit = feature statistics: cross-fitting costs CROSS_FOLDS more passes

    needs_fixed_shape = True
    min_shots = 2  # statistics across images: one image has no covariance

    def __init__(self, *, backbone: str = "efficientnet_lite0", input_norm: str = DEFAULT_INPUT_NORM,
                 layers: tuple[str, ...] = ("stage2", "stage3", "stage5"),
                 n_features: int = 100, fit_jitter: float = 0.2, **common: Any):
        super().__init__(fit_jitter=fit_jitter, **common)
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = layers
        self.n_features = n_features
        self.channels_: np.ndarray | None = None
        self.mean_: torch.Tensor | None = None
        self.whitening_: torch.Tensor | None = None

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_layers(self.layers)
        check_positive_ints(n_features=self.n_features)

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(h*w, d) selected features of one image, position-major, and the grid (h, w)."""
        features = concat_on_first_grid(feature_extractor(self.backbone, self.layers, self.input_norm)(x))[0]
        selected = features[torch.from_numpy(self.channels_)]
        grid = (selected.shape[1], selected.shape[2])
        return selected.reshape(selected.shape[0], -1).T, grid

    def _fit_images(self, images: ImageStream) -> None:
        total = sum(feature_extractor(self.backbone, self.layers, self.input_norm).channels)
        if self.n_features > total:
            raise ConfigError(f"n_features={self.n_features} exceeds the {total} channels of {self.layers}")
        rng = np.random.default_rng(self.seed)
        self.channels_ = np.sort(rng.choice(total, self.n_features, replace=False))
        count, sums, products = 0, None, None
        with torch.inference_mode():
            for x in images:
                embedding = self._embed(x)[0].double()
                if sums is None:
                    sums = torch.zeros_like(embedding)
                    products = embedding.new_zeros((*embedding.shape, embedding.shape[1]))
                sums += embedding
                products.baddbmm_(embedding[:, :, None], embedding[:, None, :])
                count += 1
        learned = count // (2 if images.jitter else 1)  # a jittered copy is no new image
        if learned < 2:
            raise DataError(f"PaDiM learns from {learned} image(s) here (the others are held out to "
                            "calibrate thresholds, see calibration_fraction) and needs at least two "
                            "to estimate covariances: give at least three normal images")
        mean, products = (sums / count).numpy(), products.numpy()
        covariance = (products - count * mean[:, :, None] * mean[:, None, :]) / (count - 1)
        covariance += REGULARISATION * np.eye(self.n_features)
        self._set_gaussian(mean, covariance)

    def _set_gaussian(self, mean: np.ndarray, covariance: np.ndarray) -> None:
        cholesky = np.linalg.cholesky(covariance)
        whitening = np.linalg.inv(cholesky)
        if not np.all(np.isfinite(whitening)):
            raise DataError("PaDiM covariance is not positive definite; use more training images")
        self.mean_ = torch.from_numpy(mean.astype(np.float32))
        self.whitening_ = torch.from_numpy(whitening.astype(np.float32))

    def _scorer(self, portable: bool) -> PaDiMScorer:
        assert self.mean_ is not None and self.whitening_ is not None and self.channels_ is not None
        return PaDiMScorer(feature_extractor(self.backbone, self.layers, self.input_norm), torch.from_numpy(self.channels_),
                           self.mean_, self.whitening_)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.mean_ is not None and self.whitening_ is not None and self.channels_ is not None
        return values, {**arrays, "channels": self.channels_, "mean": self.mean_.numpy(),
                        "whitening": self.whitening_.numpy()}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        missing = {"channels", "mean", "whitening"} - set(arrays)
        if missing:
            raise DataError(f"model file lacks the PaDiM arrays {sorted(missing)}")
        self.channels_ = arrays["channels"].astype(np.int64)
        self.mean_ = torch.from_numpy(arrays["mean"])
        self.whitening_ = torch.from_numpy(arrays["whitening"])
