"""A series model in the service: a CSV body in, per-row scores, labels and anomalous ranges
out (what `oddity predict` writes for a series file). Imports pandas, so the service loads this
module only when it serves a series model."""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oddity.core.errors import DataError
from oddity.serve.adapter import file_version, report_files
from oddity.serve.errors import Refusal
from oddity.series.data import series_from_table
from oddity.series.windows import labels_to_spans


class ServedSeries:
    """A series model (`.oddity`) served under `name`: a CSV body in, per-row scores, labels
    and anomalous ranges out (what `oddity predict` writes for a series file).

    Parameters
    ----------
    name : str
        Name in URLs.
    path : Path
        The model file.
    detector : SeriesDetector
        The loaded model.
    """

    kind = "series"
    localises = False
    engine_name = "oddity"

    def __init__(self, name: str, path: Path, detector: Any):
        self.name, self.path, self.detector = name, path, detector
        self.version = file_version([path])
        self.detector_name, self.params = detector.name, detector.get_params()
        self.model_threshold = float(detector.threshold_.value)
        self.threshold = self.model_threshold
        self.target_fpr = float(detector.threshold_.target_fpr)
        self.report = report_files(path)

    def read_csv(self, body: bytes) -> pd.DataFrame:
        """The series in a CSV body, read as the model's training file was.

        The model's time column, date order and channels are used.

        Parameters
        ----------
        body : bytes
            The request body.

        Returns
        -------
        pandas.DataFrame
            The model's channels, indexed by time (or by row number without a time column).

        Raises
        ------
        Refusal
            422 if the body is not a CSV table with the model's channels, or is too short.
        """
        try:
            table = pd.read_csv(io.BytesIO(body))
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise Refusal(422, "bad_csv", f"body: not a readable CSV table ({str(exc)[:200]})") from None
        try:
            frame, _ = series_from_table(table, "body", self.detector.time_column_, self.detector.columns_,
                                         min_length=max(self.detector.min_length, 2),
                                         dayfirst=self.detector.dayfirst_)
        except DataError as exc:
            raise Refusal(422, "bad_series", str(exc)[:500]) from None
        return frame

    def read_tensor(self, body: dict[str, Any]) -> pd.DataFrame:
        """The series in an Open Inference Protocol request.

        One input of shape [T] or [T, C] (C the model's channels, in its order), datatype FP32
        or FP64; rows are numbered steps.

        Parameters
        ----------
        body : dict
            The parsed JSON request, with its ``inputs`` list.

        Returns
        -------
        pandas.DataFrame
            One column per channel of the model, one row per step.

        Raises
        ------
        Refusal
            422 if the tensor is malformed, not finite, of the wrong width or too short.
        """
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise Refusal(422, "bad_tensor", "inputs: expected exactly one input tensor (the series)")
        tensor = inputs[0]
        shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
        channels = list(self.detector.columns_ or [])
        if (not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape)
                or len(shape) not in (1, 2)):
            raise Refusal(422, "bad_tensor", f"inputs[0].shape: expected [T] or [T, {len(channels)}] "
                          f"with positive sizes, got {str(shape)[:80]}")
        width = shape[1] if len(shape) == 2 else 1
        if width != len(channels):
            raise Refusal(422, "bad_tensor", f"inputs[0].shape: {width} channel(s), the model reads "
                          f"{len(channels)} ({', '.join(channels)[:200]})")
        if datatype not in ("FP32", "FP64"):
            raise Refusal(422, "bad_tensor", f"inputs[0].datatype: expected FP32 or FP64, got {str(datatype)[:20]!r}")
        try:
            values = np.asarray(data, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise Refusal(422, "bad_tensor", "inputs[0].data: expected numbers") from None
        if values.size != shape[0] * width:
            raise Refusal(422, "bad_tensor", f"inputs[0].data: {values.size} values for shape {shape}")
        if not np.all(np.isfinite(values)):
            raise Refusal(422, "bad_tensor", "inputs[0].data: values must be finite numbers")
        if shape[0] < max(self.detector.min_length, 2):
            raise Refusal(422, "bad_series", f"inputs[0]: {shape[0]} steps, shorter than the "
                          f"{max(self.detector.min_length, 2)} steps {self.detector_name} needs")
        return pd.DataFrame(values.reshape(shape[0], width), columns=channels)

    def predict_frame(self, frame: pd.DataFrame, threshold: float | None) -> dict[str, Any]:
        """Per-row scores, labels and the anomalous ranges of a series, as the API shows them.

        Parameters
        ----------
        frame : pandas.DataFrame
            The series (`read_csv` or `read_tensor`).
        threshold : float or None
            Threshold of this request; None for the threshold in force, or for the model's
            own per-row thresholds when it calibrates online.

        Returns
        -------
        dict
            Model name and version, threshold and its source, latency, per-row index, scores,
            thresholds and labels, and the anomalous ranges with their peak scores.
        """
        start = time.perf_counter()
        prediction = self.detector.predict(frame)
        seconds = time.perf_counter() - start
        scores = prediction.scores
        source = "request" if threshold is not None else "model"
        in_force = threshold if threshold is not None else (None if self.detector.online else self.threshold)
        if in_force is None:
            thresholds, labels, spans = prediction.thresholds, prediction.labels, prediction.spans
        else:
            thresholds = np.full(len(scores), in_force)
            labels = scores > in_force
            spans = [(prediction.index[s], prediction.index[e]) for s, e in labels_to_spans(labels)]
        positions = pd.RangeIndex(len(scores))
        ranges = []
        for first, last in spans:
            inside = positions[(prediction.index >= first) & (prediction.index <= last)]
            ranges.append({"start": json_index(first), "end": json_index(last), "steps": len(inside),
                           "peak_score": float(scores[inside].max())})
        return {"model": {"name": self.name, "version": self.version},
                "threshold": in_force, "threshold_source": "online" if in_force is None else source,
                "latency_ms": seconds * 1000.0, "steps": len(scores), "anomalous_steps": int(labels.sum()),
                "index": [json_index(i) for i in prediction.index],
                "scores": [float(v) for v in scores], "thresholds": [float(v) for v in thresholds],
                "labels": [bool(v) for v in labels], "ranges": ranges}

    def describe(self) -> dict:
        """Name, version, detector and thresholds, as the API shows them."""
        return {"name": self.name, "kind": self.kind, "engine": self.engine_name, "version": self.version,
                "detector": self.detector_name, "localises": False, "threshold": self.threshold,
                "model_threshold": self.model_threshold, "online": bool(self.detector.online),
                "channels": list(self.detector.columns_ or []),
                "target_fpr": self.target_fpr if np.isfinite(self.target_fpr) else None,
                "params": self.params, "report": bool(self.report)}


def json_index(value: Any) -> Any:
    """An index value (a timestamp or a step number) as JSON shows it.

    Parameters
    ----------
    value : pandas.Timestamp or int
        An index value of a series.

    Returns
    -------
    str or int
        ISO 8601 text for a timestamp, else an int.

    Examples
    --------
    >>> json_index(pd.Timestamp("2026-01-31 12:00")), json_index(np.int64(7))
    ('2026-01-31T12:00:00', 7)
    """
    return value.isoformat() if isinstance(value, pd.Timestamp) else int(value)
