"""Scoring on a Dask cluster (`dask.distributed`): the same pipeline, partitioned.

Inputs are cut into partitions of `partition_size` images (a multiple of the pipeline's batch
size, so batches are formed as in a local run). The pipeline computes every engine call on one
thread, in process and on a worker alike, so the scores and maps are bit for bit those of a
local run (for inputs of one model input shape, e.g. images of one size; where shapes vary, a
partition boundary can group a batch differently and they agree to float rounding). Each partition is
one task: a worker loads the model once (kept per worker process, keyed by path) and scores
the partition with the model's own `score` (the shared pipeline: `oddity.image.pipeline`);
results are gathered in input order and decided with the model's thresholds on the client.
When a worker dies, the scheduler runs its partitions again elsewhere (Dask's own recovery;
`distributed.scheduler.allowed-failures` bounds the retries). `local:N` starts a LocalCluster
of N single-threaded worker processes; `tcp://HOST:PORT` joins an existing scheduler, whose
workers must see the model and the images at the same paths.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from oddity.core.errors import ConfigError, DataError
from oddity.core.results import ImagePrediction, ImageScores
from oddity.image.pipeline import BATCH_SIZE, decide

PARTITION_SIZE = 8 * BATCH_SIZE
_MODELS: dict[str, Any] = {}  # per worker process: model path -> loaded model


@contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A `distributed.Client` for `local:N` (a LocalCluster of N worker processes, one thread
    each, closed afterwards) or `tcp://HOST:PORT` (an existing scheduler).

    Parameters
    ----------
    address : str
        ``local:N`` or ``tcp://HOST:PORT``.

    Yields
    ------
    distributed.Client
        The client.

    Raises
    ------
    ConfigError
        If the address is neither form.
    """
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        count = address[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--dask {address!r}: expected local:N with N >= 1 workers, e.g. local:2")
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        with LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True,
                          dashboard_address=None, env=env) as cluster, Client(cluster) as client:
            yield client
    elif address.startswith("tcp://"):
        with Client(address) as client:
            yield client
    else:
        raise ConfigError(f"--dask {address!r}: expected local:N or tcp://HOST:PORT")


def worker_model(path: str) -> Any:
    """The model at `path` (a .oddity file or an export), loaded once per process.

    Parameters
    ----------
    path : str
        A .oddity file or an export.

    Returns
    -------
    Detector or ExportedModel
        The model.
    """
    if path not in _MODELS:
        from oddity.export.engine import ExportedModel, is_export

        if is_export(path):
            _MODELS[path] = ExportedModel(path)
        else:
            import oddity

            _MODELS[path] = oddity.load(path)
    return _MODELS[path]


def preload(path: str) -> None:
    """Load the model at `path` into this process's cache (runs on a worker).

    Parameters
    ----------
    path : str
        The model file, as the worker sees it.
    """
    worker_model(path)


def load_on_workers(client: Any, path: str) -> None:
    """Load the model at `path` on every worker of `client` now, in parallel, so that a run
    starts scoring at once on all of them (otherwise each loads it with its first partition).

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    path : str
        A .oddity model file or an export folder / .onnx file, readable by every worker.
    """
    client.run(preload, os.path.abspath(path))


def score_partition(path: str, samples: Sequence, batch_size: int, skip_bad: bool) -> ImageScores:
    """Score one partition with the model at `path` (runs on a worker).

    Parameters
    ----------
    path : str
        The model.
    samples : sequence
        The partition's samples.
    batch_size : int
        Model inputs run at once.
    skip_bad : bool
        Skip unreadable images.

    Returns
    -------
    ImageScores
        The partition's scores.
    """
    model = worker_model(path)
    if hasattr(model, "skip_bad"):
        model.skip_bad = skip_bad
        return model.score(samples, verbose=False, batch_size=batch_size)
    return model.score(samples, verbose=False, batch_size=batch_size, skip_bad=skip_bad)


