"""Write an image prediction to a folder: scores.csv, heat-map overlays and binary masks.

Layout of the folder (what `oddity predict` produces):
- `scores.csv`: one row per image, columns `path` (as given), `score` (raw anomaly score,
  higher = more anomalous), `label` (`anomalous` if the score is above the calibrated image
  threshold, else `normal`), `overlay` and `mask` (the two files below, relative to the folder);
- `overlays/<name>.png`: the image with its heat map blended in and the predicted anomalous
  regions outlined in white. The colour scale is the model's (`map_range_`: from the smallest
  value of its calibration maps, pixel threshold in the middle, see `oddity.viz.centre_range`),
  so each overlay depends on its image alone and a run split over Dask workers writes the same
  files; a model saved before the range was kept (or one that scores a batch against itself)
  shares one scale over the run's maps (`oddity.viz.centred_range`);
- `masks/<name>_mask.png`: the predicted mask (255 = anomalous pixel), at the image's size.
For a detector that does not localise (no maps, `prediction.maps` is None) only scores.csv is
written, with empty `overlay` and `mask` columns.
`<name>` is the image's path relative to the deepest folder holding all inputs, folders joined
by `__` and extension dropped (`a/b/x.png` -> `a__b__x`), with `-2`, `-3`... appended on a
clash, so images with the same file name in different folders never overwrite each other.
Images are written by a pool of threads (decoding, colouring and PNG encoding release the
GIL), overlays at PNG compression level 1 (they are photographs: higher levels cost more time
than they save space).
"""
from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from oddity.core.persistence import staged_directory
from oddity.core.results import ImagePrediction
from oddity.image.data import read_image
from oddity.image.pipeline import engine_threads
from oddity.viz import WHITE, centre_range, centred_range, outline, overlay, save_png

CSV_COLUMNS = ("path", "score", "label", "overlay", "mask")
OVERLAY_COMPRESSION = 1  # PNG compression level of overlays


def output_names(paths: Sequence[str]) -> list[str]:
    """Unique, flat file stems for image paths (see the module docstring).

    Parameters
    ----------
    paths : sequence of str
        Image paths.

    Returns
    -------
    list of str
        One stem per path.
    """
    resolved = [Path(p).resolve() for p in paths]
    base = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    names: list[str] = []
    taken: set[str] = set()
    for path in resolved:
        stem = "__".join(path.relative_to(base).with_suffix("").parts)
        name, copy = stem, 1
        while name in taken:
            copy += 1
            name = f"{stem}-{copy}"
        taken.add(name)
        names.append(name)
    return names


def write_image_outputs(stage: Path, name: str, path: str, score_map: np.ndarray, mask: np.ndarray,
                        value_range: tuple[float, float]) -> tuple[str, str]:
    """Write one image's overlay and mask under `stage`.

    Parameters
    ----------
    stage : pathlib.Path
        The staged prediction folder.
    name : str
        The output name of the image.
    path : str
        The image file (read again for the overlay).
    score_map : numpy.ndarray
        (H, W) anomaly map at the image's size.
    mask : numpy.ndarray
        (H, W) binary mask.
    value_range : tuple of float
        The colour range of the overlay.

    Returns
    -------
    tuple of str
        The overlay's and the mask's paths relative to `stage`.
    """
    overlay_path, mask_path = f"overlays/{name}.png", f"masks/{name}_mask.png"
    heat = overlay(read_image(path), score_map, value_range)
    save_png(stage / overlay_path, outline(heat, mask, WHITE), compress_level=OVERLAY_COMPRESSION,
             staged=True)
    save_png(stage / mask_path, mask, staged=True)
    return overlay_path, mask_path


def overlay_range(map_range: tuple[float, float] | None, prediction: ImagePrediction) -> tuple[float, float]:
    """The overlay colour range of `prediction`: the model's `map_range` centred on the pixel
    threshold, or (None) the range of the prediction's own maps.

    Parameters
    ----------
    map_range : tuple of float or None
        The model's calibration map range (`map_range_`).
    prediction : ImagePrediction
        The prediction (with maps).

    Returns
    -------
    tuple of float
        (low, high).
    """
    if map_range is not None:
        return centre_range(map_range[0], map_range[1], prediction.pixel_threshold)
    assert prediction.maps is not None
    return centred_range(prediction.maps, prediction.pixel_threshold)


def write_scores_csv(stage: Path, prediction: ImagePrediction, files: Sequence[tuple[str, str]]) -> None:
    """Write scores.csv (one row per image, input order) into the staged folder `stage`.

    Parameters
    ----------
    stage : pathlib.Path
        The staged prediction folder.
    prediction : ImagePrediction
        Paths, scores and labels (maps are not read).
    files : sequence of tuple of str
        (overlay, mask) paths per image, relative to `stage` ("" when not written).
    """
    with open(stage / "scores.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for i, (overlay_path, mask_path) in enumerate(files):
            label = "anomalous" if prediction.labels[i] else "normal"
            writer.writerow([prediction.paths[i], f"{prediction.scores[i]:.6g}", label, overlay_path, mask_path])


def write_predictions(folder: str | os.PathLike, prediction: ImagePrediction,
                      map_range: tuple[float, float] | None = None) -> Path:
    """Write scores.csv, overlays/ and masks/ for `prediction` into `folder` (staged, so an
    interrupted run leaves no partial output); return the path of scores.csv.

    Parameters
    ----------
    folder : str or os.PathLike
        Output folder (created or replaced whole).
    prediction : ImagePrediction
        What to write.
    map_range : tuple of float, optional
        The model's calibration map range (`map_range_`), which sets the overlay colours;
        None: the range of the prediction's maps.

    Returns
    -------
    pathlib.Path
        The path of scores.csv.

    Raises
    ------
    OutputError
        If `folder` may not be written.
    """
    folder = Path(folder)
    maps, masks = prediction.maps, prediction.masks
    names = output_names(prediction.paths)
    with staged_directory(folder) as stage:
        files = [("", "")] * len(names)
        if maps is not None and masks is not None:
            value_range = overlay_range(map_range, prediction)
            with ThreadPoolExecutor(engine_threads()) as pool:
                files = list(pool.map(write_image_outputs, [stage] * len(names), names, prediction.paths,
                                      maps, masks, [value_range] * len(names)))
        write_scores_csv(stage, prediction, files)
    return folder / "scores.csv"
