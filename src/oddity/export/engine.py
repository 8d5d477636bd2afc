"""Run an exported model with onnxruntime: no torch on this path.

An export folder holds `model.onnx` (the detector's scoring graph: a float32 batch
(N, 3, h, w) of model inputs in, `scores` (N,) and `maps` (N, h', w') out) and `metadata.json`
(what `oddity.export.onnx` wrote: the detector, its pre- and post-processing as an
`ImageSpec`, its thresholds, the parity achieved at export). `ExportedModel` scores images
through the same pipeline as the in-process detector (`oddity.image.pipeline`), so the two
give the same outputs. The session computes each call on one thread; the pipeline runs
several calls at once.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oddity.core.errors import DataError, ModelFileError
from oddity.core.results import ImagePrediction, ImageScores
from oddity.core.thresholds import Threshold
from oddity.image.pipeline import BATCH_SIZE, decide, score_samples
from oddity.image.spec import ImageSpec

SCHEMA_VERSION = 1
METADATA = "metadata.json"
MODEL = "model.onnx"


def is_export(path: str | os.PathLike) -> bool:
    """Whether `path` is an export folder or an .onnx file (rather than a .oddity model).

    Parameters
    ----------
    path : str or os.PathLike
        A model path.

    Returns
    -------
    bool
        True for an export.
    """
    path = Path(path)
    return path.suffix.lower() == ".onnx" or (path.is_dir() and (path / METADATA).is_file())


def read_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    """The metadata.json of an export folder, checked for its schema version.

    Parameters
    ----------
    folder : str or os.PathLike
        The export folder.

    Returns
    -------
    dict
        The metadata.

    Raises
    ------
    ModelFileError
        If it is missing, unreadable or of another schema version.
    """
    path = Path(folder) / METADATA
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing; an exported model needs the metadata.json written "
                             "beside model.onnx by `oddity export`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not readable JSON ({exc}); export the model again") from None
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ModelFileError(f"{path}: metadata schema version {document.get('schema_version')!r}, "
                             f"this oddity reads version {SCHEMA_VERSION}; export the model again")
    return document


class ExportedModel:
    """An exported image model scored with onnxruntime.

    Parameters
    ----------
    path : str or PathLike
        The export folder, or a .onnx file in it (e.g. the int8 graph).

    Raises
    ------
    ModelFileError
        If the folder lacks its graph or metadata, or they cannot be read.
    """

    def __init__(self, path: str | os.PathLike):
        import onnxruntime

        path = Path(path)
        graph = path if path.suffix.lower() == ".onnx" else path / MODEL
        if not graph.is_file():
            raise ModelFileError(f"{graph}: no such ONNX graph (create one with `oddity export`)")
        self.metadata = read_metadata(graph.parent)
        self.source = str(graph)
        self.name = self.metadata["detector"]
        self.modality = self.metadata.get("modality", "image")
        self.spec = ImageSpec.from_dict(self.metadata["pipeline"], str(graph.parent / METADATA))
        self.localises = self.spec.localises
        thresholds = self.metadata["thresholds"]
        self.threshold = Threshold(**thresholds["image"])
        self.pixel_threshold = Threshold(**thresholds["pixel"]) if thresholds.get("pixel") else None
        map_range = self.metadata.get("map_range")  # overlay colours (absent before it was kept)
        self.map_range_ = (float(map_range[0]), float(map_range[1])) if map_range else None
        self.input_hw = tuple(self.metadata["input"]["shape"][2:])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # One thread per call: the pipeline runs several calls at once (`oddity.image.pipeline`).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{graph}: onnxruntime cannot load this graph ({exc})") from None

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The graph on a (N, 3, h, w) float32 batch: (scores (N,), maps (N, h', w')).

        Parameters
        ----------
        batch : numpy.ndarray
            (N, 3, h, w) float32 model inputs.

        Returns
        -------
        tuple of numpy.ndarray
            (scores (N,), maps (N, h', w')).

        Raises
        ------
        DataError
            If the batch's size differs from the exported input shape.
        """
        if tuple(batch.shape[2:]) != self.input_hw:
            raise DataError(
                f"{self.source} was exported for model inputs of {self.input_hw[0]}x{self.input_hw[1]} "
                f"pixels; an image here needs {batch.shape[2]}x{batch.shape[3]} (another aspect ratio): "
                "export again with --images of that shape, or fit with a fixed input shape")
        scores, maps = self.session.run(["scores", "maps"], {"images": batch})
        return scores, maps

    def score(self, samples: Sequence, *, verbose: bool = True, batch_size: int = BATCH_SIZE,
              skip_bad: bool = False, desc: str = "score") -> ImageScores:
        """Scores (and maps, when the detector localises) of image samples.

        Parameters
        ----------
        samples : sequence
            Image samples (`oddity.image.data`).
        verbose : bool, default True
            Show a progress bar.
        batch_size : int, default 8
            Model inputs run at once.
        skip_bad : bool, default False
            Skip unreadable images with a warning instead of raising.
        desc : str, default "score"
            Label of the progress bar.

        Returns
        -------
        ImageScores
            Scores (and maps).

        Raises
        ------
        DataError
            If an image cannot be read (without `skip_bad`) or has a shape the graph does not take.
        """
        return score_samples(self.spec, self.run, samples, batch_size=batch_size, skip_bad=skip_bad,
                             verbose=verbose, desc=desc)

    def predict(self, samples: Sequence, *, verbose: bool = True, batch_size: int = BATCH_SIZE,
                skip_bad: bool = False) -> ImagePrediction:
        """Scores plus labels and masks from the exported thresholds.

        Parameters
        ----------
        samples : sequence
            Image samples (`oddity.image.data`).
        verbose : bool, default True
            Show a progress bar.
        batch_size : int, default 8
            Model inputs run at once.
        skip_bad : bool, default False
            Skip unreadable images with a warning instead of raising.

        Returns
        -------
        ImagePrediction
            Scores, maps, labels and masks.

        Raises
        ------
        DataError
            If an image cannot be read (without `skip_bad`) or has a shape the graph does not take.
        """
        result = self.score(samples, verbose=verbose, batch_size=batch_size, skip_bad=skip_bad,
                            desc="predict")
        return decide(result, self.threshold, self.pixel_threshold)
