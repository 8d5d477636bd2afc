"""Plots of log predictions: the score of each sequence in order, with the threshold."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from oddity.logs.results import LogPrediction
from oddity.plots import ANOMALOUS_COLOUR, NORMAL_COLOUR, THRESHOLD_COLOUR


def timeline_figure(prediction: LogPrediction, title: str) -> Figure:
    """Sequence scores in file order; anomalous ones in red, the threshold as a line.

    Parameters
    ----------
    prediction : LogPrediction
        The prediction.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    figure = Figure(figsize=(8.0, 3.0), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(prediction))
    axes.plot(x, prediction.scores, color=NORMAL_COLOUR, linewidth=0.8)
    axes.scatter(x[prediction.labels], prediction.scores[prediction.labels], color=ANOMALOUS_COLOUR,
                 s=10, zorder=3, label="anomalous")
    axes.axhline(prediction.threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=0.8,
                 label="threshold")
    axes.set_xlabel("sequence (file order)")
    axes.set_ylabel("score")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8, loc="upper right")
    return figure
