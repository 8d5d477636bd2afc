"""PatchCore: a memory bank of locally aware patch features of normal images.

Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022,
https://arxiv.org/abs/2106.08265

Method: patch features of two mid-level backbone stages (stride 8 and 16), each averaged over
3x3 neighbourhoods (zero padding at the map border) and concatenated on the stride-8 grid; a greedy k-center coreset of all
training patches (distances after a random projection to 128 dimensions) forms the memory
bank. A test patch scores its distance to the nearest bank patch (faiss); the map is those
distances upsampled and smoothed, the image score the largest one, re-weighted as the paper's
Eq. 7.

Deviations (reasons and figures: docs/methods/patchcore.md):
- EfficientNet-Lite0 stages 3 + 5 instead of WideResNet-50 layers 2 + 3 (offline, faster on CPU).
- 1% coreset by default instead of 10-25% (`coreset_ratio`), with a hard cap `max_bank_size`.
- Border standardisation of maps (`border_rings=4`); the image score is then the largest
  standardised patch score instead of Eq. 7.
- Each image's colour channels balanced (grey world) and its intensities standardised before
  the backbone (`colour_balance`, `per_image_contrast`; applied to the resized model input,
  `normalise_after_resize`), so lighting changes are not read as anomalies.
- Coreset selected chunk by chunk beyond `coreset_chunk` patches, so fit memory stays bounded.
- Nearest neighbours: exact matrix product + minimum inside the scoring graph (so it exports),
  faiss in process (same scores to float rounding).
- Thresholds calibrated leave-one-image-out by default: each training image scored against
  the bank without the patches it contributed (`oddity.image.detector`, calibration).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import faiss
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.checks import check_positive_ints
from oddity.core.errors import ConfigError, DataError, NotFittedError
from oddity.core.registry import register
from oddity.image.detector import ImageDetector, ImageStream
from oddity.image.features import (
    DEFAULT_INPUT_NORM, LEGACY_PARAMS, check_layers, check_pool_padding, concat_on_first_grid,
    feature_extractor,
)

PROJECTION_DIM = 128
BANK_CHUNK = 1024  # bank rows per distance block in the graph's exact search
WIDE_SEARCH = threading.Lock()  # one search of the bank's wider neighbours per fit (`_left_out_support`)


def greedy_coreset(features: torch.Tensor, size: int, seed: int, verbose: bool = False) -> np.ndarray:
    """Indices of `size` rows chosen by greedy k-center selection (each new row is the one
    farthest from those chosen so far), on a random projection of the rows.

    Parameters
    ----------
    features : torch.Tensor
        (n, C) rows.
    size : int
        Rows to keep.
    seed : int
        Seed of the projection and the first row.
    verbose : bool, default False
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        Indices of the kept rows, in selection order.
    """
    count, dim = features.shape
    if size >= count:
        return np.arange(count)
    generator = torch.Generator().manual_seed(seed)
    if dim > PROJECTION_DIM:
        projection = torch.randn(dim, PROJECTION_DIM, generator=generator) / PROJECTION_DIM**0.5
        features = features @ projection
    squared_norms = (features * features).sum(1)
    min_distance = torch.full((count,), float("inf"))
    distance = torch.empty(count)
    chosen = np.empty(size, dtype=np.int64)
    index = int(torch.randint(count, (1,), generator=generator))
    for step in tqdm(range(size), desc="coreset", unit="pt", disable=not verbose, mininterval=1.0):
        chosen[step] = index
        centre = features[index]
        torch.mv(features, centre, out=distance)
        distance.mul_(-2.0).add_(squared_norms).add_(centre.dot(centre))
        torch.minimum(min_distance, distance, out=min_distance)
        index = int(torch.argmax(min_distance))
    return chosen


def streamed_coreset(chunks: Iterable[torch.Tensor], ratio: float, max_size: int, seed: int,
                     verbose: bool = False, *,
                     positions: bool = False) -> torch.Tensor | tuple[torch.Tensor, np.ndarray]:
    """Rows kept by a composable greedy coreset: each chunk keeps round(ratio x its rows)
    (at most `max_size`), and a last greedy pass cuts the union to `max_size` if needed.

    Parameters
    ----------
    chunks : iterable of torch.Tensor
        (rows, C) patch chunks (`patch_chunks`).
    ratio : float
        Share of each chunk's rows kept.
    max_size : int
        Most rows kept in all.
    seed : int
        Seed of the selection.
    verbose : bool, default False
        Show progress bars.
    positions : bool, default False
        Also return where each kept row stood in the whole stream of rows.

    Returns
    -------
    torch.Tensor or tuple
        (kept, C) rows; with `positions`, (rows, (kept,) int64 positions in the stream).
    """
    kept, where, offset = [], [], 0
    for number, chunk in enumerate(chunks):
        size = min(max_size, max(1, round(ratio * len(chunk))))
        chosen = greedy_coreset(chunk, size, seed + number, verbose)
        kept.append(chunk[chosen])
        where.append(offset + chosen)
        offset += len(chunk)
        del chunk  # not held while the next chunk is gathered
    union, stream = torch.cat(kept), np.concatenate(where)
    if len(union) > max_size:
        chosen = greedy_coreset(union, max_size, seed, verbose)
        union, stream = union[chosen], stream[chosen]
    return (union, stream) if positions else union


def patch_chunks(patch_sets: Iterable[torch.Tensor], limit: int,
                 initial_rows: int = 1 << 16) -> Iterator[torch.Tensor]:
    """Consecutive (n, C) patch sets gathered into chunks of at most `limit` rows (a set larger
    than `limit` on its own makes one chunk). Each set is copied into a chunk buffer that
    doubles as needed and then dropped: keeping the sets and concatenating them would hold
    a chunk twice, and leaves the allocator holding about a chunk of small blocks after.

    Parameters
    ----------
    patch_sets : iterable of torch.Tensor
        (n, C) patch sets, one per image.
    limit : int
        Most rows per chunk.
    initial_rows : int, default 65536
        First size of the chunk buffer.

    Yields
    ------
    torch.Tensor
        (rows, C) chunks.
    """
    buffer: torch.Tensor | None = None
    rows = 0
    for patches in patch_sets:
        count = len(patches)
        if buffer is not None and rows + count > limit:
            yield buffer[:rows]
            buffer, rows = None, 0
        if buffer is None:
            buffer = patches.new_empty((max(count, min(limit, initial_rows)), patches.shape[1]))
        elif rows + count > len(buffer):
            grown = patches.new_empty((min(limit, max(2 * len(buffer), rows + count)), buffer.shape[1]))
            grown[:rows] = buffer[:rows]
            buffer = grown
        buffer[rows:rows + count] = patches
        rows += count
    if buffer is not None:
        yield buffer[:rows]


class BankSearch(nn.Module):
    """Exact nearest bank patch of each query row: (distances, indices). Per chunk of the bank
    one fused matrix product (`addmm`: a Gemm with bias in ONNX) gives each squared distance
    less the query's own squared norm, ||b||^2 - 2 q.b; the minimum is taken over chunks and
    the query's norm, constant per row, added once after it. Rows are centred on the bank's
    mean (smaller norms, less float32 cancellation). With an `index` (faiss, in process only)
    the index answers."""

    def __init__(self, bank: torch.Tensor, index: faiss.Index | None = None):
        super().__init__()
        centre = bank.mean(dim=0)
        centred = bank - centre
        self.register_buffer("centre", centre)
        self.register_buffer("bank", centred)
        self.register_buffer("bank_norms", centred.square().sum(dim=1))
        self.index = index

    def forward(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest memory-bank patch of each query.

        Parameters
        ----------
        queries : torch.Tensor
            (n, C) patch features.

        Returns
        -------
        tuple of torch.Tensor
            (distances (n,), bank indices (n,)).
        """
        if self.index is not None:
            faiss.omp_set_num_threads(torch.get_num_threads())  # this thread's setting (per thread)
            squared, nearest = self.index.search(np.ascontiguousarray(queries.numpy(), dtype=np.float32), 1)
            return torch.from_numpy(squared[:, 0]).clamp_min(0).sqrt(), torch.from_numpy(nearest[:, 0])
        queries = queries - self.centre
        best, nearest = None, None
        for start in range(0, self.bank.shape[0], BANK_CHUNK):
            stop = start + BANK_CHUNK
            partial = torch.addmm(self.bank_norms[start:stop], queries, self.bank[start:stop].T, alpha=-2.0)
            value, index = partial.min(dim=1)
            if best is None:
                best, nearest = value, index
            else:
                closer = value < best
                best = torch.where(closer, value, best)
                nearest = torch.where(closer, index + start, nearest)
        return (best + queries.square().sum(dim=1)).clamp_min(0).sqrt(), nearest


