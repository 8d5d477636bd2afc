"""The image scoring pipeline: samples -> model inputs -> batches -> kernel -> maps -> result.

One implementation for every engine. An engine is any callable that takes a float32 batch
(N, 3, h, w) of model inputs and returns (scores (N,), patch maps (N, h', w')) as numpy arrays:
the in-process torch kernel (`oddity.image.kernel.run_kernel`) or an onnxruntime session
(`oddity.export.engine`). Decoding and preprocessing run in a thread pool ahead of the engine
(PIL and numpy release the GIL), batches group consecutive inputs of one shape, and each
image's parts are put back together by its `ImageSpec` as soon as they are scored.

Parallelism is across batches, not inside them: an engine computes each call on the calling
thread alone, and `threads` calls run at once (`engine_threads`: the OMP_NUM_THREADS setting,
else the CPUs this process may use). A batch's scores then depend only on the batch, never on
the number of cores or threads, so a Dask worker (one thread) gives bit for bit the scores of
an in-process run on any machine with the same instruction set, and a small network keeps
both cores busy without the synchronisation cost of splitting every layer across threads.
This module imports no torch.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from oddity.core.errors import DataError
from oddity.core.results import ImagePrediction, ImageScores
from oddity.core.thresholds import Threshold
from oddity.image.data import load_all
from oddity.image.spec import ImageSpec

Engine = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
BATCH_SIZE = 2  # model inputs per engine call (small: a batch's activations stay in cache)


def engine_threads() -> int:
    """Engine calls run at once by default: OMP_NUM_THREADS when set (a Dask worker sets 1),
    else the number of CPUs this process may run on."""
    setting = os.environ.get("OMP_NUM_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Pending:
    """An image whose parts are being scored; `result` is set once all of them are."""

    def __init__(self, name: str, hw: tuple[int, int], parts: int):
        self.name, self.hw = name, hw
        self.scores: list[float | None] = [None] * parts
        self.maps: list[np.ndarray | None] = [None] * parts
        self.missing = parts
        self.result: tuple[float, np.ndarray | None] | None = None


def score_samples(spec: ImageSpec, engine: Engine, samples: Sequence, *, batch_size: int = BATCH_SIZE,
                  skip_bad: bool = False, skipped: set[str] | None = None, verbose: bool = True,
                  desc: str = "score", threads: int | None = None) -> ImageScores:
    """Score image samples (`oddity.image.data` samples) with `engine`.

    Parameters
    ----------
    spec : ImageSpec
        Pre- and post-processing of the model.
    engine : callable
        (N, 3, h, w) float32 batch -> (scores (N,), patch maps (N, h', w')), computed on the
        calling thread only, safe to call from several threads at once.
    samples : sequence
        Objects with `.load()` (RGB float (H, W, 3)) and `.name`.
    batch_size : int
        Largest number of model inputs per engine call.
    skip_bad, skipped : bool, set of str
        Skip unreadable files with a warning (their names added to `skipped`) instead of failing.
    verbose : bool
        Show a progress bar.
    desc : str
        Label of the progress bar.
    threads : int, optional
        Engine calls run at once (default `engine_threads()`).

    Returns
    -------
    ImageScores
        One score per readable image, in input order; maps at each image's size (None when
        the spec does not localise).

    Raises
    ------
    DataError
        If no image could be read, or an unreadable file is met without `skip_bad`.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be positive, got {batch_size}")
    threads = threads or engine_threads()

    def prepare(sample) -> tuple[tuple[int, int], list[np.ndarray]]:
        pixels = sample.load()
        return pixels.shape[:2], spec.prepare(pixels)

    done: list[_Pending] = []
    batch: list[tuple[_Pending, int, np.ndarray]] = []
    running: deque[tuple[list[tuple[_Pending, int]], Future]] = deque()
    bar = tqdm(total=len(samples), desc=desc, unit="img", disable=not verbose)

    def collect() -> None:
        """Take the oldest batch's results; finish the images it completes."""
        entries, future = running.popleft()
        scores, maps = future.result()
        for (item, part), score, patch_map in zip(entries, scores, maps):
            item.scores[part], item.maps[part] = float(score), patch_map
            item.missing -= 1
            if item.missing == 0:
                item.result = spec.finish(item.hw, item.scores, item.maps)  # type: ignore[arg-type]
                item.maps = []
                bar.update(1)

    def submit(pool: ThreadPoolExecutor) -> None:
        running.append(([(item, part) for item, part, _ in batch],
                        pool.submit(engine, np.stack([x for _, _, x in batch]))))
        batch.clear()
        while len(running) > threads:
            collect()

    with bar, ThreadPoolExecutor(threads, thread_name_prefix="oddity-engine") as pool:
        for sample, (hw, inputs) in load_all(samples, skip_bad, skipped, load=prepare,
                                             depth=(threads + 1) * batch_size + 2):
            item = _Pending(sample.name, hw, len(inputs))
            done.append(item)
            for part, x in enumerate(inputs):
                if batch and (len(batch) >= batch_size or batch[0][2].shape != x.shape):
                    submit(pool)
                batch.append((item, part, x))
        if batch:
            submit(pool)
        while running:
            collect()
    if not done:
        raise DataError("none of the given images could be read")
    finished = [item.result for item in done]
    return ImageScores(scores=np.asarray([s for s, _ in finished], dtype=np.float64),  # type: ignore[misc]
                       maps=[m for _, m in finished] if spec.localises else None,  # type: ignore[misc]
                       paths=[item.name for item in done])


def decide(result: ImageScores, image: Threshold, pixel: Threshold | None) -> ImagePrediction:
    """Labels (score above the image threshold) and masks (map above the pixel threshold) of
    scored images; `masks` is None when there are no maps.

    Parameters
    ----------
    result : ImageScores
        Scores and maps.
    image : Threshold
        The image threshold.
    pixel : Threshold or None
        The pixel threshold.

    Returns
    -------
    ImagePrediction
        The decisions.
    """
    masks, pixel_threshold = None, float("nan")
    if result.maps is not None:
        if pixel is None:
            raise DataError("the model localises but has no pixel threshold; calibrate or set one")
        pixel_threshold = pixel.value
        masks = [m > pixel_threshold for m in result.maps]
    return ImagePrediction(scores=result.scores, maps=result.maps, paths=result.paths,
                           labels=result.scores > image.value, masks=masks,
                           threshold=image.value, pixel_threshold=pixel_threshold)
