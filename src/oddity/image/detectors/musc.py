"""MuSc: zero-shot inspection by mutual scoring of the unlabelled images of a batch.

Li et al., "Zero-Shot Industrial Anomaly Classification and Segmentation with Mutual Scoring of
the Unlabeled Images", ICLR 2024, https://arxiv.org/abs/2401.16753 (code: github.com/xrli-U/MuSc)

Method: patch features are layer-normalised and averaged over r x r neighbourhoods (LNAMD, r in
`radii`); each patch of an image is scored by its distance to the nearest patch of every other
image of the batch, averaging the smallest `interval` fraction of those distances (MSM). Image
scores are the maps' maxima, re-scored by their nearest images in a global feature space
(RsCIN, `windows`). Nothing is trained: `fit` only stores the configuration.

Deviations (reasons and figures: docs/methods/musc.md):
- EfficientNet-Lite0 stages 4 + 5 (stride 16) instead of CLIP ViT-L/14-336 (not available offline).
- Stages scored on their own grids; score maps, not features, are upsampled.
- Memory bounded by chunking the distance computations (`chunk_mb`).
- Batches above `max_references` images are scored against one shared random reference set.
- Thresholds from the batch itself (median + MAD, `oddity.core.thresholds.batch_threshold`).
"""
from __future__ import annotations

import warnings
from typing import Any

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from oddity.core.checks import check_positive
from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import register
from oddity.core.results import ImageScores
from oddity.core.thresholds import Threshold, batch_threshold
from oddity.image import geometry
from oddity.image.data import load_all
from oddity.image.detector import ImageDetector, ImageInput, as_samples
from oddity.image.features import (
    DEFAULT_INPUT_NORM,
    LEGACY_PARAMS,
    check_layers,
    feature_extractor,
)

MIN_BATCH = 2  # a patch needs at least one other image to be scored against


