"""future_frame: CT-D2GAN, future-frame prediction by a convolutional transformer with two
discriminators, reduced to train on a CPU.

Feng, Song, Zhong, Li and Wu, "Convolutional Transformer based Dual Discriminator Generative
Adversarial Networks for Video Anomaly Detection", ACM Multimedia 2021,
https://arxiv.org/abs/2107.13720

- Generator: a convolutional encoder applied to each of the `past_frames` previous frames,
  temporal self-attention across those frames at every position of the encoded grid (with a
  learned embedding of the time step), and a convolutional decoder (with a skip connection
  from the last frame's encoder) that predicts the next frame.
- Two discriminators, least-squares GAN losses: an image discriminator (patch-wise, on the next
  frame, real or predicted) for local consistency, and a video discriminator (3-D convolutions
  over the past frames followed by the real or predicted next frame) for temporal coherence.
- Generator loss: intensity (L2) + image-gradient (L1) loss between predicted and real next
  frame, plus `adversarial_weight` x (image + video adversarial losses).
- Frame score: the negative PSNR of the predicted frame (higher = more anomalous); map: the
  squared prediction error, averaged over 4x4 pixel cells.

Reductions, so that a fit fits in 30 minutes of 2 CPU cores (what each costs in prediction
quality on a held-out normal clip is not measured yet; the docs page says what is):
- Resolution: frames at 64 pixels on the short side, in gray (the paper: 256 x 256).
- Width: 32 channels in the first encoder stage, one attention layer (the paper's encoder is
  wider and its transformer deeper).
- Training: `steps` = 1500 batches of 8 windows (the paper trains for far longer on a GPU).
Other deviations:
- The past window is 4 frames (the paper uses more); the first `past_frames` frames of a clip
  have no prediction and take the clip's first predicted score.
- No per-clip score normalisation (the paper normalises PSNR per test clip, which needs the
  whole clip in advance); `oddity eval` reports that variant beside, labelled.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.core.torch_state import flushed_denormals, load_module_arrays, module_arrays
from oddity.video.data import Clip
from oddity.video.detector import VideoDetector

MAP_CELL = 4  # pixels per map cell (side)


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """Conv 3x3, BatchNorm, ReLU.

    Parameters
    ----------
    c_in, c_out : int
        Channels.
    stride : int, default 1
        Stride of the convolution.

    Returns
    -------
    torch.nn.Sequential
        The block.
    """
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ConvTransformerGenerator(nn.Module):
    """Encoder per frame, temporal self-attention per position, decoder to the next frame."""

    def __init__(self, past_frames: int, width: int, heads: int = 4):
        super().__init__()
        self.enc1 = conv_block(1, width)
        self.enc2 = conv_block(width, 2 * width, stride=2)
        self.enc3 = conv_block(2 * width, 4 * width, stride=2)
        self.time_embedding = nn.Parameter(torch.zeros(past_frames, 4 * width))
        self.attention = nn.MultiheadAttention(4 * width, heads, batch_first=True)
        self.norm = nn.LayerNorm(4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1)
        self.dec2 = conv_block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1)
        self.dec1 = conv_block(2 * width, width)
        self.out = nn.Conv2d(width, 1, 3, 1, 1)

    def forward(self, past: torch.Tensor) -> torch.Tensor:
        """past (B, T, H, W) in [-1, 1] -> next frame (B, 1, H, W) in [-1, 1].

        Parameters
        ----------
        past : torch.Tensor
            (B, T, H, W) past frames in [-1, 1].

        Returns
        -------
        torch.Tensor
            (B, 1, H, W) predicted next frame.
        """
        batch, steps, height, width = past.shape
        x = past.reshape(batch * steps, 1, height, width)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        channels, h, w = e3.shape[1:]
        tokens = e3.reshape(batch, steps, channels, h * w).permute(0, 3, 1, 2).reshape(-1, steps, channels)
        tokens = tokens + self.time_embedding
        attended, _ = self.attention(tokens[:, -1:], tokens, tokens)  # the last step asks the past
        fused = self.norm(attended[:, 0] + tokens[:, -1])
        fused = fused.reshape(batch, h * w, channels).permute(0, 2, 1).reshape(batch, channels, h, w)
        last = slice(steps - 1, None, steps)  # the last frame's encoder maps, for the skips
        d2 = self.dec2(torch.cat([self.up2(fused), e2[last]], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1[last]], dim=1))
        return torch.tanh(self.out(d1))


class ImageDiscriminator(nn.Module):
    """Patch-wise real/fake logits of a single frame (B, 1, H, W)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 1, 3, 1, 1))

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        """Realness logits of frames.

        Parameters
        ----------
        frame : torch.Tensor
            (B, 1, H, W) frames.

        Returns
        -------
        torch.Tensor
            Logits.
        """
        return self.net(frame)


