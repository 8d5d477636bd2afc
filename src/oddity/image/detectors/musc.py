"""MuSc: zero-shot inspection by mutual scoring of the unlabelled images of a batch.

Li et al., "Zero-Shot Industrial Anomaly Classification and Segmentation with Mutual Scoring of
the Unlabeled Images", ICLR 2024, https://arxiv.org/abs/2401.16753 (code: github.com/xrli-U/MuSc)

DEVIATION FIRST: the paper's backbone is CLIP ViT-L/14-336 (or DINO ViTs); offline we only have
EfficientNet-Lite0/1/2 with ImageNet weights, so the patch features come from a small CNN.
Stages chosen on principle: MuSc averages several intermediate layers (mid to deep) of one
network; on a CNN the stride-8 and stride-16 stages are the ones that are both local enough to
localise defects and semantic enough to be invariant to nuisance (the reason PatchCore uses
them); stride-32 stages are too coarse for 256 px inputs, stride 2-4 ones respond to texture
noise. Mutual scoring costs N^2 x patches^2, so a stride-8 stage costs 16 times a stride-16 one:
the default is Lite0's two stride-16 stages, stage4 and stage5 (80 and 112 channels, a 16 x 16
grid at 256 px). `layers=("stage3", "stage4", "stage5")` adds the stride-8 stage for finer maps
at about 3.5 times the time (MVTec bottle, this machine: pixel AUROC 0.992 vs 0.987, AUPRO 0.956
vs 0.930, image AUROC 0.996 both). The published figures are not expected to carry over.

The method, as implemented:
- LNAMD (local neighbourhood aggregation with multiple degrees): each stage's map is
  layer-normalised over (C, h, w) per image, then every position is averaged over its r x r
  neighbourhood (zero padding counted, as the reference code's unfold + mean does) for
  r in `radii` = (1, 3, 5), and the patch vectors are L2-normalised.
- MSM (mutual scoring): for one stage and one r, a patch of image i gets, for every other image
  j, the distance to its nearest patch of j (faiss exact L2 search); the patch score is the
  mean of the smallest `interval` fraction (30%) of those N - 1 distances (the paper's interval
  average with its default [0, 30%]). Scores are averaged over stages and r, each stage's grid
  upsampled to the finest one.
- Maps and image scores: the patch map is upsampled, Gaussian-smoothed (sigma 4 at the model
  input) and resized to the original image as for every oddity detector; the raw image score
  is that map's maximum (the reference code takes the maximum of the unsmoothed map).
- RsCIN (re-scoring with constrained image-level neighbourhoods): raw image scores are min-max
  normalised; for each window k in `windows` = (1, 2, 3) every image keeps its k most similar
  images (itself included; cosine similarity of global image features, found with faiss), the
  similarities become row-normalised weights, and the image's score is the weighted mean of its
  neighbours' scores; the final score is the mean over windows (the paper's multi-window mask
  operation, MVTec windows). The global image feature is the L2-normalised spatial mean of the
  deepest chosen stage, standing in for CLIP's image embedding.

Other deviations, with reasons:
- Stages are scored on their own grids and the score maps (not the features) are upsampled, so
  a stride-16 stage costs 1/16 of the patch pairs of a stride-8 one; the reference code upsamples features, but
  its ViT layers all share one grid so the question does not arise there.
- Memory is bounded instead of the reference's all-pairs tensor: query images are processed in
  chunks whose (patches x reference images) distance matrix stays under `chunk_mb` megabytes (at least one
  image per chunk). Peak memory is then about: stage features of the whole batch
  (4 bytes x sum over stages of patches x channels: ~0.2 MB per 256 x 256 image with the
  default stages, twice that while one (stage, r) is aggregated) + the chunk matrix
  (`chunk_mb`, twice while it is partitioned) + the maps at each image's original size (4 bytes per pixel) + the backbone.
  Measured: the 582 magnetic-tile test images (short side 256 px, long side up to ~630) peak at
  1.83 GB RSS, backbone and Python included (benchmarks/results/image.md).
- Reference cap: in a batch of more than `max_references` (100) images, every image is scored
  against the same random subset of that many images (chosen with `seed`) instead of all
  others, so time grows as N x 100 rather than N^2; below the cap the scores are exactly the
  paper's. This plays the role of the paper's subset division (`divide_num`), which also
  scores each image against part of the set only, but keeps one shared reference set.
  Chunking never changes the scores (up to float rounding).
- Thresholds: there is no normal data to calibrate on, so `predict` derives them from the batch
  itself (`oddity.core.thresholds.batch_threshold`: median + z(1 - target_fpr) x 1.4826 MAD of
  the batch's image scores, and of its map maxima for pixels), which assumes most of the batch
  is normal. A threshold set with `set_threshold` (or saved in a model) is used instead.
"""
from __future__ import annotations

