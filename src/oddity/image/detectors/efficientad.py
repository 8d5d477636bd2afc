"""EfficientAD: a student-teacher pair and an autoencoder on a tiny patch description network.

Batzner, Heckler and Koenig, "EfficientAD: Accurate Visual Anomaly Detection at
Millisecond-Level Latencies", WACV 2024, https://arxiv.org/abs/2303.14535
(official code: github.com/nelson1425/EfficientAD; also anomalib's `efficient_ad`)

Method: a teacher patch description network (PDN-small, 33 px receptive field) is distilled
from a pretrained backbone and frozen. A student with twice the output channels learns to
imitate the teacher (hard-feature loss, penalised on generic images) and an autoencoder learns
to predict the teacher's output from the whole image. The local map is the student-teacher
discrepancy, the global map the autoencoder-student one; both are quantile-normalised on
held-out normal images and averaged. The image score is the map's maximum.

Deviations (reasons and figures: docs/methods/efficientad.md):
- Teacher distilled at fit time from EfficientNet-Lite0 stages 3 + 5 (152 channels), not from
  WideResNet-101 on ImageNet (neither available offline).
- Distillation and penalty images: training images plus procedural textures (`generic_images`);
  optional natural images and anomalous copies, off by default.
- Widths 32 / 32 instead of 128 / 64; 4000 steps at learning rate 1e-3 instead of 70 000 at 1e-4.
- Hard-feature loss keeps the paper's number of hard outputs (`hard_count`), not its quantile.
- Each step trains on a random half-size window of the image.
- Maps padded with the zero-discrepancy value, not 0.
- Scoring in bfloat16 where the CPU computes it in hardware (`precision="auto"`).
- Input resized to one shape with the aspect ratio kept; maps smoothed as every detector's.
"""
from __future__ import annotations

import itertools
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from oddity.backbones import FeatureExtractor
from oddity.core.checks import check_fraction, check_positive, check_positive_ints
from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.core.torch_state import flushed_denormals, load_module_arrays, module_arrays
from oddity.image.detector import ImageDetector, ImageStream
from oddity.image.features import (
    DEFAULT_INPUT_NORM, LEGACY_PARAMS, check_layers, concat_on_first_grid, feature_extractor,
)
from oddity.image.geometry import to_tensor
from oddity.image.synth import (
    TEXTURES,
    cut_paste,
    natural_images,
    render_texture,
    texture_anomaly,
    texture_style,
)