class PatchCoreScorer(nn.Module):
    """Patch distances to the memory bank; image score Eq. 7 (with `support`) or the largest."""

    def __init__(self, extractor: nn.Module, local_pool: int, pool_padding: str, search: BankSearch,
                 support: torch.Tensor | None):
        super().__init__()
        self.extractor, self.local_pool, self.search = extractor, local_pool, search
        self.pool_padding = pool_padding
        self.reweighted = support is not None
        if support is not None:
            self.register_buffer("support", support)

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
        embedding = concat_on_first_grid(self.extractor(x), self.local_pool, self.pool_padding)
        count, channels, height, width = embedding.shape
        queries = embedding.permute(0, 2, 3, 1).reshape(-1, channels)
        distances, nearest = self.search(queries)
        maps = distances.reshape(count, height, width)
        flat = distances.reshape(count, -1)
        largest, worst = flat.max(dim=1)
        if not self.reweighted:
            return largest, maps
        # Eq. 7: 1 - softmax weight of the worst patch's nearest bank patch among that bank
        # patch's nearest bank neighbours (itself first), times the worst distance.
        rows = torch.arange(count) * (height * width) + worst
        query = queries[rows] - self.search.centre
        neighbours = self.search.bank[self.support[nearest[rows]]]
        to_support = (neighbours - query[:, None, :]).square().sum(dim=2).sqrt()
        weight = 1.0 - torch.softmax(to_support, dim=1)[:, 0]
        return weight * largest, maps


