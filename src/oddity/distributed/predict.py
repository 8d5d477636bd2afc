"""Scoring and predicting on a Dask cluster.

Inputs are cut into partitions of `partition_size` images (a multiple of the pipeline's batch
size, so batches are formed as in a local run). The pipeline computes every engine call on one
thread, in process and on a worker alike, so the scores and maps are bit for bit those of a
local run (for inputs of one model input shape, e.g. images of one size; where shapes vary, a
partition boundary can group a batch differently and they agree to float rounding). Each
partition is one task: a worker loads the model once (`oddity.distributed.cluster.worker_model`)
and scores the partition with the model's own `score` (the shared pipeline:
`oddity.image.pipeline`).

`score_on_cluster` and `predict_on_cluster` bring the scores and maps back to the client.
`predict_to_folder` writes a prediction folder (`oddity.image.predictions`) the way
`oddity predict` does locally, but each worker decides its partition with the model's thresholds
and writes its images' overlays and masks itself, into the staging folder of the output
(`oddity.core.persistence.staged_directory`: nothing is visible until the whole run has
succeeded); only scores, labels and file names travel back, and the client writes scores.csv in
input order. The overlay colours come from the model (`map_range_`), so a worker can colour an
image alone and the files equal a local run's; a model saved without that range has its maps
gathered and written on the client, as one shared scale needs every map.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oddity.core.errors import ConfigError, DataError
from oddity.core.persistence import staged_directory
from oddity.core.results import ImagePrediction, ImageScores
from oddity.distributed.cluster import gather_in_order, partitions, worker_model
from oddity.image.pipeline import BATCH_SIZE, decide
from oddity.image.predictions import (
    output_names,
    overlay_range,
    write_image_outputs,
    write_scores_csv,
)

PARTITION_SIZE = 64  # images per task: a multiple of BATCH_SIZE


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
        The partition's scores (none when `skip_bad` skipped every image of it).
    """
    model = worker_model(path)
    try:
        if hasattr(model, "skip_bad"):
            model.skip_bad = skip_bad
            return model.score(samples, verbose=False, batch_size=batch_size)
        return model.score(samples, verbose=False, batch_size=batch_size, skip_bad=skip_bad)
    except DataError:
        if not skip_bad:  # under skip_bad the only DataError left is "none could be read"
            raise
        return ImageScores(scores=np.zeros(0), maps=[] if model.localises else None, paths=[])


def run_partition(path: str, samples: Sequence, batch_size: int, skip_bad: bool) -> ImageScores:
    """The scoring task a worker runs; looks `score_partition` up at call time.

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


def decide_with(model: Any, result: ImageScores) -> ImagePrediction:
    """Labels and masks of `result` from the thresholds of `model` (a detector or an export).

    Parameters
    ----------
    model : Detector or ExportedModel
        The model that scored `result`.
    result : ImageScores
        Scores and maps.

    Returns
    -------
    ImagePrediction
        The decisions.
    """
    if hasattr(model, "decision_thresholds"):
        image, pixel = model.decision_thresholds(result)
    else:
        image, pixel = model.threshold, model.pixel_threshold
    return decide(result, image, pixel)


def checked_model(path: str, partition_size: int, batch_size: int) -> Any:
    """The model at `path`, loaded here, after checking that it can be scored in partitions.

    Parameters
    ----------
    path : str
        The model (absolute path).
    partition_size, batch_size : int
        Images per task, model inputs per engine call.

    Returns
    -------
    Detector or ExportedModel
        The model.

    Raises
    ------
    ConfigError
        If the model scores a batch against itself (MuSc), or `partition_size` is not a
        positive multiple of `batch_size`.
    """
    model = worker_model(path)
    if getattr(model, "not_a_graph", None):
        raise ConfigError(f"{model.name} cannot be partitioned: {model.not_a_graph}")
    if partition_size < 1 or batch_size < 1 or partition_size % batch_size:
        raise ConfigError(f"partition_size ({partition_size}) must be a positive multiple of the batch size "
                          f"({batch_size}), so that partitions hold the batches of a local run")
    return model


def score_on_cluster(client: Any, path: str, samples: Sequence, *, partition_size: int = PARTITION_SIZE,
                     batch_size: int = BATCH_SIZE, skip_bad: bool = False, verbose: bool = True,
                     desc: str = "score (partitions)") -> ImageScores:
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
    desc : str
        Its label.

    Returns
    -------
    ImageScores
        As the model's own `score` gives them, in input order.

    Raises
    ------
    ConfigError
        If the model scores a batch against itself, or `partition_size` is not a positive
        multiple of `batch_size`.
    DataError
        If there are no samples, or an unreadable one without `skip_bad`.
    """
    path = os.path.abspath(path)
    checked_model(path, partition_size, batch_size)
    if not samples:
        raise DataError("no images given")
    parts = partitions(samples, partition_size)
    count = len(parts)  # (Client.map takes batch_size itself: pass ours positionally)
    futures = client.map(run_partition, [path] * count, parts, [batch_size] * count, [skip_bad] * count,
                         pure=False)
    done = gather_in_order(futures, desc, verbose)
    if not any(len(r.paths) for r in done):
        raise DataError("none of the given images could be read")
    maps = None if done[0].maps is None else [m for r in done for m in r.maps]
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
    options.setdefault("desc", "predict (partitions)")
    result = score_on_cluster(client, path, samples, **options)
    return decide_with(worker_model(os.path.abspath(path)), result)


