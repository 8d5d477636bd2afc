"""Reading time series from CSV and Parquet files, and the Numenta Anomaly Benchmark layout.

`read_series` returns a float DataFrame (DatetimeIndex when the file has a time column, else
a RangeIndex; one column per channel) and a `SeriesReport` saying what was done to the data:
rows sorted or de-duplicated, NaN filled (`oddity.series.frames.fill_missing`), the sampling
step, irregular steps and gaps. Detectors treat rows as equally spaced steps; pass
`resample=True` to put an irregular series on a regular grid (median step, values
interpolated in time) first. Bad input raises DataError naming the file and column.

`read_nab` reads NAB (Lavin and Ahmad, "Evaluating Real-time Anomaly Detection Algorithms -
the Numenta Anomaly Benchmark", IEEE ICMLA 2015, https://arxiv.org/abs/1510.03336):
`data/<group>/<name>.csv` (timestamp, value) and `labels/combined_windows.json` (anomaly
windows, both ends inclusive); the probationary period is min(floor(0.15 * length), 750)
steps, as in NAB's scorer and detectors (`oddity.metrics.nab.probationary_length`).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from oddity.core.errors import ConfigError, DataError
from oddity.metrics.nab import probationary_length
from oddity.series.frames import fill_missing

TIME_NAMES = ("timestamp", "time", "datetime", "date", "ds")
GAP_FACTOR = 5.0  # a step longer than this many median steps is reported as a gap


@dataclass
class SeriesReport:
    """What `read_series` found and did; `notes` lists it in words, one line each."""

    source: str
    length: int
    columns: list[str]
    time_column: str | None
    median_step: pd.Timedelta | None = None
    gaps: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    filled: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if path.is_dir():
        raise DataError(f"{path}: is a folder; a series is read from one CSV, TSV or Parquet file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)  # a time index saved with the frame becomes a column
            return table.reset_index() if isinstance(table.index, pd.DatetimeIndex) else table
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable {suffix[1:]} table ({exc})") from None
    raise DataError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")


def _find_time_column(table: pd.DataFrame, given: str | None, source: str) -> str | None:
    """The time column: `given`, else a column with a usual time name, else a first column
    of datetime type or of text that is not numbers; None when there is none."""
    if given is not None:
        if given not in table.columns:
            raise DataError(f"{source}: no time column {given!r}; columns are {list(table.columns)}")
        return given
    for column in table.columns:
        if str(column).strip().lower() in TIME_NAMES:
            return column
    first = table.columns[0]
    if pd.api.types.is_datetime64_any_dtype(table[first]):
        return first
    if not pd.api.types.is_numeric_dtype(table[first]) and pd.to_numeric(table[first], errors="coerce").isna().all():
        return first
    return None


_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"


def _bad_time(values: pd.Series, row: int, column: str, source: str, why: str) -> DataError:
    shown = "" if pd.isna(values.iloc[row]) else f" {values.iloc[row]!r}"
    return DataError(f"{source}: column {column!r}, row {row + 1}: {why}{shown}; write every "
                     "timestamp, in one format (ISO 8601, e.g. 2024-01-31 13:45:00)")


def _strict(text: pd.Series, **options) -> pd.DatetimeIndex | None:
    """`text` parsed with one format for every row (inferred from the first row unless
    `format` is given), or None when some row does not fit it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return pd.DatetimeIndex(pd.to_datetime(text, **options))
    except (ValueError, OverflowError, TypeError):
        return None


