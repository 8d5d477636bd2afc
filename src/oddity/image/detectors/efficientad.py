"""EfficientAD: a student-teacher pair and an autoencoder on a tiny patch description network.

Batzner, Heckler and Koenig, "EfficientAD: Accurate Visual Anomaly Detection at
Millisecond-Level Latencies", WACV 2024, https://arxiv.org/abs/2303.14535
(official code: github.com/nelson1425/EfficientAD; also anomalib's `efficient_ad`)

- Teacher: the patch description network PDN-small (conv 4x4, avg-pool 2, conv 4x4, avg-pool
  2, conv 3x3, conv 4x4, no padding: a 33 px receptive field, output grid ((s - 3) // 2 - 3)
  // 2 - 5, i.e. 56 at 256 px), distilled from a pretrained backbone, then frozen. Its outputs
  are normalised per channel with the mean and standard deviation over the training images.
- Student: the same architecture with twice the output channels; the first half imitates the
  teacher, the second half imitates the autoencoder.
- Autoencoder: strided 4x4 convolutions down to a 1 x 1 latent, then six (bilinear upsample,
  4x4 conv, ReLU, dropout 0.2) stages and two 3x3 convs at the PDN grid, predicting the
  teacher's (normalised) output from the whole image: it sees global context, so it catches
  logical anomalies (a missing or misplaced part) that local patches cannot.
- Losses, each step on one training image (batch 1, as the paper): the hard-feature loss (mean
  of the squared student-teacher differences at or above their 0.999 quantile: the largest
  0.001 x 384 x 56 x 56 ~ 1204 of them at 256 px), plus the
  penalty mean(student(P)^2) on a generic image P that keeps the student from imitating the
  teacher outside the normal data, plus mean((teacher - AE)^2) and mean((AE - student)^2) on
  a colour-jittered copy (brightness, contrast or saturation by a factor in [0.8, 1.2]).
  Adam (paper: lr 1e-4, weight decay 1e-5), learning rate divided by 10 for the last 5% of steps.
- Maps: local = mean over channels of (teacher - student)^2, global = mean of (AE -
  student)^2; each normalised with its 0.9 and 0.995 quantiles over held-out normal images so
  that q_a -> 0 and q_b -> 0.1, averaged, padded by 4 cells (the PDN crops its border).
  The padding value is that of zero discrepancy in both maps (what anomalib does by padding
  the raw maps). The official code pads the normalised map with 0, i.e. with the 0.9
  quantile of normal maps, which ranks the 16 px image border above 90% of normal pixels:
  on MVTec bottle that alone cost 0.11 pixel AUROC (0.78 -> 0.90 with the same networks).
  The image score is the largest value of the map.

Deviations, with reasons:
- Teacher distillation: the paper distils PDN from WideResNet-101 (layer 2 + 3) features on
  ImageNet for 60k steps; we have neither network nor data offline. We distil from
  EfficientNet-Lite0 stage 3 + stage 5 features (each 3x3-averaged, the deeper one upsampled,
  152 channels, normalised per channel) of the input upsampled 2x, so their stride-8 grid
  matches the PDN's stride 4, centre-cropped to the PDN grid (its cells lie at the same image
  positions). The images are random half-size crops of the distillation pool, flipped,
  rotated by multiples of 90 degrees, colour-jittered and grey with probability 0.1, for
  `distill_steps` steps of `distill_batch` crops (Adam, lr 1e-3: far fewer steps than the
  paper, so a larger rate). It is a stage of `fit`, so the teacher knows the product and 152
  output channels (not 384) follow from the backbone.
- Distillation pool: the training images and the generic images below; optionally
  (`distill_anomalies`, off by default) one copy of each training image carrying a synthetic
  anomaly (alternately a Perlin-mask foreign texture and a cut-paste patch of another training
  image, from `oddity.image.synth`). The idea: a teacher distilled on ImageNet mimics the
  backbone on every kind of content, so a defect gets the backbone's description of something
  different; one distilled only on normal crops has never seen defect-like content, and there
  its output is unconstrained and may look normal.
- Generic images (the paper's ImageNet, for distillation and for the penalty): `generic_images`
  procedural textures (woven, marble, stripes, random colours and scales, drawn from the seed)
  and, with `natural_images` (off by default), the 22 photographs, micrographs and material
  textures inside scikit-image's wheel (`oddity.image.synth.natural_images`; fewer or none if
  absent, never downloaded), resized to cover the input. The penalty uses random crops of them
  (grey with probability 0.3, as the paper's penalty transform). A few dozen images are far
  from ImageNet's variety, so both uses stay weaker than the paper's.
- Why both options are off (MVTec bottle, 300 distillation steps, one fit each): judged alone
  on held-out training images with synthetic anomalies (benchmarks/efficientad_teacher.py, a
  kNN on the teacher's outputs; results/efficientad_teacher.md), the teacher improved: image /
  pixel AUROC 0.991 / 0.861 with the default pool, 0.992 / 0.868 with natural images, 0.998 /
  0.872 with both (its Lite0 targets: 1.000 / 0.881); a first protocol whose drawn defects
  were all cuts separated them more (0.93 / 0.86 -> 0.99 / 0.92 with natural images). On the
  bottle TEST set it did not: the same kNN on the teacher gives 0.944 / 0.925 with both
  options, 0.938 / 0.919 with natural images, 0.947 / 0.943 with anomalous copies, as against
  0.94 / 0.94 without (benchmarks/efficientad_diagnose.py), and the detector fell from 0.877 /
  0.903 to 0.792 / 0.812 with both (benchmark runner), 0.826 / 0.823 with natural images and
  0.798 / 0.828 with anomalous copies (diagnosis script, its combined map); the local map stayed
  at 0.74-0.78 image AUROC in all. So the distillation data is not what limits this teacher on
  bottle's real defects, and the synthetic validation does not predict them.
- Distillation target: the PDN expresses only about half of its targets' variance (mean
  squared correlation per channel on held-out images: stage3 0.47-0.58, stage5 0.47-0.50 over
  the pools above), the deep stage no worse than the shallow one, so stage5's large receptive
  field is not the part the PDN fails to mimic; other targets were not tried.
- Width: the PDNs have `width`, 2 x `width`, 2 x `width` channels (paper: 128, 256, 256) and
  the autoencoder `ae_width` (paper: 64, first two encoder convs half of it). The defaults (32
  and 32) make predict and training run on two CPU cores: at 256 px the paper's PDN-small alone
  takes about 0.3 s per image there. The price: on MVTec bottle a kNN on the width-32 teacher's
  outputs reaches 0.94 pixel AUROC against 0.99 on its Lite0 targets, and more distillation
  steps barely move it (benchmarks/efficientad_diagnose.py; README, "EfficientAD on a CPU").
  The encoder's last convolution takes the whole remaining grid (8 x 8 at 256 px, as the
  paper) so smaller inputs work too.
- Steps and learning rate: 4000 steps by default instead of 70 000, so that training,
  distillation included, takes about 9-11 minutes on two CPU cores (521-645 s quiet on MVTec bottle,
  AMD EPYC); with ~17x fewer steps the learning rate is 1e-3 instead of 1e-4 (still divided by
  10 for the last 5%). With the paper's 1e-4, 200 steps left MVTec bottle at image / pixel AUROC
  0.81 / 0.28 (the student had not learned the teacher).
- Why 4000 and not 1000 (MVTec bottle, one teacher; benchmarks/efficientad_discrepancy.py,
  efficientad_student.py and their results): after 1000 steps the student was underfit, not
  over-general. Its raw local discrepancy was the same on its own training images, held-out
  normal and good test images (mean 0.017, 99th percentile 0.05-0.07, training loss still
  falling), about 6x the distance of the teacher's outputs to their nearest normal output (0.003),
  and of the order of the teacher's change on defect cells (0.027): normal noise drowned the
  signal (raw local cell AUROC 0.59). The worst normal maxima lay on the bottle's specular rim,
  not on the border. Retrained on the same teacher for 4000 steps, on the validation (the 40
  held-out normal training images plus one synthetic anomaly each, no test image; rule fixed
  before the run: adopt at +0.02 mean image / pixel AUROC of the combined map and a quiet fit
  under the issue's 20 minutes) the local map's image AUROC went 0.880 -> 0.961 and the combined
  map's image / pixel AUROC 0.915 / 0.852 -> 0.970 / 0.896 (0.974 / 0.898 on a second teacher).
  Normal discrepancy fell 4x to near that floor (0.004) while defect cells kept most of theirs
  (0.030 -> 0.020): raw local cell AUROC 0.76. Defect cells now show less discrepancy than the
  teacher's change (ratio 0.8, against 1.5-1.75 on normal cells): the student follows part of
  the change, the next limit. The time condition first failed (a 4000-step fit did not finish
  within 1500 s): late in training weights and gradients became subnormal floats, and each step
  slowed from 70 to 530 ms; training now runs with subnormals flushed to zero
  (`oddity.core.torch_state.flushed_denormals`), flat at 75 ms per step.
  On bottle's test set the figures move by several points from fit to fit, and over three seeds
  each the longer training is not clearly better on real defects: image / pixel AUROC / AUPRO
  0.832 / 0.914 / 0.708 at 4000 steps against 0.872 / 0.906 / 0.690 at 1000 (image sd 0.06 and
  0.12; README, "EfficientAD on a CPU"; benchmarks/results/efficientad_seeds*.md). The synthetic
  validation does not foretell image-level figures on real defects here.
- Weight averaging of student and autoencoder over the last half of the steps (as DRAEM's
  `average_from`) was tried on the validation and lost (0.967 / 0.895 against 0.974 / 0.898 for
  the last weights of the same run; benchmarks/results/efficientad_student.md): not used.
- Windows: each step's losses are computed on one random half-size window of the image (at
  least 64 px, top-left at a multiple of 4 px, where the PDN's output is exactly the matching
  part of its output on the whole image), which makes a step about 4x cheaper. The autoencoder
  still sees the whole (jittered) image; its output is compared on the window. The hard-feature
  outputs are therefore taken per window, not per image.
- Hard-feature mining keeps the paper's NUMBER of hard outputs per step, not its quantile:
  L_hard is the mean of the largest k = min(`hard_count`, n) squared differences, n = C x h x w
  outputs of the step's window, i.e. the effective quantile is q = 1 - k / n. `hard_count`
  defaults to the paper's (1 - 0.999) x 384 x 56 x 56 ~ 1204. Reason: the quantile alone does
  not transfer across output sizes: on a 128 px window of a 256 px image our 152-channel
  teacher gives 24 x 24 x 152 = 87 552 outputs, so q = 0.999 trains the student on only ~88
  outputs per step (14x fewer than the paper, on top of 70x fewer steps); k = 1204 there
  means q = 1 - 1204 / 87 552 ~ 0.986. The count, not q, was fixed from the paper; it was
  not tuned on any test set.
- Scoring precision: with `precision="auto"` (default) the three networks run in bfloat16
  (torch autocast, channels_last) on CPUs that compute bfloat16 in hardware: AMX matrix units
  (Intel; about 3x faster than float32 there) or AVX-512 BF16 (AMD EPYC Zen 4: 40 against 25
  images/s for the networks on MVTec bottle, 30 test images); the maps then differ from
  float32 ones by about 1% (relative mean absolute difference on MVTec bottle, at most 2% on an
  image's maximum). Training is
  float32 always; the map quantiles and thresholds are computed in the scoring precision.
  `precision="float32"` or `"bfloat16"` forces one.
- Map normalisation holds out `map_fraction` of the fitted images (the paper: a validation
  split of the training set). The input is resized to one fixed shape (short side
  `image_size`), not a 256 x 256 square, and the map is smoothed like the other detectors'.
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
from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.core.torch_state import flushed_denormals, load_module_arrays, module_arrays
from oddity.image.detector import ImageDetector, ImageStream
from oddity.image.features import DEFAULT_INPUT_NORM, LEGACY_PARAMS, concat_on_first_grid, feature_extractor
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
    """Output cells along an axis of `size` input pixels for PDN-small without padding."""
    return ((size - 3) // 2 - 3) // 2 - 5


def pdn_small(width: int, out_channels: int) -> nn.Sequential:
    """PDN-small: conv4-pool-conv4-pool-conv3-conv4, ReLU after all but the last conv."""
    return nn.Sequential(
        nn.Conv2d(3, width, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(width, 2 * width, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
        nn.Conv2d(2 * width, 2 * width, 3), nn.ReLU(inplace=True),
        nn.Conv2d(2 * width, out_channels, 4),
    )


def distillation_targets(extractor: FeatureExtractor, x: torch.Tensor) -> torch.Tensor:
    """What the teacher learns to output for images x: the backbone's features of x upsampled
    2x (3x3-averaged, concatenated on the first layer's grid), centre-cropped to the PDN grid."""
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
        x = self.encoder(x)
        for size, conv in zip(self.sizes, self.stages):
            x = self.dropout(F.relu(conv(F.interpolate(x, size=size, mode="bilinear"))))
        return self.head(F.interpolate(x, size=self.output_hw, mode="bilinear"))


def colour_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The paper's autoencoder augmentation: one of brightness, contrast or saturation,
    scaled by a factor drawn from [0.8, 1.2]."""
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
    (square crops only), colour-jittered, grey with `grey_probability`."""
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
    """`count` procedural textures (all families, random colours and scales) as (1, 3, H, W)."""
    rng = np.random.default_rng([seed, 4242])
    images = []
    for k in range(count):
        style = texture_style(TEXTURES[k % len(TEXTURES)], rng)
        images.append(to_tensor(render_texture(style, hw, rng), hw))
    return images


def anomalous_copies(images: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """One copy of each (1, 3, H, W) image carrying a synthetic anomaly, alternately DRAEM's
    Perlin-mask foreign texture (sources: every tenth image) and a cut-paste patch from another
    image: defect-like content for the teacher to learn the backbone's description of."""
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
    1 - count / n for n differences; all of them when count >= n)."""
    distance = ((teacher - student) ** 2).flatten()
    return distance.topk(min(count, distance.numel()), sorted=False).values.mean()


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX tiles, or AVX-512 BF16 as on AMD Zen 4);
    elsewhere bfloat16 is emulated and slower than float32."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


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


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum}, got {value!r}")


@register("efficientad")
class EfficientAD(ImageDetector):
    """Student-teacher (local) and autoencoder (global) discrepancies on a distilled PDN."""

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
        if isinstance(layers, str):
            layers = (layers,)
        if not layers:
            raise ConfigError("layers is empty; name at least one, e.g. layers=('stage3', 'stage5')")
        for name, value in {"width": width, "ae_width": ae_width, "steps": steps,
                            "distill_steps": distill_steps, "distill_batch": distill_batch,
                            "generic_images": generic_images, "hard_count": hard_count}.items():
            _positive_int(name, value)
        if not lr > 0:
            raise ConfigError(f"lr must be positive, got {lr}")
        for name, flag in {"natural_images": natural_images, "distill_anomalies": distill_anomalies}.items():
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be true or false, got {flag!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if not 0.0 < map_fraction < 1.0:
            raise ConfigError(f"map_fraction must lie in (0, 1), got {map_fraction}")
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = tuple(layers)
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

    # --- fitting ---------------------------------------------------------------------------
    def _fit_images(self, images: ImageStream) -> None:
        with torch.no_grad():
            loaded = [x.clone() for x in images]
        if not loaded:
            raise DataError("no training images could be read")
        hw = tuple(loaded[0].shape[-2:])
        if min(pdn_grid(s) for s in hw) < 1:
            raise ConfigError(f"image_size {self.image_size} is too small for EfficientAD; use at least 64")
        channels = sum(feature_extractor(self.backbone, self.layers, self.input_norm).channels)
        # Building the (cached) backbone the first time draws from torch's global generator,
        # which also initialises our networks and drives dropout: reseed after it.
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(loaded), generator=generator).tolist()
        count = max(1, round(len(loaded) * self.map_fraction)) if len(loaded) > 1 else 0
        held_out = [loaded[i] for i in order[:count]]
        train = [loaded[i] for i in order[count:]]
        generic = self._generic(hw)
        with flushed_denormals():
            self.teacher_ = self._distill(self._distillation_pool(train, generic), channels, generator,
                                          images.verbose)
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

    def _generic(self, hw: tuple[int, int]) -> list[torch.Tensor]:
        """Generic images (the paper's ImageNet): procedural textures and natural images."""
        generic = generic_images(self.generic_images, hw, self.seed)
        if self.natural_images:
            generic += [to_tensor(image, image.shape[:2]) for image in natural_images(hw)]
        return generic

    def _distillation_pool(self, train: list[torch.Tensor], generic: list[torch.Tensor]) -> list[torch.Tensor]:
        """Images the teacher is distilled on: training images, their anomalous copies, generic ones."""
        anomalous = anomalous_copies(train, self.seed) if self.distill_anomalies else []
        return train + anomalous + generic

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

    def _raw_maps(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised local (student-teacher) and global (autoencoder-student) maps."""
        assert self.student_ is not None and self.autoencoder_ is not None
        assert self.teacher_ is not None
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bfloat16()):
            teacher, student, reconstruction = self.teacher_(x), self.student_(x), self.autoencoder_(x)
        teacher = (teacher.float() - self.teacher_mean_) / self.teacher_std_
        student, channels = student.float(), teacher.shape[1]
        local = (teacher - student[:, :channels]).pow(2).mean(dim=1)[0]
        global_ = (reconstruction.float() - student[:, channels:]).pow(2).mean(dim=1)[0]
        return local.numpy(), global_.numpy()

    def _bfloat16(self) -> bool:
        """Whether scoring runs the networks in bfloat16 (see `precision`)."""
        if self.precision == "auto":
            return native_bfloat16()
        return self.precision == "bfloat16"

    def _normalised_maps(self, x: torch.Tensor) -> list[np.ndarray]:
        """Local and global maps, each normalised (its quantiles q_a -> 0, q_b -> 0.1) and
        padded by MAP_PAD cells with its value for zero discrepancy: padded cells have no
        outputs (a plain 0 would be the 0.9 quantile of normal maps, above most normal cells)."""
        maps = []
        quantiles = self.map_quantiles_
        for raw, low, high in zip(self._raw_maps(x), quantiles[0::2], quantiles[1::2]):
            scale = 0.1 / max(high - low, 1e-12)
            maps.append(np.pad(scale * (raw - low), MAP_PAD, constant_values=-scale * low))
        return maps

    def _score_image(self, x: torch.Tensor) -> tuple[float, np.ndarray]:
        local, global_ = self._normalised_maps(x)
        combined = 0.5 * (local + global_)
        return float(combined[MAP_PAD:-MAP_PAD, MAP_PAD:-MAP_PAD].max()), combined

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
