"""The picture of a series prediction: the values with anomalous ranges shaded above, the
anomaly score with its threshold below, on a shared time axis.

Built on `matplotlib.figure.Figure` (no pyplot), saved with `oddity.plots.save_figure`. The
artists carry a `gid` ("series", "score", "threshold", "span", "truth") for tests.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from oddity.plots import ANOMALOUS_COLOUR, NORMAL_COLOUR, THRESHOLD_COLOUR
from oddity.series.results import SeriesPrediction

MAX_CHANNELS = 6  # channels drawn in the upper panel; a note says how many were left out
TRUTH_COLOUR = "tab:green"


def prediction_figure(frame: pd.DataFrame, prediction: SeriesPrediction, title: str = "",
                      truth: list[tuple[Any, Any]] | None = None) -> Figure:
    """Series (up to MAX_CHANNELS channels), predicted anomalous spans (red) and, when given,
    the true anomaly windows `truth` (green outline band), over scores and threshold.

    Parameters
    ----------
    frame : pandas.DataFrame
        The series.
    prediction : SeriesPrediction
        Its prediction.
    title : str, default ""
        Figure title.
    truth : list of tuple, optional
        (start, end) of true anomaly windows.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    figure = Figure(figsize=(9.0, 4.2), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    shown = list(frame.columns[:MAX_CHANNELS])
    for column in shown:
        top.plot(frame.index, frame[column], linewidth=0.7, label=column, gid="series")
    if len(frame.columns) > MAX_CHANNELS:
        top.set_title(f"{title} (first {MAX_CHANNELS} of {len(frame.columns)} channels)", fontsize=9)
    elif title:
        top.set_title(title, fontsize=9)
    for start, end in truth or []:
        top.axvspan(start, end, color=TRUTH_COLOUR, alpha=0.15, gid="truth")
    for start, end in prediction.spans:
        for axis in (top, bottom):
            axis.axvspan(start, end, color=ANOMALOUS_COLOUR, alpha=0.35, linewidth=0.8, gid="span")
    if len(shown) > 1:
        top.legend(fontsize=7, loc="upper left")
    bottom.plot(prediction.index, prediction.scores, color=NORMAL_COLOUR, linewidth=0.7, gid="score")
    thresholds = prediction.thresholds
    if thresholds.size and not np.allclose(thresholds, prediction.threshold):
        shown_thresholds = np.where(np.isfinite(thresholds), thresholds, np.nan)
        bottom.plot(prediction.index, shown_thresholds, color=THRESHOLD_COLOUR, linestyle="--",
                    linewidth=0.8, drawstyle="steps-post", gid="threshold",
                    label="threshold (online calibration)")
    else:
        bottom.axhline(prediction.threshold, color=THRESHOLD_COLOUR, linestyle="--",
                       linewidth=0.8, gid="threshold", label=f"threshold {prediction.threshold:.3g}")
    bottom.set_ylabel("anomaly score")
    bottom.legend(fontsize=7, loc="upper left")
    return figure
