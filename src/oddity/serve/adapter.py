"""The one place the service touches oddity's engines: loading served models and scoring.

Everything else in `oddity.serve` sees a `ServedModel` (images) or a
`oddity.serve.series.ServedSeries` (series):
a name, a version, the threshold in force, and `score_batch(images)` giving a score, an
anomaly map and the pixel threshold per image (one call through the image pipeline
`oddity predict` runs, `oddity.image.pipeline`), or `predict_frame(frame)` for a series.
An image model is a `.oddity` file scored in process (`oddity.load`) or an export folder
(`oddity export`: model.onnx + metadata.json) scored with onnxruntime
(`oddity.export.engine.ExportedModel`); a series model is a `.oddity` file.

A model's name is its file name without `.oddity` (an export folder's name); its version is
the first 12 hex digits of the sha256 of the file (of metadata.json and model.onnx), so a
refitted model under the same name is told apart in the store. An HTML report written by
`oddity eval --report` is served with a model when its folder lies beside it as `NAME.report/`
(`report/` inside an export folder); see `report_files`.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from PIL import Image

import oddity
from oddity.core.errors import ConfigError
from oddity.export.engine import METADATA, MODEL, ExportedModel
from oddity.image.data import ArraySample
from oddity.serve.uploads import encode_png
from oddity.viz import centred_range, colour_indices, colour_table, to_uint8

if TYPE_CHECKING:
    from oddity.serve.series import ServedSeries

MODEL_SUFFIX = ".oddity"
REPORT_SUFFIX = ".report"
EXPORT_REPORT = "report"
REPORT_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
MAP_SIDE = 256  # long side of the stored anomaly-map PNG
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TURBO = to_uint8(colour_table("turbo"))  # colours of the map PNGs


@dataclass(frozen=True)
class Scored:
    """One image scored: raw score, anomaly map at the image's size (None for a detector that
    does not localise), the model's pixel threshold (NaN without maps) and the model's
    seconds for this image (its share of the batch it was scored in)."""

    score: float
    map: np.ndarray | None
    pixel_threshold: float
    seconds: float


def file_version(paths: Sequence[Path]) -> str:
    """The first 12 hex digits of the sha256 of the files' bytes, in order.

    Parameters
    ----------
    paths : sequence of pathlib.Path
        Files hashed one after another.

    Returns
    -------
    str
        12 lowercase hex digits.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def report_files(path: Path) -> dict[str, Path]:
    """The files of the `oddity eval --report` folder served with the model at `path`.

    Keyed by the name a request may ask for (`index.html`, `images/NAME.png`); empty without
    a report. The folder is `NAME.report/` beside a `NAME.oddity` file, `report/` inside an
    export folder. Only regular files (not links) are listed, once, when the model is loaded.

    Parameters
    ----------
    path : pathlib.Path
        The `.oddity` file or the export folder.

    Returns
    -------
    dict of str to pathlib.Path
        Request name -> file; empty when the folder, its ``index.html`` or the folder itself is
        missing or a link.
    """
    if path.is_dir():
        folder = path / EXPORT_REPORT
    else:
        folder = path.with_name(path.name[: -len(MODEL_SUFFIX)] + REPORT_SUFFIX)
    index = folder / "index.html"
    if folder.is_symlink() or not index.is_file() or index.is_symlink():
        return {}
    files = {"index.html": index}
    images = folder / "images"
    if images.is_dir() and not images.is_symlink():
        for image in sorted(images.glob("*.png")):
            if image.is_file() and not image.is_symlink() and REPORT_FILE.fullmatch(image.name):
                files[f"images/{image.name}"] = image
    return files


class ServedModel:
    """An image model served under `name` (see module docstring).

    Parameters
    ----------
    name : str
        Name in URLs (`/v1/models/{name}:predict`).
    path : Path
        The `.oddity` file or the export folder.
    detector : ImageDetector, optional
        The loaded `.oddity` model (loaded from `path` when None; unused for an export folder).

    Raises
    ------
    ConfigError
        If the detector is zero-shot.
    """

    kind = "image"

    def __init__(self, name: str, path: Path, detector: Any = None):
        if is_export_folder(path):
            engine: Any = ExportedModel(path)
            self.version = file_version([path / METADATA, path / MODEL])
            threshold, pixel = engine.threshold, engine.pixel_threshold
            self.detector_name, self.params = engine.name, dict(engine.metadata.get("params", {}))
            self.localises, self.engine_name = bool(engine.spec.localises), "onnxruntime"
        else:
            engine = detector if detector is not None else oddity.load(path)
            if getattr(engine, "zero_shot", False):
                raise ConfigError(f"{path}: {engine.name} is zero-shot (it scores batches against "
                                  "each other); serve a detector fitted on normal images")
            self.version = file_version([path])
            threshold, pixel = engine.threshold_, engine.pixel_threshold_
            self.detector_name, self.params = engine.name, engine.get_params()
            self.localises, self.engine_name = bool(getattr(engine, "localises", False)), "oddity"
        self.name, self.path, self.engine = name, path, engine
        self.pixel_threshold = float(pixel.value) if pixel is not None else float("nan")
        self.model_threshold = float(threshold.value)
        self.threshold = self.model_threshold
        self.target_fpr = float(threshold.target_fpr)
        self.report = report_files(path)

    def score_batch(self, images: Sequence[np.ndarray]) -> list[Scored]:
        """Score RGB float images (H, W, 3) in [0, 1] in one call through the image pipeline.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            The images' pixels.

        Returns
        -------
        list of Scored
            One per image, in order; each carries an equal share of the batch's seconds.
        """
        start = time.perf_counter()
        samples = [ArraySample(pixels, f"image-{i}") for i, pixels in enumerate(images)]
        result = self.engine.score(samples, verbose=False, batch_size=max(len(samples), 1))
        share = (time.perf_counter() - start) / max(len(samples), 1)
        maps = result.maps if result.maps is not None else [None] * len(samples)
        return [Scored(float(score), score_map, self.pixel_threshold, share)
                for score, score_map in zip(result.scores, maps)]

    def describe(self) -> dict:
        """Name, version, detector and thresholds, as the API shows them."""
        return {"name": self.name, "kind": self.kind, "engine": self.engine_name, "version": self.version,
                "detector": self.detector_name, "localises": self.localises, "threshold": self.threshold,
                "model_threshold": self.model_threshold,
                "target_fpr": self.target_fpr if np.isfinite(self.target_fpr) else None,
                "params": self.params, "report": bool(self.report)}


