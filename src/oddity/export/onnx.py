"""Export a fitted image detector to ONNX, behind a parity gate.

The detector's portable scoring graph (`ImageDetector.kernel(portable=True)`) is traced at the
model input shape of the parity images with a dynamic batch axis. Before anything is written,
the parity images are scored both ways through the one pipeline (`oddity.image.pipeline`):
in process exactly as `predict` scores them, and with onnxruntime. The export is refused if any
image score differs by more than `SCORE_TOLERANCE` relative to that score (`score_scale`: its
own magnitude, floored at the 90th percentile of the parity images' score magnitudes, so a
score near zero is judged at the scale the scores vary at rather than divided by almost
nothing) or any
label differs (except for a score within that tolerance of the threshold: a calibration image
can sit exactly on it); the largest differences (scores, and maps relative to the pixel
threshold) are printed and stored in metadata.json. With `quantize="int8"` a dynamically quantized copy (`model.int8.onnx`,
onnxruntime's `quantize_dynamic`) passes its own gate: identical labels; its score
difference is reported, not bounded.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import oddity
from oddity.core.errors import ExportError
from oddity.core.persistence import staged_directory
from oddity.core.results import ImageScores
from oddity.export.engine import METADATA, MODEL, SCHEMA_VERSION, ExportedModel
from oddity.image.data import ImageSample, load_all
from oddity.image.detector import ImageDetector

SCORE_TOLERANCE = 1e-4
SCALE_QUANTILE = 0.9  # of the parity scores' magnitudes: the floor of `score_scale`
OPSET = 17
QUANTIZED = "model.int8.onnx"


@dataclass(frozen=True)
class Parity:
    """How closely an exported graph reproduces the in-process scores on `images` images."""

    images: int
    max_score_difference: float  # relative: |a - b| / score_scale(a)
    max_map_difference: float | None  # absolute, divided by |pixel threshold|
    labels_identical: bool  # image labels
    mask_pixels_differing: float | None = None  # share of mask pixels on the other side of the cut

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-serialisable data.

        Returns
        -------
        dict
            Field name to value.
        """
        return {"images": self.images, "max_score_difference": self.max_score_difference,
                "max_map_difference": self.max_map_difference, "labels_identical": self.labels_identical,
                "mask_pixels_differing": self.mask_pixels_differing}


def score_scale(scores: np.ndarray) -> np.ndarray:
    """What each score's difference is relative to: its own magnitude, floored at the 90th
    percentile of the magnitudes of `scores` (the scale at which the compared scores vary; for
    the default gate, the calibration images'). Float rounding scales with the values inside
    the graph, not with a score that happens to lie near zero: detectors whose normal scores
    are centred on zero (EfficientAD's normalised maps) would otherwise be held to an absolute
    tolerance far below their scale. A threshold far above the scores does not enter.

    Parameters
    ----------
    scores : numpy.ndarray
        (N,) reference (in-process) scores of the parity images.

    Returns
    -------
    numpy.ndarray
        (N,) positive scales.
    """
    magnitude = np.abs(np.asarray(scores, dtype=np.float64))
    floor = float(np.quantile(magnitude, SCALE_QUANTILE)) if magnitude.size else 0.0
    return np.maximum(magnitude, max(floor, 1e-12))


