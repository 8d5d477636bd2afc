"""The image scoring pipeline: samples -> model inputs -> batches -> kernel -> maps -> result.

One implementation for every engine. An engine is any callable that takes a float32 batch
(N, 3, h, w) of model inputs and returns (scores (N,), patch maps (N, h', w')) as numpy arrays:
the in-process torch kernel (`oddity.image.kernel.run_kernel`) or an onnxruntime session
(`oddity.export.engine`). Decoding and preprocessing run in a thread pool ahead of the engine
(PIL and numpy release the GIL), batches group consecutive inputs of one shape, and each
image's parts are put back together by its `ImageSpec`. This module imports no torch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from oddity.core.errors import DataError
from oddity.core.results import ImagePrediction, ImageScores
from oddity.core.thresholds import Threshold
from oddity.image.data import load_all
from oddity.image.spec import ImageSpec

Engine = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
BATCH_SIZE = 8  # model inputs per engine call


class _Pending:
    """An image whose parts are being scored."""

    def __init__(self, name: str, hw: tuple[int, int], parts: int):
        self.name, self.hw = name, hw
        self.scores: list[float | None] = [None] * parts
        self.maps: list[np.ndarray | None] = [None] * parts
        self.missing = parts


def score_samples(spec: ImageSpec, engine: Engine, samples: Sequence, *, batch_size: int = BATCH_SIZE,
                  skip_bad: bool = False, skipped: set[str] | None = None, verbose: bool = True,
                  desc: str = "score") -> ImageScores:
    """Score image samples (`oddity.image.data` samples) with `engine`.

    Parameters
    ----------
    spec : ImageSpec
        Pre- and post-processing of the model.
    engine : callable
        (N, 3, h, w) float32 batch -> (scores (N,), patch maps (N, h', w')).
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

    def prepare(sample) -> tuple[tuple[int, int], list[np.ndarray]]:
        pixels = sample.load()
        return pixels.shape[:2], spec.prepare(pixels)

    done: list[_Pending] = []
    batch: list[tuple[_Pending, int, np.ndarray]] = []
    bar = tqdm(total=len(samples), desc=desc, unit="img", disable=not verbose)

    def flush() -> None:
        scores, maps = engine(np.stack([x for _, _, x in batch]))
        for (item, part, _), score, patch_map in zip(batch, scores, maps):
            item.scores[part], item.maps[part] = float(score), patch_map
            item.missing -= 1
            if item.missing == 0:
                bar.update(1)
        batch.clear()

    with bar:
        for sample, (hw, inputs) in load_all(samples, skip_bad, skipped, load=prepare,
                                                   depth=batch_size + 2):
            item = _Pending(sample.name, hw, len(inputs))
            done.append(item)
            for part, x in enumerate(inputs):
                if batch and (len(batch) >= batch_size or batch[0][2].shape != x.shape):
                    flush()
                batch.append((item, part, x))
        if batch:
            flush()
    if not done:
        raise DataError("none of the given images could be read")
    finished = [spec.finish(item.hw, item.scores, item.maps) for item in done]  # type: ignore[arg-type]
    return ImageScores(scores=np.asarray([s for s, _ in finished], dtype=np.float64),
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