def aggregate(feature: torch.Tensor, radius: int) -> np.ndarray:
    """LNAMD for one layer-normalised (C, h, w) map: mean over r x r neighbourhoods, then
    (h*w, C) L2-normalised patch vectors.

    Parameters
    ----------
    feature : torch.Tensor
        (C, h, w) layer-normalised map.
    radius : int
        Odd neighbourhood size r.

    Returns
    -------
    numpy.ndarray
        (h*w, C) patch vectors.
    """
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
    docstring); memory bounded by chunks.

    Parameters
    ----------
    patches : list of numpy.ndarray
        (h*w, C) patch vectors per image (`aggregate`).
    references : list of int
        Indices of the reference images.
    interval : float
        Fraction of the references averaged over.
    chunk_bytes : int
        Memory bound of one distance chunk.

    Returns
    -------
    list of numpy.ndarray
        (h*w,) patch scores per image.
    """
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
    (similarity-weighted), then averaged over the windows k.

    Parameters
    ----------
    scores : numpy.ndarray
        (N,) image scores of the batch.
    embeddings : numpy.ndarray
        (N, D) L2-normalised global image features.
    windows : tuple of int
        Neighbourhood sizes k.

    Returns
    -------
    numpy.ndarray
        (N,) rescored image scores.
    """
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
    """Zero-shot: scores a batch of unlabelled images against each other (no training).

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        Pretrained feature extractor (`oddity.backbones.list_backbones`).
    layers : tuple of str, default ("stage4", "stage5")
        Backbone stages scored (each on its own grid).
    radii : tuple of int, default (1, 3, 5)
        Neighbourhood sizes of the LNAMD aggregation.
    interval : float, default 0.3
        Share of the smallest distances averaged by the mutual scoring.
    windows : tuple of int, default (1, 2, 3)
        Neighbourhood sizes of the RsCIN re-scoring of image scores.
    max_references : int, default 100
        Larger batches are scored against a shared random subset of this many images.
    chunk_mb : float, default 256.0
        Memory bound of one chunk of distance computations, in MB.
    **common
        Parameters shared by every image detector (`ImageDetector`).

    Attributes
    ----------
    threshold_, pixel_threshold_ : Threshold or None
        None: nothing is learned, each batch is thresholded by its own scores (median + MAD,
        `oddity.core.thresholds.batch_threshold`) unless a threshold is set by hand.

    See Also
    --------
    docs/methods/musc.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> batch = np.random.default_rng(0).uniform(0.4, 0.6, size=(6, 64, 64, 3))
    >>> batch[5, 20:40, 20:40] = 1.0                           # a bright square on the last image
    >>> detector = oddity.create("musc", image_size=64).fit()   # nothing to learn
    >>> result = detector.predict(batch, verbose=False)
    >>> result.maps[5].shape, int(np.argmax(result.scores))
    ((64, 64), 5)
    """

    legacy_params = LEGACY_PARAMS

    zero_shot = True
    not_a_graph = ("it scores each image against the other images of the batch it is given, so "
                   "its result depends on the whole batch: no fixed graph maps one image to its score")

    def __init__(self, *, backbone: str = "efficientnet_lite0", input_norm: str = DEFAULT_INPUT_NORM,
                 layers: tuple[str, ...] = ("stage4", "stage5"),
                 radii: tuple[int, ...] = (1, 3, 5), interval: float = 0.3,
                 windows: tuple[int, ...] = (1, 2, 3), max_references: int = 100,
                 chunk_mb: float = 256.0, **common: Any):
        super().__init__(**common)
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = layers
        self.radii = radii
        self.interval = interval
        self.windows = windows
        self.max_references = max_references
        self.chunk_mb = chunk_mb

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        if self.tile is not None:
            raise ConfigError("tile: musc scores whole images against each other; leave tile unset")
        check_layers(self.layers)
        radii, windows = self.radii, self.windows
        if not radii or any(r < 1 or r % 2 == 0 for r in radii):
            raise ConfigError(f"radii must be odd positive neighbourhood sizes, e.g. (1, 3, 5); got {radii}")
        if not 0.0 < self.interval <= 1.0:
            raise ConfigError(f"interval must lie in (0, 1] (fraction of other images averaged), got {self.interval}")
        if not windows or any(k < 1 for k in windows):
            raise ConfigError(f"windows must be positive neighbourhood sizes, e.g. (1, 2, 3); got {windows}")
        if self.max_references < 2:
            raise ConfigError(f"max_references must be at least 2, got {self.max_references}")
        check_positive(chunk_mb=self.chunk_mb)

    @property
    def is_fitted(self) -> bool:
        return True  # nothing to learn: a configured detector is ready to score a batch

    def fit(self, data: ImageInput | None = None, *, verbose: bool = True) -> "MuSc":
        """Nothing to learn: checks the configuration only (images given are not read).

        Parameters
        ----------
        data : optional
            Ignored (a warning says so).
        verbose : bool, default True
            Unused: nothing is computed.

        Returns
        -------
        MuSc
            self.

        Raises
        ------
        ConfigError
            If a hyper-parameter is invalid.
        """
        self.validate_params()
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
              batch_size: int = 1, _calibrating: bool = False) -> ImageScores:
        """Score the images against each other: an anomaly score and a map (original size) per
        image. Needs a batch of at least MIN_BATCH images (more than 10 recommended); the
        whole input is that batch (`batch_size` does not apply).

        Parameters
        ----------
        data : str, path, list or array
            The batch: a folder, image paths, an (N, H, W, 3) array or a list of images.
        verbose : bool, default True
            Show progress bars.
        desc : str, default "score"
            Label of the progress bars.
        batch_size : int, default 1
            Ignored (the whole input is one batch).

        Returns
        -------
        ImageScores
            A score and a map per image.

        Raises
        ------
        ConfigError
            If a hyper-parameter is invalid.
        DataError
            If fewer than MIN_BATCH images can be read.
        """
        self.validate_params()  # zero-shot: scoring may come without fit
        samples = as_samples(data, for_fit=False)
        stages: list[list[torch.Tensor]] = []
        embeddings, sizes, names = [], [], []
        bar = tqdm(total=len(samples), desc=f"{desc}: features", unit="img", disable=not verbose)
        with bar, torch.inference_mode():
            for sample, pixels in load_all(samples, self.skip_bad):
                features, embedding = self._features(self._model_input(pixels))
                stages.append(features)
                embeddings.append(embedding)
                sizes.append((pixels.shape[:2], self.spec().input_hw(pixels.shape[:2])))
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
        """Thresholds set by the user (or saved) if any, else derived from this batch.

        Parameters
        ----------
        result : ImageScores
            The batch's scores and maps.

        Returns
        -------
        tuple of Threshold
            (image threshold, pixel threshold).
        """
        image = self.threshold_ or batch_threshold(result.scores, self.target_fpr)
        assert result.maps is not None
        pixel = self.pixel_threshold_ or batch_threshold(np.array([m.max() for m in result.maps]),
                                                         self.target_fpr)
        return image, pixel