def _parse_times(values: pd.Series, column: str, source: str,
                 dayfirst: bool | None) -> tuple[pd.DatetimeIndex, list[str]]:
    """Timestamps of the time column and notes on how they were read. Text is read with one
    format for all rows: ISO 8601 if every row is, else a format inferred from the first row,
    month-first and day-first both tried; when both orders read every row but disagree (e.g.
    01/02/2024), `dayfirst` decides, else the only order that puts the rows in time order, else
    a DataError. Numbers are refused (no unit is guessed), as are mixed formats and timestamps
    with a UTC offset beside ones without."""
    notes: list[str] = []
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise _bad_time(values, row, column, source, "the timestamp is missing")
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.DatetimeIndex(pd.to_datetime(values), name=column), notes
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise DataError(f"{source}: time column {column!r} holds numbers (row 1: {values.iloc[0]}); "
                        "oddity does not guess their unit: write ISO 8601 timestamps, or name no "
                        "time column to number the rows")
    text = values.astype(str).str.strip()
    offsets = text.str.contains(_OFFSET, regex=True)
    if offsets.any() and not offsets.all():
        row = int(np.flatnonzero(~offsets.to_numpy())[0])
        raise _bad_time(values, row, column, source, "timestamps with a UTC offset beside one without:")
    utc = bool(offsets.all())
    times = _strict(text, format="ISO8601", utc=utc)
    if times is None:
        orders = [dayfirst] if dayfirst is not None else [False, True]
        found = {order: _strict(text, dayfirst=order, utc=utc) for order in orders}
        found = {order: parsed for order, parsed in found.items() if parsed is not None}
        if not found:
            loose = pd.to_datetime(text, errors="coerce", format="mixed", utc=utc)
            if loose.isna().any():
                row = int(np.flatnonzero(loose.isna().to_numpy())[0])
                raise _bad_time(values, row, column, source, "cannot parse")
            first = pd.to_datetime(text, errors="coerce", utc=utc)
            row = int(np.flatnonzero(first.isna().to_numpy())[0]) if first.isna().any() else 0
            raise _bad_time(values, row, column, source, f"format differs from row 1 ({text.iloc[0]!r}):")
        if len(found) == 2 and not found[False].equals(found[True]):
            ordered = [order for order, parsed in found.items() if parsed.is_monotonic_increasing]
            differs = int(np.flatnonzero(found[False] != found[True])[0])
            example = f"{text.iloc[differs]!r} reads as {found[False][differs]:%Y-%m-%d} or {found[True][differs]:%Y-%m-%d}"
            if len(ordered) != 1:
                raise DataError(f"{source}: column {column!r}: ambiguous dates ({example}) and both "
                                "orders are plausible; write ISO 8601 dates (YYYY-MM-DD) or pass "
                                "dayfirst=True/False (--dates day-first or month-first)")
            notes.append(f"ambiguous dates ({example}) read {'day' if ordered[0] else 'month'}-first, "
                         "the only order that puts the rows in time order")
            found = {ordered[0]: found[ordered[0]]}
        times = next(iter(found.values()))
    if utc:
        notes.append("timestamps carry UTC offsets: converted to UTC")
    return pd.DatetimeIndex(times, name=column), notes


