"""SimpleNet: a discriminator trained to tell normal patch features from noise-perturbed ones.

Liu, Zhou, Wang, Wang and Li, "SimpleNet: A Simple Network for Image Anomaly Detection and
Localization", CVPR 2023, https://arxiv.org/abs/2303.15140 (code: github.com/DonaldRR/SimpleNet)

Method: locally aggregated patch features of two backbone stages pass a linear adaptor;
anomalous features are adapted normal ones plus Gaussian noise of std `noise_std`; an MLP
discriminator is trained with the truncated L1 loss to tell them apart. A test patch scores
minus its discriminator output; the map is upsampled and smoothed, the image score its maximum.

Deviations (reasons and figures: docs/methods/simplenet.md):
- EfficientNet-Lite0 stages 3 + 5 (152 channels) instead of WideResNet-50 (offline, faster on CPU).
- Training features extracted once and cached (the backbone is frozen).
- Features divided by their measured scale, `noise_std` (0.25) in those units, chosen on
  generated products.
- 10 epochs instead of 160; the last epoch is kept, not the best on test data.
- 256 px short side with the aspect ratio kept instead of a 288 px centre crop.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.checks import check_positive, check_positive_ints
from oddity.core.errors import DataError
from oddity.core.registry import register
from oddity.core.torch_state import load_module_arrays, module_arrays
from oddity.image.detector import ImageDetector, ImageStream
from oddity.image.features import (
    DEFAULT_INPUT_NORM, LEGACY_PARAMS, check_layers, concat_on_first_grid, feature_extractor,
)

LEAKY_SLOPE = 0.2
ADAPTOR_WEIGHT_DECAY = 0.01  # torch AdamW default, as the paper's code
DISCRIMINATOR_WEIGHT_DECAY = 1e-5


def _xavier(module: nn.Module, generator: torch.Generator) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight, generator=generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def build_networks(channels: int, hidden: int, generator: torch.Generator | None = None
                   ) -> tuple[nn.Linear, nn.Sequential]:
    """The feature adaptor and the discriminator for `channels`-dimensional patch features.

    Parameters
    ----------
    channels : int
        Dimension of the patch features.
    hidden : int
        Hidden width of the discriminator.
    generator : torch.Generator, optional
        Seeded generator of the initial weights.

    Returns
    -------
    tuple
        (adaptor, discriminator).
    """
    adaptor = nn.Linear(channels, channels)
    discriminator = nn.Sequential(
        nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(LEAKY_SLOPE),
        nn.Linear(hidden, 1, bias=False),
    )
    if generator is not None:
        _xavier(adaptor, generator)
        _xavier(discriminator, generator)
    return adaptor, discriminator


def truncated_l1_loss(normal: torch.Tensor, anomalous: torch.Tensor, margin: float) -> torch.Tensor:
    """The paper's loss: mean(max(0, margin - D(normal))) + mean(max(0, margin + D(anomalous))).

    Parameters
    ----------
    normal, anomalous : torch.Tensor
        Discriminator outputs D on adapted normal and noised features.
    margin : float
        The margin th.

    Returns
    -------
    torch.Tensor
        The loss (a scalar).
    """
    return torch.clamp(margin - normal, min=0).mean() + torch.clamp(margin + anomalous, min=0).mean()


class SimpleNetScorer(nn.Module):
    """-D(adaptor(feature / scale)) per patch; the image score is the map's maximum."""

    def __init__(self, extractor: nn.Module, local_pool: int, scale: float, adaptor: nn.Linear,
                 discriminator: nn.Sequential):
        super().__init__()
        self.extractor, self.local_pool, self.scale = extractor, local_pool, scale
        self.adaptor, self.discriminator = adaptor, discriminator

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
        embedding = concat_on_first_grid(self.extractor(x), self.local_pool)
        count, channels, height, width = embedding.shape
        patches = embedding.permute(0, 2, 3, 1).reshape(-1, channels)
        maps = -self.discriminator(self.adaptor(patches / self.scale)).reshape(count, height, width)
        return maps.flatten(1).amax(dim=1), maps