MAP_QUANTILES = (0.9, 0.995)  # map normalisation: these quantiles of normal maps go to 0 and 0.1
PDN_STRIDE = 4  # a PDN's output on a window at a multiple of 4 px equals that part of its full output
MAP_PAD = 4  # cells added around the PDN grid so the map covers the image (the paper's padding)
WEIGHT_DECAY = 1e-5
DROPOUT = 0.2
LOCAL_POOL = 3  # distillation targets: 3x3-averaged backbone features, as PatchCore's patches
PAPER_HARD_COUNT = round((1 - 0.999) * 384 * 56 * 56)  # hard outputs per step in the paper: 1204
MIN_CROP = 64  # smallest distillation / penalty crop that leaves the PDN a grid of cells
DISTILL_LR = 1e-3
GREY_DISTILL, GREY_PENALTY = 0.1, 0.3  # probability of a grey image (paper's transforms)
PRECISIONS = ("auto", "float32", "bfloat16")  # scoring precision; auto: bfloat16 where the CPU has it natively
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def pdn_grid(size: int) -> int:
    """Output cells along an axis of `size` input pixels for PDN-small without padding.

    Parameters
    ----------
    size : int
        Input pixels along the axis.

    Returns
    -------
    int
        Output cells (0 or less: the input is too small).
    """
    return ((size - 3) // 2 - 3) // 2 - 5


def pdn_small(width: int, out_channels: int) -> nn.Sequential:
    """PDN-small: conv4-pool-conv4-pool-conv3-conv4, ReLU after all but the last conv.

    Parameters
    ----------
    width : int
        Base width (the paper's 128 at full size).
    out_channels : int
        Output channels.

    Returns
    -------
    torch.nn.Sequential
        The network.
    """
    return nn.Sequential(
        nn.Conv2d(3, width, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(width, 2 * width, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(2 * width, 2 * width, 3), nn.ReLU(inplace=True),
        nn.Conv2d(2 * width, out_channels, 4),
    )


def distillation_targets(extractor: FeatureExtractor, x: torch.Tensor) -> torch.Tensor:
    """What the teacher learns to output for images x: the backbone's features of x upsampled
    2x (3x3-averaged, concatenated on the first layer's grid), centre-cropped to the PDN grid.

    Parameters
    ----------
    extractor : FeatureExtractor
        The pretrained backbone at the detector's layers.
    x : torch.Tensor
        (N, 3, H, W) images.

    Returns
    -------
    torch.Tensor
        (N, C, h, w) targets on the PDN's output grid.
    """
    grid = [pdn_grid(s) for s in x.shape[-2:]]
    doubled = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    target = concat_on_first_grid(extractor(doubled), LOCAL_POOL)
    top, left = [(t - g) // 2 for t, g in zip(target.shape[-2:], grid)]
    return target[..., top:top + grid[0], left:left + grid[1]]


class Autoencoder(nn.Module):
    """The paper's autoencoder for a fixed input shape: image -> (out_channels, PDN grid)."""

    def __init__(self, input_hw: tuple[int, int], width: int, out_channels: int):
        super().__init__()
        half = max(1, width // 2)
        channels = [3, half, half, width, width, width]
        layers: list[nn.Module] = []
        grid = list(input_hw)
        for c_in, c_out in itertools.pairwise(channels):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
            grid = [g // 2 for g in grid]
        if min(grid) < 1:
            raise ConfigError(f"image_size is too small for the EfficientAD autoencoder "
                              f"(input {input_hw}); use at least 64 pixels")
        layers.append(nn.Conv2d(width, width, tuple(grid)))  # whole grid -> 1 x 1 latent
        self.encoder = nn.Sequential(*layers)
        self.sizes = [tuple(max(1, s // d - o) for s in input_hw)
                      for d, o in ((64, 1), (32, 0), (16, 1), (8, 0), (4, 1), (2, 1))]
        self.output_hw = tuple(pdn_grid(s) for s in input_hw)
        self.stages = nn.ModuleList(nn.Conv2d(width, width, 4, padding=2) for _ in self.sizes)
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct the teacher's features from the image.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, H, W) images.

        Returns
        -------
        torch.Tensor
            (N, C, h, w) features on the PDN grid.
        """
        x = self.encoder(x)
        for size, conv in zip(self.sizes, self.stages):
            x = self.dropout(F.relu(conv(F.interpolate(x, size=size, mode="bilinear"))))
        return self.head(F.interpolate(x, size=self.output_hw, mode="bilinear"))


def colour_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The paper's autoencoder augmentation: one of brightness, contrast or saturation,
    scaled by a factor drawn from [0.8, 1.2].

    Parameters
    ----------
    x : torch.Tensor
        (N, 3, H, W) images in [0, 1].
    generator : torch.Generator
        Seeded generator of the choice and the factor.

    Returns
    -------
    torch.Tensor
        The jittered images.
    """
    choice = int(torch.randint(3, (1,), generator=generator))
    factor = 0.8 + 0.4 * float(torch.rand(1, generator=generator))
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    if choice == 0:
        blend = torch.zeros_like(x)
    elif choice == 1:
        blend = grey.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    else:
        blend = grey.expand_as(x)
    return (blend + factor * (x - blend)).clamp(0.0, 1.0)


def random_view(x: torch.Tensor, crop: tuple[int, int], grey_probability: float,
                generator: torch.Generator) -> torch.Tensor:
    """A random `crop` of a (1, 3, H, W) image, flipped and turned by multiples of 90 degrees
    (square crops only), colour-jittered, grey with `grey_probability`.

    Parameters
    ----------
    x : torch.Tensor
        (1, 3, H, W) image.
    crop : tuple of int
        (height, width) of the view.
    grey_probability : float
        Probability of a greyscale view.
    generator : torch.Generator
        Seeded generator of every random choice.

    Returns
    -------
    torch.Tensor
        (1, 3, crop height, crop width) view.
    """
    height, width = x.shape[-2:]
    top = int(torch.randint(height - crop[0] + 1, (1,), generator=generator))
    left = int(torch.randint(width - crop[1] + 1, (1,), generator=generator))
    view = x[..., top:top + crop[0], left:left + crop[1]]
    if float(torch.rand(1, generator=generator)) < 0.5:
        view = view.flip(-1)
    if crop[0] == crop[1]:
        view = torch.rot90(view, int(torch.randint(4, (1,), generator=generator)), dims=(-2, -1))
    view = colour_jitter(view, generator)
    if float(torch.rand(1, generator=generator)) < grey_probability:
        view = (0.299 * view[:, 0] + 0.587 * view[:, 1] + 0.114 * view[:, 2])[:, None].expand_as(view)
    return view.contiguous()


def generic_images(count: int, hw: tuple[int, int], seed: int) -> list[torch.Tensor]:
    """`count` procedural textures (all families, random colours and scales) as (1, 3, H, W).

    Parameters
    ----------
    count : int
        Number of textures.
    hw : tuple of int
        (height, width) of each.
    seed : int
        Seed of the textures.

    Returns
    -------
    list of torch.Tensor
        (1, 3, H, W) images in [0, 1].
    """
    rng = np.random.default_rng([seed, 4242])
    images = []
    for k in range(count):
        style = texture_style(TEXTURES[k % len(TEXTURES)], rng)
        images.append(to_tensor(render_texture(style, hw, rng), hw))
    return images


def anomalous_copies(images: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """One copy of each (1, 3, H, W) image carrying a synthetic anomaly, alternately DRAEM's
    Perlin-mask foreign texture (sources: every tenth image) and a cut-paste patch from another
    image: defect-like content for the teacher to learn the backbone's description of.

    Parameters
    ----------
    images : list of torch.Tensor
        (1, 3, H, W) training images.
    seed : int
        Seed of the anomalies.

    Returns
    -------
    list of torch.Tensor
        One anomalous copy per image, in order.
    """
    rng = np.random.default_rng([seed, 4343])
    arrays = [x[0].permute(1, 2, 0).numpy() for x in images]
    sources = arrays[::10]
    copies = []
    for k, image in enumerate(arrays):
        if k % 2 == 0:
            anomalous, _ = texture_anomaly(image, rng, sources=sources)
        else:
            anomalous, _ = cut_paste(image, rng, source=arrays[int(rng.integers(len(arrays)))])
        copies.append(to_tensor(anomalous, anomalous.shape[:2]))
    return copies


def hard_feature_loss(teacher: torch.Tensor, student: torch.Tensor, count: int) -> torch.Tensor:
    """Mean of the `count` largest squared differences (the paper's L_hard at quantile
    1 - count / n for n differences; all of them when count >= n).

    Parameters
    ----------
    teacher, student : torch.Tensor
        Outputs of the same shape.
    count : int
        Number of largest squared differences averaged.

    Returns
    -------
    torch.Tensor
        The loss (a scalar).
    """
    distance = ((teacher - student) ** 2).flatten()
    return distance.topk(min(count, distance.numel()), sorted=False).values.mean()


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX tiles, or AVX-512 BF16 as on AMD Zen 4);
    elsewhere bfloat16 is emulated and slower than float32.

    Returns
    -------
    bool
        True where bfloat16 runs in hardware.
    """
    # torch has no public probe for these two CPU features: its private ones, read defensively
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def scores_in_bfloat16(precision: str) -> bool:
    """Whether an EfficientAD model of scoring `precision` runs its networks in bfloat16.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
        The detector's `precision`; "auto" means bfloat16 where `native_bfloat16` holds.

    Returns
    -------
    bool
        True for bfloat16, False for float32.
    """
    if precision == "auto":
        return native_bfloat16()
    return precision == "bfloat16"


def generic_pool(count: int, hw: tuple[int, int], seed: int, natural: bool) -> list[torch.Tensor]:
    """Generic images (the paper's ImageNet) at size `hw`: `count` procedural textures drawn
    with `seed`, and scikit-image's photographs when `natural`.

    Parameters
    ----------
    count : int
        Number of procedural textures.
    hw : tuple of int
        (height, width) of the training images.
    seed : int
        Seed of the textures.
    natural : bool
        Add the natural photographs (the `natural_images` parameter).

    Returns
    -------
    list of torch.Tensor
        (1, 3, h, w) images, h >= hw[0] and w >= hw[1].
    """
    generic = generic_images(count, hw, seed)
    if natural:
        generic += [to_tensor(image, image.shape[:2]) for image in natural_images(hw)]
    return generic


def distillation_pool(train: list[torch.Tensor], generic: list[torch.Tensor], seed: int,
                      anomalies: bool) -> list[torch.Tensor]:
    """Images the teacher is distilled on: the training images, their anomalous copies when
    `anomalies` (drawn with `seed`), then the generic ones.

    Parameters
    ----------
    train : list of torch.Tensor
        (1, 3, h, w) training images.
    generic : list of torch.Tensor
        Generic images (`generic_pool`).
    seed : int
        Seed of the anomalous copies.
    anomalies : bool
        Add anomalous copies (the `distill_anomalies` parameter).

    Returns
    -------
    list of torch.Tensor
        The pool, training images first (the same objects).
    """
    return train + (anomalous_copies(train, seed) if anomalies else []) + generic


def _descend(optimiser: torch.optim.Optimizer, loss: torch.Tensor, losses: list[float], bar: tqdm) -> None:
    """One optimiser step on `loss`, recorded in `losses` and shown on the progress bar."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    losses.append(float(loss.detach()))
    bar.set_postfix(loss=f"{losses[-1]:.3f}")


def _frozen(module: ModuleT) -> ModuleT:
    """`module` in inference mode, without gradients, in channels_last layout (about 1.5x
    faster convolutions on CPU)."""
    return module.eval().requires_grad_(False).to(memory_format=torch.channels_last)


class Discrepancy(nn.Module):
    """Raw local (teacher vs student) and global (autoencoder vs student) maps of a batch,
    each (N, h, w): mean over channels of the squared differences, the teacher's output
    normalised by its training mean and spread. With `bfloat16` the networks run under CPU
    autocast (see `precision`)."""

    def __init__(self, teacher: nn.Module, student: nn.Module, autoencoder: nn.Module,
                 teacher_mean: torch.Tensor, teacher_std: torch.Tensor, bfloat16: bool = False):
        super().__init__()
        self.teacher, self.student, self.autoencoder = teacher, student, autoencoder
        self.register_buffer("teacher_mean", teacher_mean)
        self.register_buffer("teacher_std", teacher_std)
        self.bfloat16 = bfloat16

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw local and global maps.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, H, W) images.

        Returns
        -------
        tuple of torch.Tensor
            (local (N, h, w), global (N, h, w)).
        """
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            teacher, student, reconstruction = self.teacher(x), self.student(x), self.autoencoder(x)
        teacher = (teacher.float() - self.teacher_mean) / self.teacher_std
        student, channels = student.float(), teacher.shape[1]
        local = (teacher - student[:, :channels]).pow(2).mean(dim=1)
        global_ = (reconstruction.float() - student[:, channels:]).pow(2).mean(dim=1)
        return local, global_


class EfficientADScorer(nn.Module):
    """Local and global maps, each normalised (its quantiles q_a -> 0, q_b -> 0.1) and padded
    by MAP_PAD cells with its value for zero discrepancy (padded cells have no outputs; a plain
    0 would be the 0.9 quantile of normal maps, above most normal cells), then averaged; the
    image score is the largest value inside the padding."""

    def __init__(self, discrepancy: Discrepancy, quantiles: list[float]):
        super().__init__()
        self.discrepancy = discrepancy
        self.scales = [0.1 / max(high - low, 1e-12) for low, high in zip(quantiles[0::2], quantiles[1::2])]
        self.lows = list(quantiles[0::2])

    def normalised(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Local and global maps normalised by the saved quantiles and padded by MAP_PAD.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, h, w) model inputs.

        Returns
        -------
        list of torch.Tensor
            (N, h', w') local and global maps.
        """
        return [F.pad(scale * (raw - low), (MAP_PAD,) * 4, value=-scale * low)
                for raw, low, scale in zip(self.discrepancy(x), self.lows, self.scales)]

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
        local, global_ = self.normalised(x)
        combined = 0.5 * (local + global_)
        return combined[:, MAP_PAD:-MAP_PAD, MAP_PAD:-MAP_PAD].flatten(1).amax(dim=1), combined


@register("efficientad")
class EfficientAD(ImageDetector):
    """Student-teacher (local) and autoencoder (global) discrepancies on a distilled PDN.

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        Pretrained feature extractor (`oddity.backbones.list_backbones`).
    layers : tuple of str, default ("stage3", "stage5")
        Backbone stages the teacher is distilled from.
    width, ae_width : int, default 32
        Base widths of the PDNs and of the autoencoder.
    steps : int, default 4000
        Training steps of student and autoencoder.
    distill_steps, distill_batch : int, default 300, 8
        Steps and crops per step of the teacher's distillation.
    lr : float, default 1e-3
        Adam learning rate (divided by 10 for the last 5 % of the steps).
    generic_images : int, default 24
        Procedural textures used for distillation and the student's penalty.
    natural_images, distill_anomalies : bool, default False
        Also distil on scikit-image's sample photographs / on anomalous copies of training images.
    map_fraction : float, default 0.1
        Share of the fitted images held out to normalise the maps.
    hard_count : int, default 1204
        Number of hard student-teacher differences per step in the hard-feature loss.
    precision : {"auto", "float32", "bfloat16"}, default "auto"
        Scoring precision; "auto" picks bfloat16 where the CPU computes it in hardware.
    **common
        Parameters shared by every image detector (`ImageDetector`).

    Attributes
    ----------
    teacher_, student_, autoencoder_ : torch.nn.Module
        The trained networks.
    teacher_mean_, teacher_std_ : numpy.ndarray
        Per-channel normalisation of the teacher's outputs.
    map_quantiles_ : numpy.ndarray
        The 0.9 and 0.995 quantiles of the local and global maps on held-out normal images.
    losses_, distill_losses_ : list of float
        Training and distillation losses.

    See Also
    --------
    docs/methods/efficientad.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> images = np.random.default_rng(0).uniform(0.4, 0.6, size=(10, 64, 64, 3))
    >>> detector = oddity.create("efficientad", image_size=64, width=8, ae_width=8, steps=4,
    ...                          distill_steps=2, distill_batch=2, generic_images=2)
    >>> detector = detector.fit(images, verbose=False)     # a few steps: a smoke run, not a model
    >>> probe = images[:2].copy()
    >>> probe[1, 20:40, 20:40] = 1.0                           # a bright square
    >>> result = detector.predict(probe, verbose=False)
    >>> result.maps[1].shape, bool(result.scores[1] > result.scores[0])
    ((64, 64), True)
    """

    legacy_params = LEGACY_PARAMS

    needs_fixed_shape = True

    def __init__(self, *, backbone: str = "efficientnet_lite0", input_norm: str = DEFAULT_INPUT_NORM,
                 layers: tuple[str, ...] = ("stage3", "stage5"), width: int = 32,
                 ae_width: int = 32, steps: int = 4000, distill_steps: int = 300,
                 distill_batch: int = 8, lr: float = 1e-3, generic_images: int = 24,
                 natural_images: bool = False, distill_anomalies: bool = False,
                 map_fraction: float = 0.1, hard_count: int = PAPER_HARD_COUNT,
                 precision: str = "auto", **common: Any):
        super().__init__(**common)
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = layers
        self.width = width
        self.ae_width = ae_width
        self.steps = steps
        self.distill_steps = distill_steps
        self.distill_batch = distill_batch
        self.lr = lr
        self.generic_images = generic_images
        self.natural_images = natural_images
        self.distill_anomalies = distill_anomalies
        self.map_fraction = map_fraction
        self.hard_count = hard_count
        self.precision = precision
        self.teacher_: nn.Sequential | None = None
        self.student_: nn.Sequential | None = None
        self.autoencoder_: Autoencoder | None = None
        self.teacher_mean_: torch.Tensor | None = None
        self.teacher_std_: torch.Tensor | None = None
        self.map_quantiles_: list[float] = []
        self.losses_: list[float] = []
        self.distill_losses_: list[float] = []

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_layers(self.layers)
        check_positive_ints(width=self.width, ae_width=self.ae_width, steps=self.steps,
                            distill_steps=self.distill_steps, distill_batch=self.distill_batch,
                            generic_images=self.generic_images, hard_count=self.hard_count)
        check_positive(lr=self.lr)
        for name, flag in {"natural_images": self.natural_images,
                           "distill_anomalies": self.distill_anomalies}.items():
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be true or false, got {flag!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        check_fraction("map_fraction", self.map_fraction)

    # --- fitting ---------------------------------------------------------------------------
    def _fit_images(self, images: ImageStream) -> None:
        with torch.no_grad():
            loaded = [x.clone() for x in images]
        if not loaded:
            raise DataError("no training images could be read")
        hw = tuple(loaded[0].shape[-2:])
        if min(pdn_grid(s) for s in hw) < 1:
            raise ConfigError(f"image_size {self.input_size()} is too small for EfficientAD; use at least 64")
        channels = sum(feature_extractor(self.backbone, self.layers, self.input_norm).channels)
        # Building the (cached) backbone the first time draws from torch's global generator,
        # which also initialises our networks and drives dropout: reseed after it.
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(loaded), generator=generator).tolist()
        count = max(1, round(len(loaded) * self.map_fraction)) if len(loaded) > 1 else 0
        held_out = [loaded[i] for i in order[:count]]
        train = [loaded[i] for i in order[count:]]
        generic = generic_pool(self.generic_images, hw, self.seed, self.natural_images)
        pool = distillation_pool(train, generic, self.seed, self.distill_anomalies)
        with flushed_denormals():
            self.teacher_ = self._distill(pool, channels, generator, images.verbose)
        with torch.no_grad():
            outputs = torch.cat([self.teacher_(x) for x in train])
        self.teacher_mean_ = outputs.mean(dim=(0, 2, 3), keepdim=True)
        self.teacher_std_ = outputs.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        self.student_ = pdn_small(self.width, 2 * channels)
        self.autoencoder_ = Autoencoder(hw, self.ae_width, channels)  # type: ignore[arg-type]
        with flushed_denormals():
            self._train(train, generic, generator, images.verbose)
        with torch.no_grad():
            maps = [self._raw_maps(x) for x in held_out or train]
        self.map_quantiles_ = [float(q) for part in zip(*maps)
                               for q in np.quantile(np.concatenate([m.ravel() for m in part]),
                                                    MAP_QUANTILES)]

    def _crop(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Side lengths of distillation and penalty crops: half the image, at least MIN_CROP."""
        return tuple(min(s, max(MIN_CROP, s // 2)) for s in hw)  # type: ignore[return-value]

    def _distill(self, pool: list[torch.Tensor], channels: int, generator: torch.Generator,
                 verbose: bool) -> nn.Sequential:
        """Train a PDN to predict normalised backbone features of random augmented crops."""
        extractor = feature_extractor(self.backbone, self.layers, self.input_norm)
        crop = self._crop(tuple(pool[0].shape[-2:]))  # type: ignore[arg-type]

        def batch() -> tuple[torch.Tensor, torch.Tensor]:
            picks = torch.randint(len(pool), (self.distill_batch,), generator=generator).tolist()
            views = torch.cat([random_view(pool[i], crop, GREY_DISTILL, generator) for i in picks])
            with torch.no_grad():
                return views, distillation_targets(extractor, views)

        probe = torch.cat([batch()[1] for _ in range(max(1, 32 // self.distill_batch))])
        mean = probe.mean(dim=(0, 2, 3), keepdim=True)
        std = probe.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        teacher = pdn_small(self.width, channels)
        optimiser = torch.optim.Adam(teacher.parameters(), lr=DISTILL_LR, weight_decay=WEIGHT_DECAY)
        losses = []
        bar = tqdm(range(self.distill_steps), desc="distil teacher", unit="step", disable=not verbose)
        for _ in bar:
            views, target = batch()
            _descend(optimiser, F.mse_loss(teacher(views), (target - mean) / std), losses, bar)
        self.distill_losses_ = losses
        return _frozen(teacher)

    def _train(self, train: list[torch.Tensor], generic: list[torch.Tensor],
               generator: torch.Generator, verbose: bool) -> None:
        """The paper's joint training of student and autoencoder (teacher frozen)."""
        assert self.teacher_ is not None and self.student_ is not None and self.autoencoder_ is not None
        student, autoencoder = self.student_.train(), self.autoencoder_.train()
        parameters = list(student.parameters()) + list(autoencoder.parameters())
        optimiser = torch.optim.Adam(parameters, lr=self.lr, weight_decay=WEIGHT_DECAY)
        scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=max(1, int(0.95 * self.steps)),
                                                    gamma=0.1)
        channels = int(self.teacher_mean_.shape[1])  # type: ignore[union-attr]
        crop = self._crop(tuple(train[0].shape[-2:]))  # type: ignore[arg-type]
        grid = tuple(pdn_grid(c) for c in crop)
        losses = []
        bar = tqdm(range(self.steps), desc="train efficientad", unit="step", disable=not verbose)
        for _ in bar:
            x = train[int(torch.randint(len(train), (1,), generator=generator))]
            jittered = colour_jitter(x, generator)
            top, left = (PDN_STRIDE * int(torch.randint((s - c) // PDN_STRIDE + 1, (1,), generator=generator))
                         for s, c in zip(x.shape[-2:], crop))
            window = (slice(top // PDN_STRIDE, top // PDN_STRIDE + grid[0]),
                      slice(left // PDN_STRIDE, left // PDN_STRIDE + grid[1]))
            pair = torch.cat([x, jittered])[..., top:top + crop[0], left:left + crop[1]]
            penalty_image = generic[int(torch.randint(len(generic), (1,), generator=generator))]
            penalty_view = random_view(penalty_image, crop, GREY_PENALTY, generator)
            with torch.no_grad():
                target = self._teacher(pair)
            out = student(pair)
            loss_hard = hard_feature_loss(target[:1], out[:1, :channels], self.hard_count)
            loss_penalty = student(penalty_view)[:, :channels].pow(2).mean()
            reconstruction = autoencoder(jittered)[(..., *window)]
            loss_ae = (target[1:] - reconstruction).pow(2).mean()
            loss_stae = (reconstruction - out[1:, channels:]).pow(2).mean()
            _descend(optimiser, loss_hard + loss_penalty + loss_ae + loss_stae, losses, bar)
            scheduler.step()
        self.losses_ = losses
        _frozen(student)
        _frozen(autoencoder)

    # --- scoring ---------------------------------------------------------------------------
    def _teacher(self, x: torch.Tensor) -> torch.Tensor:
        assert self.teacher_ is not None
        return (self.teacher_(x) - self.teacher_mean_) / self.teacher_std_

    def _discrepancy(self, portable: bool = False) -> "Discrepancy":
        assert self.teacher_ is not None and self.student_ is not None and self.autoencoder_ is not None
        assert self.teacher_mean_ is not None and self.teacher_std_ is not None
        return Discrepancy(self.teacher_, self.student_, self.autoencoder_, self.teacher_mean_,
                           self.teacher_std_, bfloat16=scores_in_bfloat16(self.precision) and not portable)

    def _raw_maps(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised local (student-teacher) and global (autoencoder-student) maps of one image."""
        local, global_ = self._discrepancy()(x)
        return local[0].numpy(), global_[0].numpy()

    def _scorer(self, portable: bool) -> "EfficientADScorer":
        return EfficientADScorer(self._discrepancy(portable), self.map_quantiles_)

    def _normalised_maps(self, x: torch.Tensor) -> list[np.ndarray]:
        """Local and global maps of one image, normalised and padded (`EfficientADScorer`)."""
        return [m[0].numpy() for m in self._scorer(portable=False).normalised(x)]

    # --- persistence -----------------------------------------------------------------------
    def _modules(self) -> dict[str, nn.Module]:
        assert self.teacher_ is not None and self.student_ is not None and self.autoencoder_ is not None
        return {"teacher": self.teacher_, "student": self.student_, "autoencoder": self.autoencoder_}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.teacher_mean_ is not None and self.teacher_std_ is not None
        arrays.update(module_arrays(self._modules()))
        arrays["teacher_mean"] = self.teacher_mean_.numpy()
        arrays["teacher_std"] = self.teacher_std_.numpy()
        return {**values, "map_quantiles_": self.map_quantiles_, "losses_": self.losses_,
                "distill_losses_": self.distill_losses_}, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        if "teacher_mean" not in arrays or "map_quantiles_" not in values or self.input_shape_ is None:
            raise DataError("model file lacks the EfficientAD networks or map quantiles")
        channels = int(arrays["teacher_mean"].shape[1])
        self.teacher_ = pdn_small(self.width, channels)
        self.student_ = pdn_small(self.width, 2 * channels)
        self.autoencoder_ = Autoencoder(self.input_shape_, self.ae_width, channels)
        modules = self._modules()
        load_module_arrays(modules, arrays, f"width={self.width}, ae_width={self.ae_width}")
        for module in modules.values():
            _frozen(module)
        self.teacher_mean_ = torch.from_numpy(np.array(arrays["teacher_mean"]))
        self.teacher_std_ = torch.from_numpy(np.array(arrays["teacher_std"]))
        self.map_quantiles_ = [float(q) for q in values["map_quantiles_"]]
        self.losses_ = list(values.get("losses_", []))
        self.distill_losses_ = list(values.get("distill_losses_", []))