def _numeric(table: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    frame = pd.DataFrame(index=table.index)
    for column in columns:
        values = table[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            frame[str(column)] = values.astype(np.float64)
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: column {column!r} is not numeric (row {row + 1}: "
                            f"{values.iloc[row]!r}); drop it or choose value_columns")
        frame[str(column)] = numbers.astype(np.float64)
    return frame


def _sampling(frame: pd.DataFrame, report: SeriesReport) -> None:
    """Median step, irregular steps and gaps of a time-indexed frame, into the report."""
    steps = frame.index.to_series().diff().iloc[1:]
    if steps.empty:
        return
    median = steps.median()
    report.median_step = median
    if median <= pd.Timedelta(0):
        return
    irregular = int((steps != median).sum())
    if irregular:
        report.notes.append(f"irregular sampling: {irregular} of {len(steps)} steps differ from "
                            f"the median step {median} (detectors treat rows as equal steps; "
                            "resample=True puts them on a regular grid)")
    long = steps > GAP_FACTOR * median
    report.gaps = [(frame.index[i], frame.index[i + 1]) for i in np.flatnonzero(long.to_numpy())]
    if report.gaps:
        report.notes.append(f"{len(report.gaps)} gaps longer than {GAP_FACTOR:g}x the median "
                            f"step; the longest is {steps.max()}")


def _regular_grid(frame: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """`frame` interpolated in time onto a regular grid of `step` from its first time."""
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=step, name=frame.index.name)
    union = frame.reindex(frame.index.union(grid)).interpolate(method="time")
    return union.reindex(grid)


def read_series(path: str | os.PathLike, time_column: str | None = None,
                value_columns: list[str] | None = None, *, resample: bool = False,
                min_length: int = 2, dayfirst: bool | None = None) -> tuple[pd.DataFrame, SeriesReport]:
    """Read a CSV/TSV/Parquet series: (frame, report); see the module docstring. `dayfirst`
    settles dates such as 01/02/2024 that read both ways (see `_parse_times`).

    Parameters
    ----------
    path : str or os.PathLike
        A .csv, .tsv or .parquet file.
    time_column : str, optional
        The column of times (found when None).
    value_columns : list of str, optional
        Channels to keep (all numeric ones when None).
    resample : bool, default False
        Put irregular steps on a regular grid.
    min_length : int, default 2
        Fewest steps accepted.
    dayfirst : bool, optional
        Read ambiguous dates day first (True) or month first (False).

    Returns
    -------
    frame : pandas.DataFrame
        One float column per channel over a DatetimeIndex or integer index.
    report : SeriesReport
        How the file was read (time column, dropped rows, notes).

    Raises
    ------
    DataError
        If the file cannot be read as a series.
    """
    path = Path(path)
    return series_from_table(_read_table(path), str(path), time_column, value_columns,
                             resample=resample, min_length=min_length, dayfirst=dayfirst)


def series_from_table(table: pd.DataFrame, source: str, time_column: str | None = None,
                      value_columns: list[str] | None = None, *, resample: bool = False,
                      min_length: int = 2, dayfirst: bool | None = None) -> tuple[pd.DataFrame, SeriesReport]:
    """A series from a table already read (e.g. a CSV body received by the service).

    The table is named `source` in messages; as `read_series` from there on.

    Parameters
    ----------
    table : pandas.DataFrame
        The table as read, one column per field.
    source : str
        Name of the table's origin in messages (a path, or ``"body"``).
    time_column : str, optional
        The column of times (found when None).
    value_columns : list of str, optional
        Channels to keep (every column but the time column when None).
    resample : bool, default False
        Put irregular steps on a regular grid.
    min_length : int, default 2
        Fewest steps accepted.
    dayfirst : bool, optional
        Read ambiguous dates day first (True) or month first (False).

    Returns
    -------
    frame : pandas.DataFrame
        One float column per channel over a DatetimeIndex or integer index.
    report : SeriesReport
        How the table was read (time column, dropped rows, notes).

    Raises
    ------
    DataError
        If the table is empty, a named column is absent, there is no value column, fewer
        than `min_length` rows remain or a column holds infinite values.
    """
    if table.empty or len(table.columns) == 0:
        raise DataError(f"{source}: the file has no rows")
    time_name = _find_time_column(table, time_column, source)
    if value_columns is None:
        value_columns = [c for c in table.columns if c != time_name]
    else:
        absent = [c for c in value_columns if c not in table.columns]
        if absent:
            raise DataError(f"{source}: no column {absent[0]!r}; columns are {list(table.columns)}")
    if not value_columns:
        hint = next((f" (columns separated by {sep!r}? oddity reads comma-separated .csv and "
                     "tab-separated .tsv files)" for sep in ";|" if sep in str(table.columns[0])), "")
        raise DataError(f"{source}: no value column besides the time column {time_name!r}{hint}")
    frame = _numeric(table, list(value_columns), source)
    report = SeriesReport(source, len(frame), list(frame.columns), time_name)
    if time_name is not None:
        frame.index, time_notes = _parse_times(table[time_name], str(time_name), source, dayfirst)
        report.notes.extend(time_notes)
        backwards = np.flatnonzero(np.diff(frame.index.asi8) < 0)
        if len(backwards):
            frame = frame.sort_index(kind="stable")
            report.notes.append(f"rows were not in time order: {len(backwards)} rows earlier than the "
                                f"row before (first: row {backwards[0] + 2}, "
                                f"{table[time_name].iloc[backwards[0] + 1]!r}); sorted by time")
        duplicated = frame.index.duplicated()
        if duplicated.any():
            first = frame.index[np.flatnonzero(duplicated)[0]]
            frame = frame[~duplicated]
            report.notes.append(f"{int(duplicated.sum())} rows with a repeated timestamp dropped "
                                f"(first: {first}; the first row of each timestamp kept)")
    else:
        frame = frame.reset_index(drop=True)
        report.notes.append("no time column: rows are numbered steps")
    report.filled = {c: int(n) for c, n in frame.isna().sum().items() if n}
    frame, fill_notes = fill_missing(frame, source)
    report.notes.extend(fill_notes)
    if time_name is not None:
        _sampling(frame, report)
        if resample and report.median_step is not None and report.median_step > pd.Timedelta(0):
            before = len(frame)
            frame = _regular_grid(frame, report.median_step)
            report.notes.append(f"resampled to a regular {report.median_step} grid: "
                                f"{before} rows -> {len(frame)} rows")
    report.length = len(frame)
    if len(frame) < min_length:
        raise DataError(f"{source}: {len(frame)} rows; at least {min_length} are needed")
    infinite = [c for c in frame.columns if np.isinf(frame[c].to_numpy()).any()]
    if infinite:
        raise DataError(f"{source}: column {infinite[0]!r} contains infinite values")
    return frame, report


def split_series(frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(first floor(fraction * T) steps, the rest): a time-ordered train/test split.

    Parameters
    ----------
    frame : pandas.DataFrame
        The series.
    fraction : float
        Share of the steps in the first part.

    Returns
    -------
    tuple of pandas.DataFrame
        (first part, rest).
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"split fraction must lie in (0, 1), got {fraction}")
    cut = math.floor(fraction * len(frame))
    return frame.iloc[:cut], frame.iloc[cut:]


@dataclass
class NabSeries:
    """One NAB series with its labels. `name` is 'group/file.csv' as in NAB's label files;
    `labels` marks the steps inside an anomaly window; the first `probationary` steps are the
    history detectors may fit on."""

    name: str
    group: str
    frame: pd.DataFrame
    windows: list[tuple[pd.Timestamp, pd.Timestamp]]
    labels: np.ndarray
    probationary: int

    @property
    def history(self) -> pd.DataFrame:
        """The probationary period: the part a detector fits on."""
        return self.frame.iloc[:self.probationary]


def window_labels(index: pd.DatetimeIndex, windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    """Per-step labels: True where the time lies inside a window (both ends inclusive).

    Parameters
    ----------
    index : pandas.DatetimeIndex
        The series' times.
    windows : list of tuple of pandas.Timestamp
        (start, end) of each labelled window.

    Returns
    -------
    numpy.ndarray
        (T,) bool labels.
    """
    labels = np.zeros(len(index), bool)
    for start, end in windows:
        labels |= np.asarray((index >= start) & (index <= end))
    return labels


def read_nab(root: str | os.PathLike) -> list[NabSeries]:
    """All series of a NAB folder, sorted by name (see the module docstring).

    Parameters
    ----------
    root : str or os.PathLike
        A NAB checkout (data/ and labels/).

    Returns
    -------
    list of NabSeries
        The series with their labels and probationary period.

    Raises
    ------
    DataError
        If the folder is not a NAB layout or a file cannot be read.
    """
    root = Path(root)
    labels_path = root / "labels" / "combined_windows.json"
    if not (root / "data").is_dir() or not labels_path.is_file():
        raise DataError(f"{root}: not a NAB folder (needs data/<group>/<name>.csv and "
                        "labels/combined_windows.json)")
    try:
        all_windows = json.loads(labels_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{labels_path}: unreadable ({exc})") from None
    series = []
    for path in sorted((root / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        if name not in all_windows:
            raise DataError(f"{labels_path}: no entry for {name}; add one (an empty list if the "
                            "series has no anomaly)")
        frame, _ = read_series(path, time_column="timestamp", value_columns=["value"])
        windows = [(pd.Timestamp(start), pd.Timestamp(end)) for start, end in all_windows[name]]
        series.append(NabSeries(name=name, group=path.parent.name, frame=frame, windows=windows,
                                labels=window_labels(frame.index, windows),
                                probationary=probationary_length(len(frame))))
    if not series:
        raise DataError(f"{root / 'data'}: no CSV files in any group folder")
    return series
