"""Pictures of a video prediction: the score timeline, and frames with their heat map.

`timeline_figure` is a `matplotlib.figure.Figure` (no pyplot; save it with
`oddity.plots.save_figure`); its artists carry a `gid` ("score", "raw", "threshold", "range",
"truth") for tests. `annotated_frame` draws one frame as the annotated video shows it: on an
anomalous frame the patch-score map, upsampled to the frame, is blended over it through the
turbo colormap on a scale centred on the threshold (`oddity.viz.overlay`), with a red border;
every frame carries its number and score.
"""
from __future__ import annotations

import cv2
import numpy as np
from matplotlib.figure import Figure

from oddity.plots import ANOMALOUS_COLOUR, NORMAL_COLOUR, THRESHOLD_COLOUR
from oddity.video.results import ClipPrediction
from oddity.viz import overlay

TRUTH_COLOUR = "tab:green"
RED = (230, 40, 40)


def timeline_figure(prediction: ClipPrediction, truth: np.ndarray | None = None,
                    title: str = "") -> Figure:
    """Frame scores (smoothed, raw in grey), threshold, predicted anomalous ranges (red) and,
    when given, the true anomalous frames `truth` (green band).

    Parameters
    ----------
    prediction : ClipPrediction
        The clip's prediction.
    truth : numpy.ndarray, optional
        (T,) bool true labels.
    title : str, default ""
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    figure = Figure(figsize=(9.0, 2.8), layout="constrained")
    axis = figure.subplots()
    frames = np.arange(len(prediction))
    if truth is not None:
        axis.fill_between(frames, 0, 1, where=np.asarray(truth, bool), step="mid", color=TRUTH_COLOUR,
                          alpha=0.15, transform=axis.get_xaxis_transform(), gid="truth",
                          label="labelled anomalous")
    for first, last in prediction.ranges:
        axis.axvspan(first - 0.5, last + 0.5, color=ANOMALOUS_COLOUR, alpha=0.25, linewidth=0, gid="range")
    if not np.array_equal(prediction.raw_scores, prediction.scores):
        axis.plot(frames, prediction.raw_scores, color="0.6", linewidth=0.6, gid="raw", label="raw score")
    axis.plot(frames, prediction.scores, color=NORMAL_COLOUR, linewidth=1.0, gid="score", label="score")
    axis.axhline(prediction.threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=0.8,
                 gid="threshold", label=f"threshold {prediction.threshold:.3g}")
    axis.set_xlabel("frame")
    axis.set_ylabel("anomaly score")
    axis.set_xlim(-0.5, max(len(prediction) - 0.5, 0.5))
    axis.legend(fontsize=7, loc="upper left")
    if title:
        axis.set_title(title, fontsize=9)
    return figure


def map_range(prediction: ClipPrediction) -> tuple[float, float]:
    """Colour scale of a clip's maps: from their lowest value to as far above the threshold.

    Parameters
    ----------
    prediction : ClipPrediction
        The clip's prediction.

    Returns
    -------
    tuple of float
        (low, high).
    """
    assert prediction.maps is not None
    low = float(prediction.maps.min())
    threshold = prediction.threshold
    return (low, 2.0 * threshold - low) if np.isfinite(threshold) and threshold > low else (low, float(prediction.maps.max()) + 1e-6)


def annotated_frame(frame: np.ndarray, prediction: ClipPrediction, index: int,
                    value_range: tuple[float, float]) -> np.ndarray:
    """The RGB uint8 frame with heat map (if anomalous), border and caption (module doc).

    Parameters
    ----------
    frame : numpy.ndarray
        (H, W, 3) uint8 frame.
    prediction : ClipPrediction
        The clip's prediction.
    index : int
        The frame's index.
    value_range : tuple of float
        Colour scale of the map (`map_range`).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.
    """
    height, width = frame.shape[:2]
    anomalous = bool(prediction.labels[index])
    picture = frame
    if anomalous and prediction.maps is not None:
        heat = cv2.resize(prediction.maps[index], (width, height), interpolation=cv2.INTER_LINEAR)
        blended = overlay(frame.astype(np.float32) / 255.0, heat, value_range, alpha=0.45)
        picture = np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8)
    picture = np.ascontiguousarray(picture)
    if anomalous:
        cv2.rectangle(picture, (0, 0), (width - 1, height - 1), RED, max(2, width // 120))
    caption = f"{index}  score {prediction.scores[index]:.2f}" + ("  ANOMALY" if anomalous else "")
    scale = max(0.35, width / 900)
    cv2.putText(picture, caption, (6, int(18 * scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return picture
