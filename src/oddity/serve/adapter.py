"""The one place the service touches oddity's detectors: loading served models and scoring.

Everything else in `oddity.serve` sees a `ServedModel`: a name, a version, the threshold in
force, and `score(pixels)` giving a score, an anomaly map and the pixel threshold for one
image. Switching the service to another engine (a scoring pipeline, onnxruntime) means
rewriting this module only. Today it uses the public API: `oddity.load(path)` and
`detector.predict(images)`.

A model's name is its file name without `.oddity`; its version is the first 12 hex digits of
the sha256 of the file, so a refitted model under the same name is told apart in the store.
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

import oddity
from oddity.core.errors import ConfigError
from oddity.serve.uploads import encode_png
from oddity.viz import centred_range, colorize, to_uint8

MODEL_SUFFIX = ".oddity"
MAP_SIDE = 256  # long side of the stored anomaly-map PNG
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Scored:
    """One image scored: raw score, anomaly map at the image's size (None for a detector that
    does not localise), the model's pixel threshold (NaN without maps) and the seconds taken."""

    score: float
    map: np.ndarray | None
    pixel_threshold: float
    seconds: float


class ServedModel:
    """A loaded detector served under `name` (see module docstring).

    Parameters
    ----------
    name : str
        Name in URLs (`/v1/models/{name}:predict`).
    path : Path
        The model file.
    """

    def __init__(self, name: str, path: Path):
        detector = oddity.load(path)
        if detector.modality != "image":
            raise ConfigError(f"{path}: a {detector.modality} model; the service scores image "
                              "models only so far")
        if getattr(detector, "zero_shot", False):
            raise ConfigError(f"{path}: {detector.name} is zero-shot (it scores batches against "
                              "each other); serve a detector fitted on normal images")
        self.name = name
        self.path = path
        self.detector = detector
        self.version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.model_threshold = float(detector.threshold_.value)
        self.threshold = self.model_threshold
        self.target_fpr = float(detector.threshold_.target_fpr)
        self._lock = threading.Lock()

    @property
    def detector_name(self) -> str:
        return self.detector.name

    @property
    def localises(self) -> bool:
        return bool(getattr(self.detector, "localises", False))

    def score(self, pixels: np.ndarray) -> Scored:
        """Score one RGB float image (H, W, 3) in [0, 1]; one image at a time per model."""
        with self._lock:
            start = time.perf_counter()
            prediction = self.detector.predict([pixels], verbose=False)
            seconds = time.perf_counter() - start
        score_map = None if prediction.maps is None else prediction.maps[0]
        return Scored(float(prediction.scores[0]), score_map, float(prediction.pixel_threshold), seconds)

    def describe(self) -> dict:
        """Name, version, detector and thresholds, as the API shows them."""
        return {"name": self.name, "version": self.version, "detector": self.detector_name,
                "localises": self.localises, "threshold": self.threshold,
                "model_threshold": self.model_threshold,
                "target_fpr": self.target_fpr if np.isfinite(self.target_fpr) else None,
                "params": self.detector.get_params()}


def map_png(scored: Scored, max_side: int = MAP_SIDE) -> bytes | None:
    """The anomaly map as a turbo-coloured PNG, the pixel threshold in the middle of the colour
    scale (`oddity.viz.centred_range`), shrunk to at most `max_side` pixels on its long side
    (the maps are smooth; viewers stretch them over the image, and colouring and compressing a
    full-size map of a large image cost as much as scoring it); None without a map."""
    if scored.map is None:
        return None
    score_map = scored.map
    height, width = score_map.shape
    scale = max_side / max(height, width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        score_map = np.asarray(Image.fromarray(score_map.astype(np.float32), mode="F")
                               .resize(size, Image.BILINEAR))
    colours = colorize(score_map, centred_range([scored.map], scored.pixel_threshold))
    return encode_png(to_uint8(colours))


def model_files(inputs: Sequence[str]) -> list[Path]:
    """The model files named by `inputs`: `.oddity` files, or folders whose `.oddity` files
    are all taken.

    Raises
    ------
    ConfigError
        If an input does not exist, a folder holds no model, or an input is not a model file.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob(f"*{MODEL_SUFFIX}"))
            if not found:
                raise ConfigError(f"{path}: folder holds no {MODEL_SUFFIX} model file")
            files.extend(found)
        elif path.is_file() and path.suffix == MODEL_SUFFIX:
            files.append(path)
        elif path.exists():
            raise ConfigError(f"{path}: not a {MODEL_SUFFIX} model file (write one with `oddity fit`)")
        else:
            raise ConfigError(f"{path}: no such model file or folder")
    return files


def load_models(inputs: Sequence[str]) -> dict[str, ServedModel]:
    """Load every model named by `inputs` (see `model_files`), keyed by name.

    Raises
    ------
    ConfigError
        If two models would share a name, or a model cannot be served.
    """
    models: dict[str, ServedModel] = {}
    for path in model_files(inputs):
        name = path.name[: -len(MODEL_SUFFIX)]
        if not MODEL_NAME.fullmatch(name):
            raise ConfigError(f"{path}: model names may hold letters, digits, '.', '_' and '-' "
                              "only (at most 128); rename the file")
        if name in models:
            raise ConfigError(f"{path}: a model named {name!r} is already served "
                              f"({models[name].path}); rename one of the files")
        models[name] = ServedModel(name, path)
    return models
