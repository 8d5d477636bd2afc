"""Fitting on a Dask cluster: training features extracted on the workers, learning here.

A detector that fits from features of each model input alone (`feature_fit`: PatchCore,
PaDiM, Gaussian-AD; see `oddity.image.detector`) has its training images cut into partitions;
each worker builds the detector from its parameters once (the backbone is loaded once per
worker process, `oddity.image.features.feature_extractor`), reads its partition's images and
returns their features. The client takes them in input order, a few partitions ahead of the
learning step (so memory holds a few partitions, not every feature), and runs the learning
step itself: the memory bank and its coreset, or the Gaussians, need every image's features at
once and stay central, as do threshold calibration and the border statistics (they score a
tenth of the images with the fitted model). A detector that trains a network on its images
(SimpleNet, EfficientAD, DRAEM) is refused. Photometric jitter (`fit_jitter`) is drawn as in
one pass over all images: each partition skips the draws of the images before it (an image
skipped as unreadable shifts the draws of the partitions after it).
"""
from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from oddity.core.errors import ConfigError
from oddity.distributed.cluster import partitions

if TYPE_CHECKING:  # torch is imported only where features are computed (on the workers)
    from oddity.image.detector import ImageDetector, ImageInput

FIT_PARTITION_SIZE = 16  # training images per task
_DETECTORS: dict[str, ImageDetector] = {}  # per worker process: configuration -> detector


def worker_detector(name: str, params: dict[str, Any], input_shape: tuple[int, int] | None) -> ImageDetector:
    """An unfitted detector of this configuration, built once per process.

    Parameters
    ----------
    name : str
        Registered detector name.
    params : dict
        Its parameters.
    input_shape : tuple of int or None
        Its fixed model input shape, for detectors that need one.

    Returns
    -------
    ImageDetector
        The detector (its backbone shared by the process).
    """
    import oddity

    key = repr((name, sorted(params.items()), input_shape))
    if key not in _DETECTORS:
        detector = oddity.create(name, **params)
        detector.input_shape_ = input_shape
        _DETECTORS[key] = detector
    return _DETECTORS[key]


def extract_features(name: str, params: dict[str, Any], input_shape: tuple[int, int] | None,
                     samples: list, start: int) -> tuple[list[Any], list[str]]:
    """The training features of one partition (runs on a worker).

    Parameters
    ----------
    name, params, input_shape
        The detector's configuration (`worker_detector`).
    samples : list
        The partition's training samples.
    start : int
        Training images before this partition (for the jitter draws).

    Returns
    -------
    features : list
        `fit_features` of every model input of the partition, in order.
    skipped : list of str
        Files skipped as unreadable (under `skip_bad`).
    """
    import torch

    from oddity.image.detector import ImageStream

    detector = worker_detector(name, params, input_shape)
    detector.skipped_ = set()
    with torch.inference_mode():
        features = [detector.fit_features(x) for x in
                    ImageStream(detector, samples, False, "features", detector.fit_jitter, start)]
    return features, sorted(detector.skipped_)


def writable(features: Any) -> Any:
    """`features` (an array or a list of arrays) as writable arrays (received ones are
    read-only buffers, which torch warns about).

    Parameters
    ----------
    features : numpy.ndarray or list of numpy.ndarray
        What `fit_features` returned.

    Returns
    -------
    numpy.ndarray or list of numpy.ndarray
        The same values, writable.
    """
    if isinstance(features, list):
        return [np.require(f, requirements="W") for f in features]
    return np.require(features, requirements="W")


def cluster_features(client: Any, partition_size: int, detector: ImageDetector, samples: list,
                     verbose: bool) -> Iterator[Any]:
    """The training features of `samples`, computed on the cluster, in input order; the
    `feature_source` of a detector fitted by `fit_on_cluster`.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    partition_size : int
        Training images per task.
    detector : ImageDetector
        The detector being fitted (unreadable files are added to its `skipped_`).
    samples : list
        The training samples.
    verbose : bool
        A progress bar over partitions.

    Yields
    ------
    numpy.ndarray or list of numpy.ndarray
        `fit_features` of each model input, in order.
    """
    parts = partitions(samples, partition_size)
    config = (detector.name, detector.get_params(), detector.input_shape_)
    ahead = 2 * max(1, len(client.scheduler_info()["workers"]))
    pending: deque[Any] = deque()
    submitted = 0

    def submit() -> None:
        nonlocal submitted
        pending.append(client.submit(extract_features, *config, parts[submitted], submitted * partition_size,
                                     pure=False))
        submitted += 1

    while submitted < min(ahead, len(parts)):
        submit()
    with tqdm(total=len(parts), desc=f"fit {detector.name} (partitions)", unit="part", disable=not verbose) as bar:
        while pending:
            features, skipped = pending.popleft().result()
            if submitted < len(parts):
                submit()
            for name in skipped:
                warnings.warn(f"skipped: {name} could not be read", stacklevel=2)
                if detector.skipped_ is not None:
                    detector.skipped_.add(name)
            bar.update(1)
            yield from (writable(f) for f in features)


def fit_on_cluster(client: Any, detector: ImageDetector, data: ImageInput, *,
                   partition_size: int = FIT_PARTITION_SIZE, verbose: bool = True) -> ImageDetector:
    """Fit `detector` with its training features extracted on the cluster (see the module
    docstring); the fitted detector equals a local fit (to float rounding, see docs/deploy.md).

    Parameters
    ----------
    client : distributed.Client
        The cluster; its workers must see the training images at the same paths.
    detector : ImageDetector
        An unfitted detector with `feature_fit`.
    data : str, path, list or array
        Training images, as `ImageDetector.fit` takes them.
    partition_size : int, default FIT_PARTITION_SIZE
        Training images per task.
    verbose : bool, default True
        Progress bars.

    Returns
    -------
    ImageDetector
        `detector`, fitted.

    Raises
    ------
    ConfigError
        If the detector trains on its images rather than fitting from per-image features, or
        `partition_size` is not positive.
    DataError
        If the training images cannot be read.
    """
    if not detector.feature_fit:
        import oddity
        from oddity.core.registry import get_detector_class

        able = [n for n in oddity.list_detectors() if getattr(get_detector_class(n), "feature_fit", False)]
        raise ConfigError(f"{detector.name} trains a network on its images and cannot fit on Dask (only "
                          f"detectors that learn from per-image features can: {', '.join(able)}); fit it "
                          "without --dask")
    if partition_size < 1:
        raise ConfigError(f"partition_size must be positive, got {partition_size}")
    detector.feature_source = partial(cluster_features, client, partition_size)
    try:
        detector.fit(data, verbose=verbose)
    finally:
        detector.feature_source = None
    return detector
