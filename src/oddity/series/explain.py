"""`oddity explain`: which lags and covariates drove a forecast model over a time range.

Reads a series file, asks a fitted model with SHAP explanations (`xgb_forecast`) for the top
contributors in [start, end], prints them as a table and, on request, writes a plot: the
explained channel around the range (shaded), over a bar chart of mean |SHAP| per feature
(red: the feature raised the output on average, blue: lowered it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.plots import ANOMALOUS_COLOUR, NORMAL_COLOUR, save_figure
from oddity.series.data import read_series
from oddity.series.detector import SeriesDetector

RAISES_COLOUR, LOWERS_COLOUR = ANOMALOUS_COLOUR, NORMAL_COLOUR
RANGE_COLOUR = "tab:orange"
CONTEXT = 3  # the series panel shows the range and 3 times its length on either side


def parse_bound(text: str | None, index: pd.Index, name: str) -> Any:
    """A range end given on the command line, as a label of `index` (timestamp or integer).

    Parameters
    ----------
    text : str or None
        The option's value.
    index : pandas.Index
        The series' index.
    name : str
        The option, for messages.

    Returns
    -------
    Any
        A timestamp, an integer or None.

    Raises
    ------
    ConfigError
        If the text does not read as a label of that index.
    """
    if text is None:
        return None
    try:
        if isinstance(index, pd.DatetimeIndex):
            stamp = pd.Timestamp(text)
            return stamp.tz_localize(index.tz) if index.tz is not None and stamp.tz is None else stamp
        return int(text)
    except ValueError:
        kind = "a timestamp, e.g. 2014-02-19 10:00" if isinstance(index, pd.DatetimeIndex) else "a step number"
        raise ConfigError(f"--{name} {text!r} is not {kind}") from None


def explanation_figure(frame: pd.DataFrame, table: pd.DataFrame, start: Any, end: Any) -> Figure:
    """The explained channel (or all channels for the anomaly model) around [start, end], the
    range shaded, over horizontal bars of mean |SHAP| per feature, coloured by direction.

    Parameters
    ----------
    frame : pandas.DataFrame
        The series.
    table : pandas.DataFrame
        What `XGBForecast.explain` returned.
    start, end : Any
        The range.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    figure = Figure(figsize=(8.0, 5.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=(2, 3))
    target = str(table["target"].iloc[0])
    columns = [target] if target in frame.columns else list(frame.columns)
    inside = np.arange(len(frame))[frame.index.slice_indexer(start, end)]
    margin = max(CONTEXT * len(inside), 50)
    shown = frame.iloc[max(0, inside[0] - margin): inside[-1] + margin + 1]
    for column in columns:
        top.plot(shown.index, shown[column], linewidth=0.8, label=column, gid="series")
    top.axvspan(frame.index[inside[0]], frame.index[inside[-1]], color=RANGE_COLOUR, alpha=0.3,
                gid="range")
    top.set_title(f"{target}: top {len(table)} contributors in the shaded range", fontsize=9)
    top.legend(fontsize=7, loc="upper left")
    top.tick_params(labelsize=7)
    order = np.arange(len(table))[::-1]
    colours = [RAISES_COLOUR if d == "raises" else LOWERS_COLOUR for d in table["direction"]]
    bottom.barh(order, table["mean_abs_shap"], color=colours, gid="shap")
    bottom.set_yticks(order, table["feature"], fontsize=8)
    bottom.set_xlabel("mean |SHAP| (red: raises the output on average, blue: lowers it)")
    return figure


def explain_file(model_path: str, data_path: str, start: str | None, end: str | None,
                 top: int, target: str | None, plot_path: str | None) -> pd.DataFrame:
    """Run `oddity explain`: print the top contributors, write the plot when asked; return the
    table.

    Parameters
    ----------
    model_path : str
        An xgb_forecast model.
    data_path : str
        The series file.
    start, end : str or None
        The range (open ends when None).
    top : int
        Rows.
    target : str or None
        See `XGBForecast.explain`.
    plot_path : str or None
        PNG to write.

    Returns
    -------
    pandas.DataFrame
        The table.

    Raises
    ------
    ConfigError
        If the model cannot explain or an argument is invalid.
    DataError
        If the plot would overwrite the input file.
    """
    model = oddity.load(model_path)
    if not hasattr(model, "explain"):
        raise ConfigError(f"{model_path}: a {model.name} model has no SHAP explanations; "
                          "fit one with `oddity fit xgb_forecast`")
    assert isinstance(model, SeriesDetector) and model.columns_ is not None
    if plot_path is not None and Path(plot_path).resolve() == Path(data_path).resolve():
        raise DataError(f"--plot {plot_path} would overwrite the input file")
    frame, _ = read_series(data_path, time_column=model.time_column_, value_columns=model.columns_,
                           dayfirst=model.dayfirst_)
    low, high = parse_bound(start, frame.index, "start"), parse_bound(end, frame.index, "end")
    table = model.explain(frame, low, high, top=top, target=target)  # type: ignore[attr-defined]
    print(f"top {len(table)} contributors to {table['target'].iloc[0]!r} "
          f"from {low if low is not None else 'the start'} to {high if high is not None else 'the end'}:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if plot_path is not None:
        save_figure(explanation_figure(frame, table, low, high), plot_path)
        print(f"plot written to {plot_path}")
    return table