def run_partition(path: str, samples: Sequence, batch_size: int, skip_bad: bool) -> ImageScores:
    """The task a worker runs; looks `score_partition` up at call time.

    Parameters
    ----------
    path : str
        The model.
    samples : sequence
        The partition's samples.
    batch_size : int
        Model inputs run at once.
    skip_bad : bool
        Skip unreadable images.

    Returns
    -------
    ImageScores
        The partition's scores.
    """
    return score_partition(path, samples, batch_size, skip_bad)


def score_on_cluster(client: Any, path: str, samples: Sequence, *, partition_size: int = PARTITION_SIZE,
                     batch_size: int = BATCH_SIZE, skip_bad: bool = False, verbose: bool = True) -> ImageScores:
    """Scores and maps of `samples` by the model at `path`, partitioned over the cluster.

    Parameters
    ----------
    client : distributed.Client
        The cluster to run on.
    path : str
        A .oddity model file or an export folder / .onnx file, readable by every worker.
    samples : sequence
        Image samples (`oddity.image.data`), in the order the results come back in.
    partition_size, batch_size : int
        Images per task, model inputs per engine call.
    skip_bad : bool
        Skip unreadable files with a warning instead of failing.
    verbose : bool
        A progress bar over partitions.

    Returns
    -------
    ImageScores
        As the model's own `score` gives them, in input order.

    Raises
    ------
    ConfigError
        If `partition_size` is not a positive multiple of `batch_size`.
    DataError
        If there are no samples, or an unreadable one without `skip_bad`.
    """
    from distributed import as_completed

    if partition_size < 1 or batch_size < 1 or partition_size % batch_size:
        raise ConfigError(f"partition_size ({partition_size}) must be a positive multiple of the batch size "
                          f"({batch_size}), so that partitions hold the batches of a local run")
    if not samples:
        raise DataError("no images given")
    path = os.path.abspath(path)
    parts = [list(samples[i:i + partition_size]) for i in range(0, len(samples), partition_size)]
    count = len(parts)  # (Client.map takes batch_size itself: pass ours positionally)
    futures = client.map(run_partition, [path] * count, parts, [batch_size] * count, [skip_bad] * count,
                         pure=False)
    order = {future.key: index for index, future in enumerate(futures)}
    results: list[ImageScores | None] = [None] * len(parts)
    with tqdm(total=len(parts), desc="predict (partitions)", unit="part", disable=not verbose) as bar:
        for future in as_completed(futures):
            results[order[future.key]] = future.result()
            bar.update(1)
    done = [r for r in results if r is not None]
    maps = None if done[0].maps is None else [m for r in done for m in r.maps]  # type: ignore[union-attr]
    return ImageScores(scores=np.concatenate([r.scores for r in done]), maps=maps,
                       paths=[p for r in done for p in r.paths])


def predict_on_cluster(client: Any, path: str, samples: Sequence, **options: Any) -> ImagePrediction:
    """`score_on_cluster` plus labels and masks from the model's thresholds (decided here).
    A model that scores a batch against itself (MuSc) is refused: partitions would change it.

    Parameters
    ----------
    client : distributed.Client
        A client (`dask_client`).
    path : str
        A .oddity model or an export, readable by every worker.
    samples : sequence
        Image samples.
    **options
        As `score_on_cluster` takes them (partition_size, batch_size, skip_bad, verbose).

    Returns
    -------
    ImagePrediction
        Scores, maps, labels and masks, in input order.

    Raises
    ------
    ConfigError
        If the model scores a batch against itself.
    """
    model = worker_model(os.path.abspath(path))
    if getattr(model, "not_a_graph", None):
        raise ConfigError(f"{model.name} cannot be partitioned: {model.not_a_graph}")
    result = score_on_cluster(client, path, samples, **options)
    if hasattr(model, "decision_thresholds"):
        image, pixel = model.decision_thresholds(result)
    else:
        image, pixel = model.threshold, model.pixel_threshold
    return decide(result, image, pixel)