def write_partition(path: str, samples: Sequence, names: Sequence[str], stage: str, batch_size: int,
                    skip_bad: bool) -> tuple[ImagePrediction, list[tuple[str, str]], list[int]]:
    """Score and decide one partition and write its overlays and masks under `stage` (runs on
    a worker).

    Parameters
    ----------
    path : str
        The model.
    samples : sequence
        The partition's samples.
    names : sequence of str
        The output name of each sample (`oddity.image.predictions.output_names` of all inputs).
    stage : str
        The staged prediction folder.
    batch_size : int
        Model inputs run at once.
    skip_bad : bool
        Skip unreadable images.

    Returns
    -------
    prediction : ImagePrediction
        Scores, labels and thresholds of the readable images, without maps or masks.
    files : list of tuple of str
        (overlay, mask) paths per readable image, relative to `stage` ("" when not written).
    read : list of int
        The position in `samples` of each readable image.
    """
    model = worker_model(path)
    prediction = decide_with(model, score_partition(path, samples, batch_size, skip_bad))
    read, position = [], 0
    for index, sample in enumerate(samples):  # unreadable (skipped) samples are missing from paths
        if position < len(prediction.paths) and prediction.paths[position] == sample.name:
            read.append(index)
            position += 1
    files = [("", "")] * len(read)
    if prediction.maps is not None and prediction.masks is not None:
        value_range = overlay_range(model.map_range_, prediction)
        files = [write_image_outputs(Path(stage), names[index], image, score_map, mask, value_range)
                 for index, image, score_map, mask in zip(read, prediction.paths, prediction.maps,
                                                          prediction.masks)]
    summary = ImagePrediction(scores=prediction.scores, maps=None, paths=prediction.paths,
                              labels=prediction.labels, masks=None, threshold=prediction.threshold,
                              pixel_threshold=prediction.pixel_threshold)
    return summary, files, read


def run_write_partition(path: str, samples: Sequence, names: Sequence[str], stage: str, batch_size: int,
                        skip_bad: bool) -> tuple[ImagePrediction, list[tuple[str, str]], list[int]]:
    """The writing task a worker runs; looks `write_partition` up at call time.

    Parameters
    ----------
    path, samples, names, stage, batch_size, skip_bad
        As `write_partition` takes them.

    Returns
    -------
    tuple
        As `write_partition` returns it.
    """
    return write_partition(path, samples, names, stage, batch_size, skip_bad)