import warnings
from typing import Any

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.core.results import ImageScores
from oddity.core.thresholds import Threshold, batch_threshold
from oddity.image import geometry
from oddity.image.data import load_all
from oddity.image.detector import ImageDetector, ImageInput, as_samples
from oddity.image.features import DEFAULT_INPUT_NORM, LEGACY_PARAMS, feature_extractor

MIN_BATCH = 2  # a patch needs at least one other image to be scored against


def aggregate(feature: torch.Tensor, radius: int) -> np.ndarray:
    """LNAMD for one layer-normalised (C, h, w) map: mean over r x r neighbourhoods, then
    (h*w, C) L2-normalised patch vectors."""
    if radius > 1:
        feature = F.avg_pool2d(feature[None], radius, stride=1, padding=radius // 2,
                               count_include_pad=True)[0]
    patches = F.normalize(feature.flatten(1).T, dim=1)
    return np.ascontiguousarray(patches.numpy(), dtype=np.float32)


def _chunks(sizes: list[int], n_images: int, chunk_bytes: int) -> list[range]:
    """Consecutive image ranges whose (patches x n_images) float32 matrix fits `chunk_bytes`
    (a single image per chunk when even one does not fit)."""
    chunks, start, rows = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and (rows + size) * n_images * 4 > chunk_bytes:
            chunks.append(range(start, i))
            start, rows = i, 0
        rows += size
    chunks.append(range(start, len(sizes)))
    return chunks


def mutual_scores(patches: list[np.ndarray], references: list[int], interval: float,
                  chunk_bytes: int) -> list[np.ndarray]:
    """MSM: per image, each patch's mean distance over the `interval` fraction of the reference
    images (all others, or a capped subset) whose nearest patch is closest to it (see module
    docstring); memory bounded by chunks."""
    keep = max(1, int((len(references) - 1) * interval))
    column = {image: j for j, image in enumerate(references)}
    sizes = [len(p) for p in patches]
    scores: list[np.ndarray] = []
    for chunk in _chunks(sizes, len(references), chunk_bytes):
        queries = np.concatenate([patches[i] for i in chunk])
        distances = np.empty((len(queries), len(references)), dtype=np.float32)
        for j, image in enumerate(references):
            squared, _ = faiss.knn(queries, patches[image], 1)
            distances[:, j] = squared[:, 0]
        offsets = np.cumsum([0] + [sizes[i] for i in chunk])
        for row, i in enumerate(chunk):
            if i in column:  # never score an image against itself
                distances[offsets[row]:offsets[row + 1], column[i]] = np.inf
        nearest = np.partition(distances, keep - 1, axis=1)[:, :keep]
        mean = np.sqrt(np.maximum(nearest, 0.0)).mean(axis=1)
        scores += np.split(mean, offsets[1:-1])
    return scores


def rescore(scores: np.ndarray, embeddings: np.ndarray, windows: tuple[int, ...]) -> np.ndarray:
    """RsCIN: min-max normalised scores averaged over each image's k most similar images
    (similarity-weighted), then averaged over the windows k."""
    span = scores.max() - scores.min()
    normalised = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
    n = len(scores)
    k_max = min(max(windows), n)
    similarity, neighbours = _neighbourhoods(embeddings, k_max)
    result = np.zeros_like(normalised)
    for k in windows:
        weights = similarity[:, :min(k, k_max)]
        result += (weights * normalised[neighbours[:, :weights.shape[1]]]).sum(1) / weights.sum(1)
    return result / len(windows)


