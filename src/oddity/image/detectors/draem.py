"""DRAEM: a reconstruction network and a segmentation network trained on simulated anomalies.

Zavrtanik, Kristan and Skočaj, "DRAEM - A discriminatively trained reconstruction embedding for
surface anomaly detection", ICCV 2021, https://arxiv.org/abs/2108.07610
(code: github.com/VitjanZ/DRAEM)

Method: normal training images get simulated anomalies (a thresholded Perlin-noise mask filled
with a foreign texture, `oddity.image.synth.texture_anomaly`). A reconstructive encoder-decoder
learns to restore the clean image (L2 + SSIM loss); a discriminative U-Net sees the image and
its reconstruction and segments the anomaly (focal loss). The map is the U-Net's anomaly
probability; the image score is the maximum of that map after mean filtering.

Deviations (reasons and figures: docs/methods/draem.md):
- 128 px inputs, widths 16 / 16 instead of 128 / 64, batches of 4: CPU-sized.
- 1000 steps at learning rate 3e-4 instead of 700 epochs at 1e-4.
- Whole images by default (`crop` off): crops hid the aligned part from the reconstruction.
- Procedural or other-image textures instead of DTD (not available offline).
- Only pixels the texture changed are labelled anomalous (`MIN_CHANGE`).
- Weights averaged over the last 30 % of the steps (`average_from`), BatchNorm re-estimated.
- No rotation of normal training images.
- Inputs reflect-padded to multiples of 32, so any aspect ratio works.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn
from tqdm.auto import tqdm

from oddity.core.checks import check_positive, check_positive_ints
from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.core.torch_state import average_start, flushed_denormals, load_module_arrays, module_arrays
from oddity.image.detector import ImageDetector, ImageStream
from oddity.image.synth import texture_anomaly

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
FOCAL_GAMMA = 2.0
ANOMALY_PROBABILITY = 0.5
TEXTURE_OPACITY = (0.2, 1.0)  # the paper's code: image weight beta ~ U(0, 0.8), texture 1 - beta
PERLIN_MAX_EXPONENT = 6  # the paper's code: 2**0 .. 2**5 lattice cells across the whole image
MIN_CHANGE = 0.02  # a simulated-anomaly pixel that changed less (any channel, ~5/255) is normal
SCORE_WINDOW_AT_256 = 21
NETWORK_STRIDE = 32  # the discriminative U-Net pools five times
BATCHNORM_BATCHES = 50  # training batches that re-estimate the averaged networks' BatchNorm statistics


def _double_conv(c_in: int, c_mid: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_mid, 3, padding=1), nn.BatchNorm2d(c_mid), nn.ReLU(inplace=True),
        nn.Conv2d(c_mid, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class ReconstructiveNetwork(nn.Module):
    """The paper's reconstructive sub-network: encoder-decoder, no skip connections."""

    def __init__(self, width: int):
        super().__init__()
        w = width
        self.encoder = nn.ModuleList([_double_conv(3, w, w), _double_conv(w, 2 * w, 2 * w),
                                      _double_conv(2 * w, 4 * w, 4 * w), _double_conv(4 * w, 8 * w, 8 * w),
                                      _double_conv(8 * w, 8 * w, 8 * w)])
        self.decoder = nn.Sequential(
            _up(8 * w, 8 * w), _double_conv(8 * w, 8 * w, 4 * w),
            _up(4 * w, 4 * w), _double_conv(4 * w, 4 * w, 2 * w),
            _up(2 * w, 2 * w), _double_conv(2 * w, 2 * w, w),
            _up(w, w), _double_conv(w, w, w),
            nn.Conv2d(w, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct the batch.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, H, W) images, sides multiples of the stride.

        Returns
        -------
        torch.Tensor
            (N, 3, H, W) reconstructions.
        """
        for index, block in enumerate(self.encoder):
            x = block(F.max_pool2d(x, 2) if index else x)
        return self.decoder(x)


class DiscriminativeNetwork(nn.Module):
    """The paper's discriminative sub-network: a U-Net from 6 channels to 2 logits."""

    def __init__(self, width: int):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width, 8 * width, 8 * width]
        c_in = [6] + widths[:-1]
        self.encoder = nn.ModuleList([_double_conv(i, o, o) for i, o in zip(c_in, widths)])
        self.ups = nn.ModuleList([_up(widths[k + 1], widths[k]) for k in reversed(range(5))])
        self.merges = nn.ModuleList([_double_conv(2 * widths[k], widths[k], widths[k])
                                     for k in reversed(range(5))])
        self.head = nn.Conv2d(width, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits.

        Parameters
        ----------
        x : torch.Tensor
            (N, 6, H, W) images and reconstructions, concatenated.

        Returns
        -------
        torch.Tensor
            (N, 2, H, W) logits (normal, anomalous).
        """
        skips = []
        for index, block in enumerate(self.encoder):
            x = block(F.max_pool2d(x, 2) if index else x)
            skips.append(x)
        for up, merge, skip in zip(self.ups, self.merges, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def segment(x: torch.Tensor, reconstructive: nn.Module, discriminative: nn.Module
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction and segmentation logits of an (N, 3, H, W) batch, reflect-padded to a
    multiple of the networks' stride and cropped back.

    Parameters
    ----------
    x : torch.Tensor
        (N, 3, H, W) images in [0, 1].
    reconstructive, discriminative : torch.nn.Module
        The two sub-networks.

    Returns
    -------
    tuple of torch.Tensor
        (reconstruction (N, 3, H, W), logits (N, 2, H, W)).
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % NETWORK_STRIDE, -width % NETWORK_STRIDE
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    reconstruction = reconstructive(x)
    logits = discriminative(torch.cat([x, reconstruction], dim=1))
    return reconstruction[..., :height, :width], logits[..., :height, :width]


class NetworkPair(nn.Module):
    """Both sub-networks as one module, so that weight averaging and the BatchNorm pass of
    `torch.optim.swa_utils` treat them together."""

    def __init__(self, reconstructive: ReconstructiveNetwork, discriminative: DiscriminativeNetwork):
        super().__init__()
        self.reconstructive, self.discriminative = reconstructive, discriminative

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both networks on a batch (`segment`).

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, H, W) images.

        Returns
        -------
        tuple of torch.Tensor
            (reconstructions, logits).
        """
        return segment(x, self.reconstructive, self.discriminative)


def score_window(image_size: int) -> int:
    """Side of the mean filter whose maximum is the image score.

    Parameters
    ----------
    image_size : int
        The detector's `image_size`.

    Returns
    -------
    int
        The paper's 21 px at 256 px, scaled to `image_size`: the nearest odd size (at least 1).
    """
    return max(1, 2 * round((SCORE_WINDOW_AT_256 * image_size / 256 - 1) / 2) + 1)


def averaged_networks(average: AveragedModel, batches: Iterable[torch.Tensor]) -> NetworkPair:
    """The averaged networks in eval mode, their BatchNorm statistics re-estimated on `batches`
    (the running statistics of the iterates do not belong to their average; SWA's step).

    Parameters
    ----------
    average : torch.optim.swa_utils.AveragedModel
        The running average of the networks' weights.
    batches : iterable of torch.Tensor
        Training-like input batches for the BatchNorm statistics.

    Returns
    -------
    NetworkPair
        The averaged networks.
    """
    update_bn(batches, average.module)
    return average.module.eval()


def build_networks(recon_width: int, disc_width: int, generator: torch.Generator | None = None
                   ) -> tuple[ReconstructiveNetwork, DiscriminativeNetwork]:
    """Both sub-networks, initialised as the paper's code when a generator is given.

    Parameters
    ----------
    recon_width, disc_width : int
        Base widths of the reconstructive and discriminative networks.
    generator : torch.Generator, optional
        Seeded generator of the initial weights.

    Returns
    -------
    tuple
        (ReconstructiveNetwork, DiscriminativeNetwork).
    """
    networks = ReconstructiveNetwork(recon_width), DiscriminativeNetwork(disc_width)
    if generator is not None:
        for network in networks:
            for layer in network.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, 0.0, 0.02, generator=generator)
                    nn.init.zeros_(layer.bias)
                elif isinstance(layer, nn.BatchNorm2d):
                    nn.init.normal_(layer.weight, 1.0, 0.02, generator=generator)
                    nn.init.zeros_(layer.bias)
    return networks


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity of two (N, C, H, W) batches in [0, 1] (Gaussian window
    11 x 11, sigma 1.5, per channel, as the paper's code).

    Parameters
    ----------
    a, b : torch.Tensor
        (N, C, H, W) batches in [0, 1].

    Returns
    -------
    torch.Tensor
        The mean SSIM (a scalar, 1 for identical batches).
    """
    coords = torch.arange(SSIM_WINDOW, dtype=a.dtype) - SSIM_WINDOW // 2
    kernel_1d = torch.exp(-coords**2 / (2 * SSIM_SIGMA**2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    channels = a.shape[1]
    window = (kernel_1d[:, None] * kernel_1d[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, padding=SSIM_WINDOW // 2, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mu_a * mu_b + c1) * (2 * cov + c2))
            / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Mean focal loss -(1 - p_t)^gamma log p_t of (N, 2, H, W) logits against an (N, H, W)
    0/1 target (Lin et al., ICCV 2017), as DRAEM's segmentation loss.

    Parameters
    ----------
    logits : torch.Tensor
        (N, 2, H, W) segmentation logits.
    target : torch.Tensor
        (N, H, W) 0/1 anomaly mask.
    gamma : float, default 2.0
        Focusing exponent.

    Returns
    -------
    torch.Tensor
        The mean loss (a scalar).
    """
    log_pt = F.log_softmax(logits, dim=1).gather(1, target[:, None].long())
    return -((1.0 - log_pt.exp()) ** gamma * log_pt).mean()


class DRAEMScorer(nn.Module):
    """The softmax anomaly channel as the map; the image score is the largest value of that
    map mean-filtered over `window` x `window` pixels (the paper's)."""

    def __init__(self, reconstructive: nn.Module, discriminative: nn.Module, window: int):
        super().__init__()
        self.reconstructive, self.discriminative, self.window = reconstructive, discriminative, window

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
        _, logits = segment(x, self.reconstructive, self.discriminative)
        anomaly = torch.softmax(logits, dim=1)[:, 1:]
        pooled = F.avg_pool2d(anomaly, self.window, stride=1, padding=self.window // 2,
                              count_include_pad=False)
        return pooled.flatten(1).amax(dim=1), anomaly[:, 0]


@register("draem")
class DRAEM(ImageDetector):
    """Reconstruction + segmentation networks trained on simulated Perlin-texture anomalies.

    Parameters
    ----------
    recon_width, disc_width : int, default 16
        Base widths of the reconstructive and discriminative networks.
    steps : int, default 1000
        Training steps.
    batch_size : int, default 4
        Images per step.
    crop : int, optional
        Train on random square crops of this size; None trains on whole images.
    lr : float, default 3e-4
        Adam learning rate (cut by 5 at 80 % and 90 % of the steps).
    average_from : float or None, default 0.7
        Average the weights from this fraction of the steps on; None keeps the last weights.
    image_size : int, default 128
        Short side of the model input.
    smoothing_sigma : float, default 2.0
        Gaussian smoothing of the map.
    **common
        Parameters shared by every image detector (`ImageDetector`).

    Attributes
    ----------
    reconstructive_, discriminative_ : torch.nn.Module
        The trained networks.
    losses_ : list of float
        Training losses.

    See Also
    --------
    docs/methods/draem.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> images = np.random.default_rng(0).uniform(0.4, 0.6, size=(10, 64, 64, 3))
    >>> detector = oddity.create("draem", image_size=64, steps=4, recon_width=4, disc_width=4,
    ...                          average_from=None)
    >>> detector = detector.fit(images, verbose=False)     # a few steps: a smoke run, not a model
    >>> result = detector.predict(images[:2], verbose=False)
    >>> result.maps[1].shape, len(detector.losses_)
    ((64, 64), 4)
    """

    needs_fixed_shape = True  # training batches stack images of one shape

    def __init__(self, *, recon_width: int = 16, disc_width: int = 16, steps: int = 1000,
                 batch_size: int = 4, crop: int | None = None, lr: float = 3e-4,
                 average_from: float | None = 0.7, image_size: int = 128,
                 smoothing_sigma: float = 2.0, **common: Any):
        super().__init__(image_size=image_size, smoothing_sigma=smoothing_sigma, **common)
        self.recon_width = recon_width
        self.disc_width = disc_width
        self.steps = steps
        self.batch_size = batch_size
        self.crop = crop
        self.lr = lr
        self.average_from = average_from
        self.reconstructive_: ReconstructiveNetwork | None = None
        self.discriminative_: DiscriminativeNetwork | None = None
        self.losses_: np.ndarray | None = None

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_positive_ints(recon_width=self.recon_width, disc_width=self.disc_width,
                            steps=self.steps, batch_size=self.batch_size)
        crop = self.crop
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 32):
            raise ConfigError(f"crop must be at least 32 pixels (or None for whole images), got {crop}")
        check_positive(lr=self.lr)
        average_start(self.steps, self.average_from)

    # --- training --------------------------------------------------------------------------
    def _fit_images(self, images: ImageStream) -> None:
        cache = [x[0].permute(1, 2, 0).numpy().copy() for x in images]
        if not cache:
            raise DataError("no training images could be read")
        with flushed_denormals():  # as EfficientAD: subnormal weights or gradients must not slow late steps
            self._train(cache, verbose=images.verbose)

    def _batch(self, cache: list[np.ndarray], rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clean, anomalous, mask) tensors for `batch_size` random crops of random training
        images, half of them (on average) with a simulated anomaly."""
        clean, anomalous, masks = [], [], []
        for index in rng.integers(len(cache), size=self.batch_size):
            image = cache[index]
            exponent = PERLIN_MAX_EXPONENT
            if self.crop is not None:
                height, width = image.shape[:2]
                crop_h, crop_w = min(self.crop, height), min(self.crop, width)
                top, left = int(rng.integers(height - crop_h + 1)), int(rng.integers(width - crop_w + 1))
                image = image[top:top + crop_h, left:left + crop_w]
                # Perlin cells as large, in image pixels, as the paper's on a whole image.
                exponent = max(1, exponent - round(np.log2(min(height, width) / min(crop_h, crop_w))))
            if rng.random() < ANOMALY_PROBABILITY:
                changed, mask = texture_anomaly(image, rng, sources=cache, opacity=TEXTURE_OPACITY,
                                                max_exponent=exponent, min_change=MIN_CHANGE)
            else:
                changed, mask = image, np.zeros(image.shape[:2], dtype=bool)
            clean.append(image)
            anomalous.append(changed)
            masks.append(mask)

        def stack(arrays: list[np.ndarray]) -> torch.Tensor:
            batch = torch.from_numpy(np.stack(arrays).astype(np.float32))
            return batch.permute(0, 3, 1, 2).contiguous() if batch.ndim == 4 else batch

        return stack(clean), stack(anomalous), stack(masks)

    def _batchnorm_batches(self, cache: list[np.ndarray]) -> list[torch.Tensor]:
        """BATCHNORM_BATCHES training batches (inputs as in training, anomalies included) from
        their own random stream, so that averaging leaves the training trajectory unchanged."""
        rng = np.random.default_rng([self.seed, 3])
        return [self._batch(cache, rng)[1] for _ in range(BATCHNORM_BATCHES)]

    def _train(self, cache: list[np.ndarray], verbose: bool = False) -> None:
        """Train both sub-networks on (H, W, 3) float images of one shape; with `average_from`
        the fitted networks are the uniform average of the weights after each step from that
        fraction of the schedule on."""
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng([self.seed, 1])
        networks = NetworkPair(*build_networks(self.recon_width, self.disc_width, generator))
        optimiser = torch.optim.Adam(networks.parameters(), lr=self.lr)
        milestones = [int(self.steps * 0.8), int(self.steps * 0.9)]
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, gamma=0.2)
        first_averaged = average_start(self.steps, self.average_from)
        average = None if first_averaged is None else AveragedModel(networks)
        networks.train()
        losses = np.zeros(self.steps, dtype=np.float32)
        bar = tqdm(range(self.steps), desc="train draem", unit="step", disable=not verbose)
        for step in bar:
            clean, anomalous, mask = self._batch(cache, rng)
            reconstruction, logits = networks(anomalous)
            segmentation = focal_loss(logits, mask)
            loss = F.mse_loss(reconstruction, clean) + 1.0 - ssim(reconstruction, clean) + segmentation
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if average is not None and step >= first_averaged:
                average.update_parameters(networks)
            losses[step] = float(loss.detach())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{losses[step]:.4f}")
        fitted = networks.eval() if average is None else averaged_networks(average, self._batchnorm_batches(cache))
        self.reconstructive_, self.discriminative_ = fitted.reconstructive, fitted.discriminative
        self.losses_ = losses

    # --- scoring ---------------------------------------------------------------------------
    def _scorer(self, portable: bool) -> "DRAEMScorer":
        assert self.reconstructive_ is not None and self.discriminative_ is not None
        return DRAEMScorer(self.reconstructive_, self.discriminative_, score_window(self.input_size()))

    # --- persistence -----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.reconstructive_ is not None and self.discriminative_ is not None
        arrays.update(module_arrays({"reconstructive": self.reconstructive_,
                                     "discriminative": self.discriminative_}))
        assert self.losses_ is not None
        arrays["losses"] = self.losses_
        return values, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        reconstructive, discriminative = build_networks(self.recon_width, self.disc_width)
        load_module_arrays({"reconstructive": reconstructive, "discriminative": discriminative}, arrays,
                           f"DRAEM recon_width={self.recon_width}, disc_width={self.disc_width}")
        self.losses_ = np.asarray(arrays.get("losses", np.zeros(0)), dtype=np.float32)
        self.reconstructive_, self.discriminative_ = reconstructive.eval(), discriminative.eval()