class VideoDiscriminator(nn.Module):
    """Real/fake logits of a clip (B, T + 1, H, W): past frames and the next one."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(1, width, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(width, 2 * width, (3, 4, 4), (2, 2, 2), (1, 1, 1)), nn.BatchNorm3d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(2 * width, 1, 3, 1, 1))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Realness logits of clips.

        Parameters
        ----------
        clip : torch.Tensor
            (B, T, H, W) clips.

        Returns
        -------
        torch.Tensor
            Logits.
        """
        return self.net(clip[:, None])


def gradient_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance between the absolute horizontal and vertical image gradients.

    Parameters
    ----------
    predicted, target : torch.Tensor
        (N, 1, H, W) frames.

    Returns
    -------
    torch.Tensor
        The loss (a scalar).
    """
    def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x[..., :, 1:] - x[..., :, :-1]).abs(), (x[..., 1:, :] - x[..., :-1, :]).abs()
    (px, py), (tx, ty) = gradients(predicted), gradients(target)
    return (px - tx).abs().mean() + (py - ty).abs().mean()


def psnr(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-item PSNR (dB) of frames in [-1, 1] (peak-to-peak 2).

    Parameters
    ----------
    predicted, target : torch.Tensor
        (N, 1, H, W) frames in [-1, 1].

    Returns
    -------
    torch.Tensor
        (N,) PSNR in dB.
    """
    mse = (predicted - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(4.0 / mse)


@register("future_frame")
class FutureFrame(VideoDetector):
    """CT-D2GAN: next-frame prediction error (negative PSNR) of a convolutional transformer.

    Attributes
    ----------
    generator_ : torch.nn.Module
        The trained next-frame generator.
    loss_history_ : list of float
        Generator loss at each training step.

    Examples
    --------
    >>> import os, tempfile
    >>> import oddity
    >>> from oddity.video.data import evaluation_clips
    >>> from oddity.video.synth import make_video_set
    >>> folder = tempfile.TemporaryDirectory()
    >>> root = make_video_set(os.path.join(folder.name, "squares"), train_clips=3,
    ...                       test_clips=1, frames=24)
    >>> detector = oddity.create("future_frame", image_size=32, width=8, steps=20, batch_size=4)
    >>> detector = detector.fit(root, verbose=False)      # a few steps: a smoke run, not a model
    >>> clip = evaluation_clips(root)[0]
    >>> result = detector.score(clip, verbose=False)[0]
    >>> len(result.scores) == len(clip), len(detector.loss_history_)
    (True, 20)
    >>> folder.cleanup()
    """

    def __init__(self, *, past_frames: int = 4, width: int = 32, steps: int = 1500,
                 batch_size: int = 8, learning_rate: float = 2e-4, adversarial_weight: float = 0.05,
                 image_size: int = 64, **common: Any):
        super().__init__(image_size=image_size, **common)
        self.past_frames = past_frames
        self.width = width
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.adversarial_weight = adversarial_weight
        self.generator_: ConvTransformerGenerator | None = None
        self.loss_history_: list[float] = []

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        if self.past_frames < 2:
            raise ConfigError(f"past_frames must be at least 2, got {self.past_frames}")
        if self.width < 4 or self.width % 4:
            raise ConfigError(f"width must be a positive multiple of 4, got {self.width}")
        if (self.steps < 1 or self.batch_size < 1 or self.learning_rate <= 0
                or self.adversarial_weight < 0):
            raise ConfigError("steps, batch_size and learning_rate must be positive, "
                              "adversarial_weight 0 or more")
        if self.image_size % 4:
            raise ConfigError(f"image_size must be a multiple of 4 (two 2x downsamplings), got {self.image_size}")

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """Short side `image_size`, both sides multiples of 4 (for the encoder's strides).

        Parameters
        ----------
        height, width : int
            The frame's size.

        Returns
        -------
        tuple of int
            (height, width) of the model input.
        """
        h, w = super().model_size(height, width)
        return max(4, round(h / 4) * 4), max(4, round(w / 4) * 4)

    def _gray_frames(self, clip: Clip, verbose: bool, desc: str) -> np.ndarray:
        """(T, h, w) float32 in [-1, 1] at model resolution (a clip held in memory at that size)."""
        frames = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
                  for f in tqdm(self.model_frames(clip), total=len(clip), desc=f"{desc} {clip.id}",
                                unit="frame", leave=False, disable=not verbose)]
        return np.stack(frames).astype(np.float32) / 127.5 - 1.0

    def _fit_clips(self, clips: list[Clip], verbose: bool) -> None:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        videos = [self._gray_frames(c, verbose, "read") for c in clips]
        videos = [v for v in videos if len(v) > self.past_frames]
        if not videos:
            raise DataError(f"every clip is shorter than past_frames + 1 = {self.past_frames + 1} frames")
        shapes = {v.shape[1:] for v in videos}
        if len(shapes) > 1:
            raise DataError(f"training clips differ in frame size at model resolution: {sorted(shapes)}")
        windows = [(i, t) for i, v in enumerate(videos) for t in range(self.past_frames, len(v))]
        generator = ConvTransformerGenerator(self.past_frames, self.width)
        image_d, video_d = ImageDiscriminator(self.width), VideoDiscriminator(self.width)
        opt_g = torch.optim.Adam(generator.parameters(), lr=self.learning_rate, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam([*image_d.parameters(), *video_d.parameters()],
                                 lr=self.learning_rate / 10, betas=(0.5, 0.999))
        self.loss_history_ = []
        with flushed_denormals(), tqdm(range(self.steps), desc="train", unit="step", disable=not verbose) as bar:
            for _ in bar:
                picks = rng.integers(len(windows), size=self.batch_size)
                batch = torch.from_numpy(np.stack([videos[windows[p][0]][windows[p][1] - self.past_frames:
                                                                         windows[p][1] + 1] for p in picks]))
                past, target = batch[:, :-1], batch[:, -1:]
                predicted = generator(past)
                loss_g = F.mse_loss(predicted, target) + gradient_loss(predicted, target)
                if self.adversarial_weight > 0:
                    fake_clip = torch.cat([past, predicted], dim=1)
                    loss_g = loss_g + self.adversarial_weight * (
                        (image_d(predicted) - 1).pow(2).mean() + (video_d(fake_clip) - 1).pow(2).mean())
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                if self.adversarial_weight > 0:
                    fake = predicted.detach()
                    loss_d = ((image_d(target) - 1).pow(2).mean() + image_d(fake).pow(2).mean()
                              + (video_d(batch) - 1).pow(2).mean()
                              + video_d(torch.cat([past, fake], dim=1)).pow(2).mean()) / 2
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                self.loss_history_.append(loss_g.item())
                bar.set_postfix(loss=f"{self.loss_history_[-1]:.4f}", refresh=False)
        self.generator_ = generator.eval()

    def predict_frames(self, video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(PSNR per predicted frame (T - past,), squared-error maps) of a (T, h, w) gray clip.

        Parameters
        ----------
        video : numpy.ndarray
            (T, h, w) gray frames in [-1, 1].

        Returns
        -------
        tuple of numpy.ndarray
            (PSNR per predicted frame, (T - past, h, w) squared-error maps).
        """
        assert self.generator_ is not None
        scores, maps = [], []
        with torch.inference_mode():
            tensor = torch.from_numpy(video)
            for start in range(self.past_frames, len(video), 32):
                ends = range(start, min(start + 32, len(video)))
                past = torch.stack([tensor[t - self.past_frames:t] for t in ends])
                target = tensor[list(ends)][:, None]
                predicted = self.generator_(past)
                scores.append(psnr(predicted, target).numpy())
                maps.append(F.avg_pool2d((predicted - target).pow(2), MAP_CELL, ceil_mode=True)[:, 0].numpy())
        return np.concatenate(scores), np.concatenate(maps)

    def _score_clip(self, clip: Clip, verbose: bool) -> tuple[np.ndarray, np.ndarray]:
        video = self._gray_frames(clip, verbose, "score")
        if len(video) <= self.past_frames:
            raise DataError(f"{clip.source}: {len(video)} frames; {self.name} needs more than "
                            f"past_frames = {self.past_frames}")
        values, maps = self.predict_frames(video)
        scores = np.concatenate([np.full(self.past_frames, -values[0]), -values])
        maps = np.concatenate([np.repeat(maps[:1], self.past_frames, axis=0), maps]).astype(np.float32)
        return scores, maps

    def _networks(self) -> dict[str, nn.Module]:
        assert self.generator_ is not None
        return {"generator": self.generator_}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        return {**values, "loss_history": self.loss_history_}, {**arrays, **module_arrays(self._networks())}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.generator_ = ConvTransformerGenerator(self.past_frames, self.width)
        load_module_arrays(self._networks(), arrays, f"past_frames={self.past_frames}, width={self.width}")
        self.generator_.eval()
        self.loss_history_ = list(values.get("loss_history", []))