def map_png(scored: Scored, max_side: int = MAP_SIDE) -> bytes | None:
    """The anomaly map as a turbo-coloured palette PNG.

    The pixel threshold lies in the middle of the colour scale (`oddity.viz.centred_range`).
    The map is shrunk to at most `max_side` pixels on its long side (the maps are smooth;
    viewers stretch them over the image, and colouring and compressing a full-size map of a
    large image cost as much as scoring it).

    Parameters
    ----------
    scored : Scored
        The scored image, its map and pixel threshold.
    max_side : int, default MAP_SIDE
        Longest side of the PNG in pixels; smaller maps keep their size.

    Returns
    -------
    bytes or None
        The PNG, or None when the image has no map.
    """
    if scored.map is None:
        return None
    score_map = scored.map
    height, width = score_map.shape
    scale = max_side / max(height, width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        score_map = np.asarray(Image.fromarray(score_map.astype(np.float32), mode="F")
                               .resize(size, Image.BILINEAR))
    indices = colour_indices(score_map, centred_range([scored.map], scored.pixel_threshold))
    return encode_png(indices, palette=TURBO)


def is_export_folder(path: Path) -> bool:
    """Whether `path` is a folder written by `oddity export` (it holds metadata.json).

    Parameters
    ----------
    path : pathlib.Path
        A file or folder.

    Returns
    -------
    bool
    """
    return path.is_dir() and (path / METADATA).is_file()


def model_files(inputs: Sequence[str]) -> list[Path]:
    """The models named by `inputs`.

    An input is a `.oddity` file, an export folder, or a folder whose `.oddity` files and
    export sub-folders are all taken.

    Parameters
    ----------
    inputs : sequence of str
        Paths given on the command line.

    Returns
    -------
    list of pathlib.Path
        Model files and export folders, in the order given (a folder's sorted).

    Raises
    ------
    ConfigError
        If an input does not exist, a folder holds no model, or an input is not a model.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if is_export_folder(path):
            files.append(path)
        elif path.is_dir():
            found = sorted([*path.glob(f"*{MODEL_SUFFIX}"), *filter(is_export_folder, path.iterdir())])
            if not found:
                raise ConfigError(f"{path}: folder holds no {MODEL_SUFFIX} model file and no "
                                  "export folder (model.onnx + metadata.json)")
            files.extend(found)
        elif path.is_file() and path.suffix == MODEL_SUFFIX:
            files.append(path)
        elif path.exists():
            raise ConfigError(f"{path}: not a {MODEL_SUFFIX} model file or an export folder (write one "
                              "with `oddity fit` or `oddity export`)")
        else:
            raise ConfigError(f"{path}: no such model file or folder")
    return files


def load_model(name: str, path: Path) -> ServedModel | ServedSeries:
    """The served model at `path` (an export folder or a `.oddity` file).

    Parameters
    ----------
    name : str
        Name in URLs.
    path : pathlib.Path
        The export folder or `.oddity` file.

    Returns
    -------
    ServedModel or ServedSeries
        By the model's modality.

    Raises
    ------
    ConfigError
        If the model's modality is not served (images and series are).
    """
    if is_export_folder(path):
        return ServedModel(name, path)
    detector = oddity.load(path)
    if detector.modality == "series":
        from oddity.serve.series import ServedSeries

        return ServedSeries(name, path, detector)
    if detector.modality != "image":
        raise ConfigError(f"{path}: a {detector.modality} model; the service scores image and "
                          "series models")
    return ServedModel(name, path, detector)


def load_models(inputs: Sequence[str]) -> dict[str, ServedModel | ServedSeries]:
    """Load every model named by `inputs` (see `model_files`), keyed by name.

    Parameters
    ----------
    inputs : sequence of str
        Model files, export folders or folders of them.

    Returns
    -------
    dict of str to ServedModel or ServedSeries
        Model name (file name without `.oddity`, or the export folder's name) -> served model.

    Raises
    ------
    ConfigError
        If a name holds characters other than letters, digits, '.', '_' and '-', two models
        would share a name, or a model cannot be served.
    """
    models: dict[str, ServedModel | ServedSeries] = {}
    for path in model_files(inputs):
        name = path.name[: -len(MODEL_SUFFIX)] if path.suffix == MODEL_SUFFIX else path.name
        if not MODEL_NAME.fullmatch(name):
            raise ConfigError(f"{path}: model names may hold letters, digits, '.', '_' and '-' "
                              "only (at most 128); rename the file")
        if name in models:
            raise ConfigError(f"{path}: a model named {name!r} is already served "
                              f"({models[name].path}); rename one of the files")
        models[name] = load_model(name, path)
    return models