def parity(reference: ImageScores, exported: ImageScores, detector: ImageDetector) -> Parity:
    """Differences between in-process and exported scores of the same images.

    Parameters
    ----------
    reference : ImageScores
        In-process scores.
    exported : ImageScores
        Scores of the exported graph on the same images.
    detector : ImageDetector
        The detector (its pixel threshold scales the map differences).

    Returns
    -------
    Parity
        The largest differences (scores relative to `score_scale` of the reference scores)
        and whether decisions agree.
    """
    assert detector.threshold_ is not None
    cut = detector.threshold_.value
    scale = score_scale(reference.scores)
    score_difference = float(np.max(np.abs(reference.scores - exported.scores) / scale))
    # A calibration image's score can be the threshold itself (the conformal threshold is one of
    # them): a label that flips on a score within the tolerance of the cut is a tie, not a drift.
    tie = np.abs(reference.scores - cut) <= SCORE_TOLERANCE * scale
    labels = bool(np.array_equal((reference.scores > cut)[~tie], (exported.scores > cut)[~tie]))
    map_difference = masks = None
    if reference.maps is not None and exported.maps is not None and detector.pixel_threshold_ is not None:
        pixel_cut = detector.pixel_threshold_.value
        largest = max(float(np.max(np.abs(a - b))) for a, b in zip(reference.maps, exported.maps))
        map_difference = largest / max(abs(pixel_cut), 1e-12)
        differing = sum(int(np.sum((a > pixel_cut) != (b > pixel_cut))) for a, b in zip(reference.maps, exported.maps))
        masks = differing / sum(a.size for a in reference.maps)
    return Parity(len(reference.scores), score_difference, map_difference, labels, masks)


def _parity_samples(detector: ImageDetector, images: Sequence[str] | None) -> list:
    """The images the gate scores: `images`, else the model's calibration images."""
    from oddity.image.data import unlabelled_samples

    if images:
        return unlabelled_samples(images)
    names = [n for n in (detector.calibration_images_ or []) if Path(n).is_file()]
    if not names:
        raise ExportError("the parity gate needs images: this model names no calibration images that "
                          "still exist here; pass some with --images")
    return [ImageSample(Path(n)) for n in names]


def _input_shape(detector: ImageDetector, samples: list) -> tuple[int, int]:
    """The one model input (h, w) of the parity images (the graph is traced at that shape)."""
    spec = detector.spec()
    shapes = {tuple(x.shape[1:]) for _, parts in load_all(samples, False, load=lambda s: spec.prepare(s.load()))
              for x in parts}
    if len(shapes) != 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sorted(shapes))
        raise ExportError(f"the parity images need model inputs of several shapes ({listed}); an "
                          "exported graph has one input shape: pass --images of one aspect ratio")
    return shapes.pop()  # type: ignore[return-value]


def _trace(detector: ImageDetector, hw: tuple[int, int], path: Path) -> None:
    kernel = detector.kernel(portable=True)
    example = torch.rand(2, 3, *hw)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(kernel, (example,), str(path), input_names=["images"],
                          output_names=["scores", "maps"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}, "maps": {0: "batch"}})
    _drop_omitted_inputs(path)