@register("patchcore")
class PatchCore(ImageDetector):
    """Nearest-neighbour distance of test patches to a coreset of normal patches.

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        Pretrained feature extractor (`oddity.backbones.list_backbones`).
    layers : tuple of str, default ("stage3", "stage5")
        Backbone stages whose features are concatenated.
    local_pool : int, default 3
        Size of the neighbourhood each patch feature is averaged over.
    pool_padding : {"zeros", "inside"}, default "zeros"
        Positions outside the feature map in that average: zeros counted in it (the paper's
        and anomalib's `AvgPool2d`), or left out ("inside": the mean of the neighbours inside
        the map; models saved before this parameter existed use it).
    coreset_ratio : float, default 0.01
        Share of the training patches kept in the memory bank, in (0, 1].
    max_bank_size : int, default 16384
        Hard cap on the memory bank's size.
    reweight_neighbours : int, default 9
        Neighbours b of the paper's image-score re-weighting (Eq. 7).
    border_rings : int, default 4
        Border standardisation of maps (see `ImageDetector`); 0 restores Eq. 7.
    coreset_chunk : int, default 2**20
        Patches per chunk of the streamed coreset selection.
    per_image_contrast : bool, default True
        Standardise each image's intensities before the model (see `ImageDetector`; on by
        default here, docs/methods/patchcore.md says why).
    colour_balance : bool, default True
        Grey-world channel balance before that (see `ImageDetector`); models saved before
        this parameter existed load with False.
    normalise_after_resize : bool, default True
        Both of those applied to the model input after its resize, with the image's
        statistics (see `ImageDetector`); models saved before this parameter existed load
        with False (applied to the image before it).
    **common
        Parameters shared by every image detector (`ImageDetector`).

    Attributes
    ----------
    memory_bank_ : numpy.ndarray
        (M, C) the coreset of normal patch features.
    bank_sources_ : numpy.ndarray or None
        (M,) index of the training image (in fit order) each bank row came from, for
        leave-one-image-out calibration; set by `fit`, not saved (None after `load`).

    See Also
    --------
    docs/methods/patchcore.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> images = np.random.default_rng(0).uniform(0.4, 0.6, size=(10, 64, 64, 3))
    >>> detector = oddity.create("patchcore", image_size=64).fit(images, verbose=False)
    >>> probe = images[:2].copy()
    >>> probe[1, 20:40, 20:40] = 1.0                           # a bright square
    >>> result = detector.predict(probe, verbose=False)
    >>> result.maps[1].shape, bool(result.scores[1] > result.scores[0])
    ((64, 64), True)
    """

    legacy_params: ClassVar[dict[str, Any]] = {**LEGACY_PARAMS, "pool_padding": "inside",
                                               "normalise_after_resize": False}
    feature_fit = True
    image_out = True

    def __init__(self, *, backbone: str = "efficientnet_lite0", input_norm: str = DEFAULT_INPUT_NORM,
                 layers: tuple[str, ...] = ("stage3", "stage5"), local_pool: int = 3,
                 pool_padding: str = "zeros", coreset_ratio: float = 0.01, max_bank_size: int = 16_384,
                 reweight_neighbours: int = 9, border_rings: int = 4,
                 coreset_chunk: int = 1 << 20, per_image_contrast: bool = True,
                 colour_balance: bool = True, normalise_after_resize: bool = True, **common: Any):
        super().__init__(border_rings=border_rings, per_image_contrast=per_image_contrast,
                         colour_balance=colour_balance, normalise_after_resize=normalise_after_resize,
                         **common)
        self.backbone = backbone
        self.input_norm = input_norm
        self.layers = layers
        self.local_pool = local_pool
        self.pool_padding = pool_padding
        self.coreset_ratio = coreset_ratio
        self.max_bank_size = max_bank_size
        self.reweight_neighbours = reweight_neighbours
        self.coreset_chunk = coreset_chunk
        self.memory_bank_: np.ndarray | None = None
        self.bank_sources_: np.ndarray | None = None
        self._index: faiss.Index | None = None
        self._neighbours: torch.Tensor | None = None
        self._wide_neighbours: np.ndarray | None = None

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_layers(self.layers)
        check_pool_padding(self.pool_padding)
        if not 0.0 < self.coreset_ratio <= 1.0:
            raise ConfigError(f"coreset_ratio must lie in (0, 1], got {self.coreset_ratio}")
        check_positive_ints(max_bank_size=self.max_bank_size, coreset_chunk=self.coreset_chunk)

    def _patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(h*w, C) patch features of one image and its feature grid (h, w)."""
        features = feature_extractor(self.backbone, self.layers, self.input_norm)(x)
        embedding = concat_on_first_grid(features, self.local_pool, self.pool_padding)[0]
        grid = tuple(embedding.shape[-2:])
        return embedding.permute(1, 2, 0).reshape(-1, embedding.shape[0]), grid  # type: ignore[return-value]

    def fit_features(self, x: torch.Tensor) -> np.ndarray:
        """(h*w, C) patch features of one model input (see `ImageDetector.fit_features`).

        Parameters
        ----------
        x : torch.Tensor
            (1, 3, h, w) model input.

        Returns
        -------
        numpy.ndarray
            Its patch features.
        """
        return self._patches(x)[0].numpy()

    def _fit_features(self, features: Iterable[np.ndarray], images: ImageStream) -> None:
        inputs: list[tuple[int, int]] = []  # (training image, patch rows) of each model input

        def patch_sets() -> Iterator[torch.Tensor]:
            for image, patches in images.tag_sources(features):
                inputs.append((image, len(patches)))
                yield torch.from_numpy(patches)

        chunks = patch_chunks(patch_sets(), self.coreset_chunk)
        bank, positions = streamed_coreset(chunks, self.coreset_ratio, self.max_bank_size, self.seed,
                                           verbose=images.verbose, positions=True)
        self._build_index(bank.numpy())
        sources, rows = np.array(inputs, dtype=np.int64).reshape(-1, 2).T
        self.bank_sources_ = sources[np.searchsorted(np.cumsum(rows), positions, side="right")]

    def _build_index(self, bank: np.ndarray) -> None:
        self.memory_bank_ = np.ascontiguousarray(bank, dtype=np.float32)
        self._index = faiss.IndexFlatL2(self.memory_bank_.shape[1])
        self._index.add(self.memory_bank_)
        self._neighbours = self._wide_neighbours = self.bank_sources_ = None

    def _support(self) -> torch.Tensor | None:
        """(bank, k) indices of each bank patch's k = `reweight_neighbours` nearest bank
        patches (itself first), for Eq. 7; None when the image score does not use it (border
        standardisation on, or k < 2). Searched once per model and kept."""
        assert self._index is not None and self.memory_bank_ is not None
        k = min(self.reweight_neighbours, len(self.memory_bank_))
        if self.border_ is not None or k < 2:
            return None
        if self._neighbours is None or self._neighbours.shape[1] != k:
            _, support = self._index.search(self.memory_bank_, k)
            support[:, 0] = np.arange(len(support))  # itself, whichever duplicate faiss returned
            self._neighbours = torch.from_numpy(support)
        return self._neighbours

    def _scorer(self, portable: bool) -> PatchCoreScorer:
        assert self._index is not None and self.memory_bank_ is not None
        search = BankSearch(torch.from_numpy(self.memory_bank_), None if portable else self._index)
        return PatchCoreScorer(feature_extractor(self.backbone, self.layers, self.input_norm), self.local_pool,
                               self.pool_padding, search, self._support())

    def _left_out_scorer(self, image: int) -> PatchCoreScorer:
        """The scorer of the memory bank without the rows training image `image` gave it
        (exact search; Eq. 7's support neighbours found within that smaller bank)."""
        if self.bank_sources_ is None or self.memory_bank_ is None:
            raise NotFittedError("leave-one-image-out scoring needs the bank's sources, known right after fit only")
        keep = self.bank_sources_ != image
        if not keep.any():
            raise DataError(f"every memory-bank patch came from training image {image}, so nothing is left "
                            "to score it against; fit with calibration='holdout'")
        bank = np.ascontiguousarray(self.memory_bank_[keep])
        index = faiss.IndexFlatL2(bank.shape[1])
        index.add(bank)
        return PatchCoreScorer(feature_extractor(self.backbone, self.layers, self.input_norm), self.local_pool,
                               self.pool_padding, BankSearch(torch.from_numpy(bank), index),
                               self._left_out_support(keep, index))

    def _left_out_support(self, keep: np.ndarray, index: faiss.Index) -> torch.Tensor | None:
        """`_support` of the bank rows in `keep` among themselves: each row's nearest rows of
        the whole bank (twice as many as needed, searched once per fit) with the dropped ones
        left out, searched again in the smaller bank (`index`) where too few remain. None where
        the fitted model's image score will not use it (border standardisation, k < 2)."""
        count = int(keep.sum())
        k = min(self.reweight_neighbours, count)
        if (self.border_rings and self.localises) or k < 2:
            return None
        assert self._index is not None and self.memory_bank_ is not None
        with WIDE_SEARCH:  # left-out scorers are built on several threads at once
            if self._wide_neighbours is None or self._wide_neighbours.shape[1] < min(2 * k, len(keep)):
                _, self._wide_neighbours = self._index.search(self.memory_bank_, min(2 * k, len(keep)))
        candidates = self._wide_neighbours[keep]
        allowed = keep[candidates]
        first = np.argsort(~allowed, axis=1, kind="stable")[:, :k]  # allowed ones, nearest first
        support = (np.cumsum(keep) - 1)[np.take_along_axis(candidates, first, axis=1)]
        short = np.flatnonzero(allowed.sum(axis=1) < k)
        if len(short):
            _, support[short] = index.search(np.ascontiguousarray(self.memory_bank_[keep][short]), k)
        support[:, 0] = np.arange(count)  # itself, whichever duplicate faiss returned
        return torch.from_numpy(support)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.memory_bank_ is not None
        return values, {**arrays, "memory_bank": self.memory_bank_}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        if "memory_bank" not in arrays or arrays["memory_bank"].ndim != 2:
            raise DataError("model file has no 2-D 'memory_bank' array")
        self._build_index(arrays["memory_bank"])