def rename_outputs(stage: Path, files: list[tuple[str, str]], old: Sequence[str], new: Sequence[str]) -> list[tuple[str, str]]:
    """Rename written overlays and masks from their `old` output names to `new` ones (needed
    when skipped images change the names, which a local run derives from the readable images),
    through temporary names so that no rename overwrites another image's file.

    Parameters
    ----------
    stage : pathlib.Path
        The staged prediction folder.
    files : list of tuple of str
        (overlay, mask) relative paths per image, under the `old` names.
    old, new : sequence of str
        Output names per image.

    Returns
    -------
    list of tuple of str
        The (overlay, mask) relative paths under the `new` names.
    """
    moves = [(f"{kind}/{a}{suffix}", f"{kind}/{b}{suffix}") for (a, b) in zip(old, new) if a != b
             for kind, suffix in (("overlays", ".png"), ("masks", "_mask.png"))]
    for source, target in moves:
        os.replace(stage / source, stage / f"{target}.renaming")
    for _, target in moves:
        os.replace(stage / f"{target}.renaming", stage / target)
    return [(f"overlays/{name}.png", f"masks/{name}_mask.png") if overlay else ("", "")
            for name, (overlay, _) in zip(new, files)]


def predict_to_folder(client: Any, path: str, samples: Sequence, out: str | os.PathLike, *,
                      partition_size: int = PARTITION_SIZE, batch_size: int = BATCH_SIZE,
                      skip_bad: bool = False, verbose: bool = True) -> ImagePrediction:
    """Predict `samples` on the cluster and write the prediction folder `out` (scores.csv,
    overlays/, masks/), each worker writing its own images' files (see the module docstring).

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    path : str
        A .oddity model or an export, readable by every worker.
    samples : sequence
        Image samples.
    out : str or os.PathLike
        The prediction folder (created or replaced whole); every worker must be able to write
        beside it, at the same path.
    partition_size, batch_size : int
        Images per task, model inputs per engine call.
    skip_bad : bool
        Skip unreadable files with a warning instead of failing.
    verbose : bool
        A progress bar over partitions.

    Returns
    -------
    ImagePrediction
        Scores, labels and thresholds in input order; maps and masks only when the model has
        no `map_range_` (they were gathered to colour the overlays on one shared scale).

    Raises
    ------
    ConfigError
        If the model scores a batch against itself, or the partition size is invalid.
    DataError
        If there are no samples, none can be read, or an unreadable one is met without
        `skip_bad`.
    OutputError
        If `out` may not be written.
    """
    from oddity.image.predictions import write_predictions

    path = os.path.abspath(path)
    model = checked_model(path, partition_size, batch_size)
    if model.localises and model.map_range_ is None:  # a model saved before it kept the range
        prediction = predict_on_cluster(client, path, samples, partition_size=partition_size,
                                        batch_size=batch_size, skip_bad=skip_bad, verbose=verbose)
        write_predictions(out, prediction)
        return prediction
    if not samples:
        raise DataError("no images given")
    names = output_names([sample.name for sample in samples])
    parts = partitions(samples, partition_size)
    name_parts = partitions(names, partition_size)
    with staged_directory(out) as stage:
        count = len(parts)
        futures = client.map(run_write_partition, [path] * count, parts, name_parts, [str(stage)] * count,
                             [batch_size] * count, [skip_bad] * count, pure=False)
        done = gather_in_order(futures, "predict (partitions)", verbose)
        for debris in stage.glob("*/.*.tmp"):  # files half-written by a worker that died
            debris.unlink()
        read = [start + index for start, (_, _, positions) in zip(range(0, len(samples), partition_size), done)
                for index in positions]
        if not read:
            raise DataError("none of the given images could be read")
        first = done[0][0]
        prediction = ImagePrediction(scores=np.concatenate([p.scores for p, _, _ in done]), maps=None,
                                     paths=[name for p, _, _ in done for name in p.paths],
                                     labels=np.concatenate([p.labels for p, _, _ in done]), masks=None,
                                     threshold=first.threshold, pixel_threshold=first.pixel_threshold)
        files = [item for _, written, _ in done for item in written]
        if len(read) < len(samples):
            files = rename_outputs(stage, files, [names[i] for i in read], output_names(prediction.paths))
        write_scores_csv(stage, prediction, files)
    return prediction