def _drop_omitted_inputs(path: Path) -> None:
    """Rewrite the ONNX graph at `path` without the empty names the exporter writes for
    omitted optional inputs at the end of a node's inputs (a `Pad` without its constant
    value). The graph computes the same; onnxruntime then fuses each zero `Pad` into the
    convolution after it (`PadFusion`), which it skips while the empty input is listed."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        while node.input and not node.input[-1]:
            node.input.pop()
    onnx.save(model, str(path))


def _metadata(detector: ImageDetector, hw: tuple[int, int], gate: Parity) -> dict[str, Any]:
    assert detector.threshold_ is not None
    spec = detector.spec()
    return {
        "schema_version": SCHEMA_VERSION,
        "oddity_version": oddity.__version__,
        "detector": detector.name,
        "modality": detector.modality,
        "params": detector.get_params(),
        "input": {"name": "images", "dtype": "float32", "shape": ["batch", 3, *hw],
                  "layout": "NCHW, RGB in [0, 1], resized by the pipeline rule"},
        "outputs": {"scores": "(batch,) image scores", "maps": "(batch, h, w) patch maps"},
        "pipeline": spec.to_dict(),
        "map_size_rule": ("each patch map is resized to its model input, Gaussian-smoothed with "
                          "smoothing_sigma there, then resized to its image (or tile); tiles are "
                          "averaged where they overlap; the image score is the largest over tiles"),
        "thresholds": {"image": detector.threshold_.to_dict(),
                       "pixel": detector.pixel_threshold_.to_dict() if detector.pixel_threshold_ else None},
        "map_range": list(detector.map_range_) if detector.map_range_ else None,
        "parity": gate.to_dict(),
    }


def export_onnx(detector: ImageDetector, out: str | os.PathLike, *, images: Sequence[str] | None = None,
                quantize: str | None = None, verbose: bool = True) -> dict[str, Any]:
    """Export `detector` to `out` (model.onnx + metadata.json) if it passes the parity gate.

    Parameters
    ----------
    detector : ImageDetector
        A fitted detector with a scoring graph.
    out : str or PathLike
        Folder to write (created; same-named files in it are replaced, others kept).
    images : sequence of str, optional
        Image files or folders for the gate; default: the model's calibration images.
    quantize : {"int8"}, optional
        Also write model.int8.onnx, gated on identical labels.
    verbose : bool
        Progress bars.

    Returns
    -------
    dict
        The metadata written (its "parity" entry holds the achieved differences).

    Raises
    ------
    ExportError
        If the detector has no graph, the gate has no images or they need several input
        shapes, or the exported scores or labels differ beyond the tolerance.
    """
    from oddity.core.errors import ConfigError

    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize {quantize!r}: only int8 is available")
    try:
        detector.kernel(portable=True)
    except ConfigError as exc:
        raise ExportError(f"cannot export: {exc}") from None
    samples = _parity_samples(detector, images)
    hw = _input_shape(detector, samples)
    reference = detector.score(samples, verbose=verbose, desc="parity: in process")
    with tempfile.TemporaryDirectory(prefix="oddity-export-") as scratch:
        graph = Path(scratch) / MODEL
        _trace(detector, hw, graph)
        gate = _gate(detector, graph, hw, samples, reference, verbose, "parity: onnxruntime")
        if gate.max_score_difference > SCORE_TOLERANCE or not gate.labels_identical:
            raise ExportError(
                f"parity gate failed: largest relative score difference {gate.max_score_difference:.3g} "
                f"(allowed {SCORE_TOLERANCE:g}), labels identical: {gate.labels_identical}; nothing written "
                "(a model that scores in bfloat16 in process, e.g. efficientad with precision='auto' on "
                "a CPU with native bfloat16, must be set to precision='float32' before export)")
        metadata = _metadata(detector, hw, gate)
        if quantize:
            quantized = Path(scratch) / QUANTIZED
            _quantize(graph, quantized)
            q_gate = _gate(detector, quantized, hw, samples, reference, verbose, "parity: int8")
            if not q_gate.labels_identical:
                raise ExportError(f"int8 gate failed: labels differ from the float model (largest relative "
                                  f"score difference {q_gate.max_score_difference:.3g}); nothing written")
            metadata["quantized"] = {"file": QUANTIZED, "scheme": "int8 dynamic (weights), onnxruntime",
                                     "parity": q_gate.to_dict()}
        with staged_directory(out) as stage:
            for name in (MODEL, QUANTIZED if quantize else None):
                if name:
                    shutil.copyfile(Path(scratch) / name, stage / name)
            (stage / METADATA).write_text(json.dumps(metadata, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return metadata


def _gate(detector: ImageDetector, graph: Path, hw: tuple[int, int], samples: list,
          reference: ImageScores, verbose: bool, desc: str) -> Parity:
    """Score `samples` with the graph at `graph` (metadata taken from the detector) and compare."""
    (graph.parent / METADATA).write_text(json.dumps(_metadata(detector, hw, Parity(0, 0.0, None, True))),
                                         encoding="utf-8")
    exported = ExportedModel(graph).score(samples, verbose=verbose, desc=desc)
    return parity(reference, exported, detector)


def _quantize(graph: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(graph), str(target), weight_type=QuantType.QInt8)


__all__ = ["Parity", "export_onnx", "parity", "score_scale"]