def feature_scale(features: torch.Tensor) -> float:
    """The scale training features are divided by before the noise is added, so that
    `noise_std` is relative to the features' spread whatever the backbone.

    Parameters
    ----------
    features : torch.Tensor
        (rows, C) patch features of the training images.

    Returns
    -------
    float
        The mean over channels of the per-channel standard deviation.

    Raises
    ------
    DataError
        If the features do not vary (the scale is zero or not finite).
    """
    scale = float(features.std(dim=0).mean())
    if not np.isfinite(scale) or scale <= 0:
        raise DataError("the training images' features do not vary; SimpleNet cannot learn from them")
    return scale


@register("simplenet")
class SimpleNet(ImageDetector):
    """Discriminator of normal against noise-perturbed patch features, trained on cached features.

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        Pretrained feature extractor (`oddity.backbones.list_backbones`).
    layers : tuple of str, default ("stage3", "stage5")
        Backbone stages whose features are concatenated.
    local_pool : int, default 3
        Size of the neighbourhood each patch feature is averaged over.
    noise_std : float, default 0.25
        Standard deviation of the noise that makes anomalous features, in feature-scale units.
    hidden : int, default 1024
        Hidden units of the discriminator.
    epochs : int, default 10
        Passes over the cached training features.
    batch_images : int, default 8
        Images whose patches form one batch.
    adaptor_lr, discriminator_lr : float, default 1e-4, 2e-4
        Learning rates of the adaptor and the discriminator.
    margin : float, default 0.5
        Margin th of the truncated L1 loss.
    **common
        Parameters shared by every image detector (`ImageDetector`).

    Attributes
    ----------
    adaptor_, discriminator_ : torch.nn.Module
        The trained networks.
    feature_scale_ : float
        Mean per-dimension standard deviation of the training features.
    losses_ : list of float
        Training loss per epoch.

    See Also
    --------
    docs/methods/simplenet.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> images = np.random.default_rng(0).uniform(0.4, 0.6, size=(10, 64, 64, 3))
    >>> detector = oddity.create("simplenet", image_size=64, epochs=2, hidden=64).fit(images, verbose=False)
    >>> probe = images[:2].copy()
    >>> probe[1, 20:40, 20:40] = 1.0                           # a bright square
    >>> result = detector.predict(probe, verbose=False)
    >>> result.maps[1].shape, bool(result.scores[1] > result.scores[0])
    ((64, 64), True)
    """

    legacy_params = LEGACY_PARAMS

    def __init__(self, *, backbone: str = "efficientnet_lite0", input_norm: str = DEFAULT_INPUT_NORM,
                 layers: tuple[str, ...] = ("stage3", "stage5"), local_pool: int = 3,
                 noise_std: float = 0.25, hidden: int = 1024, epochs: int = 10,
                 batch_images: int = 8, adaptor_lr: float = 1e-4, discriminator_lr: float = 2e-4,
                 margin: float = 0.5, **common: Any):
        super().__init__(**common)
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = layers
        self.local_pool = local_pool
        self.noise_std = noise_std
        self.hidden = hidden
        self.epochs = epochs
        self.batch_images = batch_images
        self.adaptor_lr = adaptor_lr
        self.discriminator_lr = discriminator_lr
        self.margin = margin
        self.feature_scale_: float | None = None
        self.adaptor_: nn.Linear | None = None
        self.discriminator_: nn.Sequential | None = None
        self.losses_: list[float] = []

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_layers(self.layers)
        check_positive(noise_std=self.noise_std, adaptor_lr=self.adaptor_lr,
                       discriminator_lr=self.discriminator_lr, margin=self.margin)
        check_positive_ints(hidden=self.hidden, epochs=self.epochs, batch_images=self.batch_images,
                            local_pool=self.local_pool)

    def _patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(h*w, C) locally aggregated patch features of one image and its grid (h, w)."""
        features = feature_extractor(self.backbone, self.layers, self.input_norm)(x)
        embedding = concat_on_first_grid(features, self.local_pool)[0]
        grid = (int(embedding.shape[1]), int(embedding.shape[2]))
        return embedding.permute(1, 2, 0).reshape(-1, embedding.shape[0]), grid

    def _fit_images(self, images: ImageStream) -> None:
        with torch.no_grad():  # not inference_mode: the cache feeds autograd later
            cache = [self._patches(x)[0].contiguous() for x in images]
        if not cache:
            raise DataError("no training images could be read")
        self._train(cache, verbose=images.verbose)

    def _train(self, cache: list[torch.Tensor], verbose: bool = False) -> None:
        """Train adaptor and discriminator on cached (rows, C) patch features, one tensor per
        training image (or tile)."""
        features = torch.cat(cache)
        starts = np.cumsum([0] + [len(c) for c in cache])
        scale = feature_scale(features)
        features = features / scale
        generator = torch.Generator().manual_seed(self.seed)
        adaptor, discriminator = build_networks(features.shape[1], self.hidden, generator)
        adaptor_opt = torch.optim.AdamW(adaptor.parameters(), lr=self.adaptor_lr,
                                        weight_decay=ADAPTOR_WEIGHT_DECAY)
        discriminator_opt = torch.optim.Adam(discriminator.parameters(), lr=self.discriminator_lr,
                                             weight_decay=DISCRIMINATOR_WEIGHT_DECAY)
        adaptor.train()
        discriminator.train()
        losses = []
        bar = tqdm(range(self.epochs), desc="train simplenet", unit="epoch", disable=not verbose)
        for _ in bar:
            order = torch.randperm(len(cache), generator=generator).tolist()
            total, steps = 0.0, 0
            for first in range(0, len(order), self.batch_images):
                chosen = order[first:first + self.batch_images]
                rows = torch.cat([torch.arange(starts[i], starts[i + 1]) for i in chosen])
                normal = adaptor(features[rows])
                anomalous = normal + torch.randn(normal.shape, generator=generator) * self.noise_std
                scores = discriminator(torch.cat([normal, anomalous]))
                loss = truncated_l1_loss(scores[: len(normal)], scores[len(normal):], self.margin)
                adaptor_opt.zero_grad()
                discriminator_opt.zero_grad()
                loss.backward()
                adaptor_opt.step()
                discriminator_opt.step()
                total, steps = total + float(loss.detach()), steps + 1
            losses.append(total / steps)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        self.feature_scale_ = scale
        self.adaptor_, self.discriminator_ = adaptor.eval(), discriminator.eval()
        self.losses_ = losses

    def _scorer(self, portable: bool) -> SimpleNetScorer:
        assert self.adaptor_ is not None and self.discriminator_ is not None and self.feature_scale_
        return SimpleNetScorer(feature_extractor(self.backbone, self.layers, self.input_norm), self.local_pool,
                               self.feature_scale_, self.adaptor_, self.discriminator_)

    # --- persistence -----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.adaptor_ is not None and self.discriminator_ is not None
        arrays.update(module_arrays({"adaptor": self.adaptor_, "discriminator": self.discriminator_}))
        return {**values, "feature_scale_": self.feature_scale_, "losses_": self.losses_}, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        if "adaptor.weight" not in arrays or "feature_scale_" not in values:
            raise DataError("model file lacks the SimpleNet adaptor weights or feature scale")
        adaptor, discriminator = build_networks(arrays["adaptor.weight"].shape[1], self.hidden)
        load_module_arrays({"adaptor": adaptor, "discriminator": discriminator}, arrays,
                           f"SimpleNet hidden={self.hidden}")
        self.feature_scale_ = float(values["feature_scale_"])
        self.losses_ = list(values.get("losses_", []))
        self.adaptor_, self.discriminator_ = adaptor.eval(), discriminator.eval()