def _neighbourhoods(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices) of each image's k most similar images by inner product, the image
    itself first (even when another image is an exact duplicate of it)."""
    n = len(embeddings)
    similarity, neighbours = faiss.knn(embeddings, embeddings, min(k + 1, n), metric=faiss.METRIC_INNER_PRODUCT)
    order = np.argsort(neighbours == np.arange(n)[:, None], axis=1, kind="stable")  # others first
    others = np.take_along_axis(neighbours, order, 1)[:, :k - 1]
    self_similarity = (embeddings * embeddings).sum(1, keepdims=True)
    similarity = np.hstack([self_similarity, np.take_along_axis(similarity, order, 1)[:, :k - 1]])
    indices = np.hstack([np.arange(n)[:, None], others])
    return np.maximum(similarity.astype(np.float64), 1e-12), indices


@register("musc")
class MuSc(ImageDetector):
    """Zero-shot: scores a batch of unlabelled images against each other (no training)."""

    legacy_params = LEGACY_PARAMS

    zero_shot = True

    def __init__(self, *, backbone: str = "efficientnet_lite0", input_norm: str = DEFAULT_INPUT_NORM,
                 layers: tuple[str, ...] = ("stage4", "stage5"),
                 radii: tuple[int, ...] = (1, 3, 5), interval: float = 0.3,
                 windows: tuple[int, ...] = (1, 2, 3), max_references: int = 100,
                 chunk_mb: float = 256.0, **common: Any):
        super().__init__(**common)
        if self.tile is not None:
            raise ConfigError("tile: musc scores whole images against each other; leave tile unset")
        if not radii or any(r < 1 or r % 2 == 0 for r in radii):
            raise ConfigError(f"radii must be odd positive neighbourhood sizes, e.g. (1, 3, 5); got {radii}")
        if not 0.0 < interval <= 1.0:
            raise ConfigError(f"interval must lie in (0, 1] (fraction of other images averaged), got {interval}")
        if not windows or any(k < 1 for k in windows):
            raise ConfigError(f"windows must be positive neighbourhood sizes, e.g. (1, 2, 3); got {windows}")
        if max_references < 2:
            raise ConfigError(f"max_references must be at least 2, got {max_references}")
        if chunk_mb <= 0:
            raise ConfigError(f"chunk_mb must be positive, got {chunk_mb}")
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = tuple(layers)
        self.radii = tuple(radii)
        self.interval = interval
        self.windows = tuple(windows)
        self.max_references = max_references
        self.chunk_mb = chunk_mb

    @property
    def is_fitted(self) -> bool:
        return True  # nothing to learn: a configured detector is ready to score a batch

    def fit(self, data: ImageInput | None = None, *, verbose: bool = True) -> "MuSc":
        """Nothing to learn: keeps the configuration only (images given are not read)."""
        if data is not None:
            warnings.warn("musc is zero-shot: the training images are not used; score a batch of "
                          "test images instead", stacklevel=2)
        return self

    def _features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], np.ndarray]:
        """Layer-normalised (C, h, w) map per stage and the global image feature for RsCIN."""
        maps = feature_extractor(self.backbone, self.layers, self.input_norm)(x)
        normalised = [F.layer_norm(m[0].contiguous(), tuple(m.shape[1:])) for m in maps]
        embedding = F.normalize(maps[-1][0].mean(dim=(1, 2)), dim=0)
        return normalised, embedding.numpy()

    def score(self, data: ImageInput, *, verbose: bool = True, desc: str = "score",
              _calibrating: bool = False) -> ImageScores:
        """Score the images against each other: an anomaly score and a map (original size) per
        image. Needs a batch of at least MIN_BATCH images (more than 10 recommended)."""
        samples = as_samples(data, for_fit=False)
        stages: list[list[torch.Tensor]] = []
        embeddings, sizes, names = [], [], []
        bar = tqdm(total=len(samples), desc=f"{desc}: features", unit="img", disable=not verbose)
        with bar, torch.inference_mode():
            for sample, pixels in load_all(samples, self.skip_bad):
                features, embedding = self._features(self._model_input(pixels))
                stages.append(features)
                embeddings.append(embedding)
                sizes.append((pixels.shape[:2], self._input_shape(pixels.shape[:2])))
                names.append(sample.name)
                bar.update(1)
        if len(names) < MIN_BATCH:
            raise DataError(f"musc scores images against each other: it needs a batch of at least "
                            f"{MIN_BATCH} images (10 or more recommended), got {len(names)}")
        patch_maps = self._mutual_maps(stages, verbose, desc)
        maps = [geometry.patch_map_to_image(m, input_hw, hw, self.smoothing_sigma)
                for m, (hw, input_hw) in zip(patch_maps, sizes)]
        raw = np.array([m.max() for m in maps], dtype=np.float64)
        scores = rescore(raw, np.stack(embeddings), self.windows)
        return ImageScores(scores=scores, maps=maps, paths=names)

    def _mutual_maps(self, stages: list[list[torch.Tensor]], verbose: bool, desc: str) -> list[np.ndarray]:
        """Per image, the MSM patch scores averaged over stages and radii on the first stage's grid."""
        chunk_bytes = int(self.chunk_mb * 2**20)
        references = list(range(len(stages)))
        if len(references) > self.max_references:
            chosen = np.random.default_rng(self.seed).choice(len(stages), self.max_references, replace=False)
            references = sorted(chosen.tolist())
        grids = [tuple(s[0].shape[-2:]) for s in stages]
        total = [np.zeros(grid, dtype=np.float64) for grid in grids]
        steps = len(self.layers) * len(self.radii)
        with tqdm(total=steps, desc=f"{desc}: mutual scoring", unit="step", disable=not verbose) as bar:
            for level in range(len(self.layers)):
                for radius in self.radii:
                    patches = [aggregate(s[level], radius) for s in stages]
                    for i, scores in enumerate(mutual_scores(patches, references, self.interval, chunk_bytes)):
                        grid = tuple(stages[i][level].shape[-2:])
                        total[i] += geometry.resize_map(scores.reshape(grid), grids[i])
                    bar.update(1)
        count = len(self.layers) * len(self.radii)
        return [(t / count).astype(np.float32) for t in total]

    def decision_thresholds(self, result: ImageScores) -> tuple[Threshold | None, Threshold | None]:
        """Thresholds set by the user (or saved) if any, else derived from this batch."""
        image = self.threshold_ or batch_threshold(result.scores, self.target_fpr)
        assert result.maps is not None
        pixel = self.pixel_threshold_ or batch_threshold(np.array([m.max() for m in result.maps]),
                                                         self.target_fpr)
        return image, pixel
