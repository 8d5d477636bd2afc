"""Turning what a user passes (DataFrame, 1-D/2-D array) into a validated float frame.

One policy for missing values, shared by the file readers and by `fit`/`score`: NaN inside a
channel are filled by linear interpolation over the index (time-weighted for a DatetimeIndex),
NaN at either end by the nearest valid value, and every fill is reported. Infinite values, a
channel with no valid value at all and non-numeric channels are errors naming the column.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from oddity.core.errors import DataError


def fill_missing(frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[str]]:
    """`frame` with NaN filled (see module docstring) and one note per column that had any.

    Parameters
    ----------
    frame : pandas.DataFrame
        Float channels.
    source : str
        What it is, for the notes.

    Returns
    -------
    tuple
        (filled frame, list of notes).
    """
    notes: list[str] = []
    filled = frame.copy()
    method = "time" if isinstance(frame.index, pd.DatetimeIndex) else "index"
    for column in frame.columns:
        missing = int(frame[column].isna().sum())
        if missing == 0:
            continue
        if missing == len(frame):
            raise DataError(f"{source}: column {column!r} has no numeric value at all")
        series = frame[column]
        if not series.index.is_unique:
            series = series.reset_index(drop=True)
            method_used = "linear"
        else:
            method_used = method
        interpolated = series.interpolate(method=method_used, limit_direction="both")
        filled[column] = interpolated.to_numpy()
        notes.append(f"{missing} NaN in column {column!r} filled by linear interpolation "
                     "(nearest value at the ends)")
    return filled, notes


def as_frame(data: pd.DataFrame | np.ndarray, source: str = "data") -> pd.DataFrame:
    """A float64 DataFrame (one column per channel, index kept) from a DataFrame or a 1-D
    (one channel, named 'value') or 2-D (T, C) array (channels named 'channel_0', ...).
    NaN are filled with a warning per column; bad input raises DataError naming `source`.

    Parameters
    ----------
    data : pandas.DataFrame, pandas.Series or numpy.ndarray
        The series.
    source : str, default "data"
        What it is, for messages.

    Returns
    -------
    pandas.DataFrame
        Float64 channels, NaN filled.

    Raises
    ------
    DataError
        If it is empty, not numeric or of the wrong shape.
    """
    if isinstance(data, pd.Series):
        data = data.to_frame(name=data.name if data.name is not None else "value")
    if isinstance(data, (np.ndarray, list)):
        array = np.asarray(data)
        if array.ndim == 1:
            array = array[:, None]
            columns = ["value"]
        elif array.ndim == 2:
            columns = [f"channel_{i}" for i in range(array.shape[1])]
        else:
            raise DataError(f"{source}: a series array must be 1-D (T,) or 2-D (T, C), "
                            f"got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
            raise DataError(f"{source}: array of dtype {array.dtype} is not numeric")
        data = pd.DataFrame(array.astype(np.float64), columns=columns)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame or a numpy array, "
                        f"got {type(data).__name__}")
    if data.shape[1] == 0:
        raise DataError(f"{source}: no value column")
    for column in data.columns:
        if not (pd.api.types.is_numeric_dtype(data[column]) or pd.api.types.is_bool_dtype(data[column])):
            raise DataError(f"{source}: column {column!r} is not numeric (dtype "
                            f"{data[column].dtype}); drop it or pass value_columns")
    frame = data.astype(np.float64)
    frame.columns = [str(c) for c in frame.columns]
    infinite = [c for c in frame.columns if np.isinf(frame[c].to_numpy()).any()]
    if infinite:
        raise DataError(f"{source}: column {infinite[0]!r} contains infinite values")
    frame, notes = fill_missing(frame, source)
    for note in notes:
        warnings.warn(f"{source}: {note}", stacklevel=3)
    return frame
