"""Readers of log files: raw lines with a format string, loghub structured CSVs, JSON lines.

Every reader streams: it yields one `LogLine` at a time and keeps only counters and a few
examples in its `ReadReport`, so a file of any size is read in bounded memory. Assumptions are
checked, never guessed around: an empty file, bytes that are not in the stated encoding, and a
format string that fits none of the first lines are errors naming the file, the line and the
fix; single lines that do not fit are counted and the first few kept as examples.

Line labels (BGL, Thunderbird): when `label_field` names a field (a format field such as
`<Label>`, a CSV column or a JSON key), the value `-` (loghub's mark of a normal line, or
`normal_value`) gives label 0 and anything else 1 (an alert tag).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from oddity.core.errors import ConfigError, DataError
from oddity.logs.formats import LineFormat
from oddity.logs.results import LogSequences

EXAMPLES = 5          # unparseable lines kept as examples
PROBE_LINES = 1000    # a format that fits none of the first PROBE_LINES lines is an error


@dataclass(slots=True)
class LogLine:
    """One log message: its 1-based line (or record) number, header fields, content, label."""

    number: int
    content: str
    fields: dict[str, str] = field(default_factory=dict)
    label: int | None = None


@dataclass
class ReadReport:
    """What a reader saw: lines read, parsed, skipped (with the first examples)."""

    source: str
    lines: int = 0
    parsed: int = 0
    blank: int = 0
    unparsed: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, number: int, text: str) -> None:
        """Count a line that does not fit the format, keeping a few examples.

        Parameters
        ----------
        number : int
            Its line number.
        text : str
            The line.
        """
        self.unparsed += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((number, text[:200]))

    def summary(self) -> str:
        """One line, e.g. 'app.log: 2000 lines, 1998 parsed, 2 not fitting the format'.

        Returns
        -------
        str
            The line.
        """
        text = f"{self.source}: {self.lines} lines, {self.parsed} parsed"
        if self.unparsed:
            text += f", {self.unparsed} not fitting the format (first at line {self.examples[0][0]})"
        if self.blank:
            text += f", {self.blank} blank"
        return text


def _label(value: str | None, normal_value: str, source: str, number: int) -> int | None:
    if value is None:
        raise DataError(f"{source}:{number}: no label field in this record")
    return 0 if value.strip() == normal_value else 1


def _text_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of a text file, decoded strictly, line endings removed."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a log file") from None
    with handle:
        empty = True
        for number, raw in enumerate(handle, 1):
            empty = False
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid {encoding} ({exc.reason} at byte "
                                f"{exc.start} of the line); give the right --encoding, "
                                "e.g. --encoding latin-1") from None
            except LookupError:
                raise ConfigError(f"--encoding {encoding!r}: unknown encoding") from None
            yield number, text.rstrip("\r\n")
        if empty:
            raise DataError(f"{path}: the file is empty")


def read_raw(path: str | os.PathLike, format: str = "<Content>", *, encoding: str = "utf-8",
             label_field: str | None = None, normal_value: str = "-",
             report: ReadReport | None = None) -> Iterator[LogLine]:
    """Stream the lines of a raw log file split by a loghub-style format string.

    Parameters
    ----------
    path : path-like
        The log file.
    format : str
        Format string (`oddity.logs.formats`); the default takes each whole line as content.
    encoding : str
        Text encoding of the file (checked strictly).
    label_field : str, optional
        Format field holding a line label (`-` = normal, anything else = alert).
    normal_value : str
        The label value of a normal line.
    report : ReadReport, optional
        Filled while reading (counts and unparseable examples).

    Returns
    -------
    iterator of LogLine

    Raises
    ------
    DataError
        Empty file, wrong encoding, or a format that fits none of the first lines.
    """
    path = Path(path)
    line_format = LineFormat(format)
    if label_field is not None and label_field not in line_format.fields:
        raise ConfigError(f"--label-field {label_field!r}: not a field of --format {format!r} "
                          f"(fields: {', '.join(line_format.fields)})")
    report = report if report is not None else ReadReport(str(path))
    first: tuple[int, str] | None = None
    for number, text in _text_lines(path, encoding):
        report.lines += 1
        if not text or text.isspace():
            report.blank += 1
            continue
        fields = line_format.split(text)
        if fields is None:
            first = first or (number, text)
            report.skip(number, text)
            if report.parsed == 0 and report.unparsed >= PROBE_LINES:
                _no_fit(path, format, first)
            continue
        report.parsed += 1
        content = fields.pop("Content")
        label = None
        if label_field is not None:
            label = _label(fields.get(label_field), normal_value, str(path), number)
        yield LogLine(number, content, fields, label)
    if report.parsed == 0:
        if first is None:
            raise DataError(f"{path}: only blank lines")
        _no_fit(path, format, first)


def _no_fit(path: Path, format: str, first: tuple[int, str]) -> None:
    raise DataError(f"{path}: --format {format!r} fits none of the lines; line {first[0]} is "
                    f"{first[1][:200]!r}; write the format to match it (see docs/logs.md)")


def read_structured(path: str | os.PathLike, *, content_column: str = "Content",
                    label_field: str | None = None, normal_value: str = "-",
                    encoding: str = "utf-8", report: ReadReport | None = None) -> Iterator[LogLine]:
    """Stream a loghub structured CSV (`LineId`, header columns, `Content`, ...).

    Parameters
    ----------
    path : path-like
        The CSV file, with a header row.
    content_column : str
        The column holding the message.
    label_field : str, optional
        Column holding a line label (`-` = normal).
    normal_value : str
        The label value of a normal line.
    encoding : str
        Text encoding.
    report : ReadReport, optional
        Filled while reading.

    Returns
    -------
    iterator of LogLine

    Raises
    ------
    DataError
        Empty file, wrong encoding, or a missing content or label column.
    """
    path = Path(path)
    report = report if report is not None else ReadReport(str(path))
    lines = (text for _, text in _text_lines(path, encoding))
    reader = csv.DictReader(lines)
    columns = reader.fieldnames or []
    for needed in (content_column, label_field):
        if needed is not None and needed not in columns:
            raise DataError(f"{path}: no column {needed!r} (columns: {', '.join(columns)}); "
                            "name the message column with --content-field")
    for number, row in enumerate(reader, 1):
        report.lines += 1
        content = row.pop(content_column)
        if content is None:
            report.skip(number, ",".join(v or "" for v in row.values()))
            continue
        report.parsed += 1
        label = _label(row.get(label_field), normal_value, str(path), number) if label_field else None
        number = int(row["LineId"]) if (row.get("LineId") or "").isdigit() else number
        yield LogLine(number, content, {k: v or "" for k, v in row.items() if k is not None}, label)


def read_jsonl(path: str | os.PathLike, *, content_field: str = "message",
               label_field: str | None = None, normal_value: str = "-",
               encoding: str = "utf-8", report: ReadReport | None = None) -> Iterator[LogLine]:
    """Stream a JSON-lines log: one JSON object per line, the message under `content_field`.

    Scalar values of the other keys become the line's fields. Lines that are not JSON objects
    or lack the content key are counted as unparseable.

    Parameters
    ----------
    path : path-like
        The file.
    content_field : str
        Key of the message.
    label_field : str, optional
        Key holding a line label (`-` = normal).
    normal_value : str
        The label value of a normal line.
    encoding : str
        Text encoding.
    report : ReadReport, optional
        Filled while reading.

    Returns
    -------
    iterator of LogLine

    Raises
    ------
    DataError
        Empty or unreadable file, or no line holding the content key.
    """
    path = Path(path)
    report = report if report is not None else ReadReport(str(path))
    first: tuple[int, str] | None = None
    for number, text in _text_lines(path, encoding):
        report.lines += 1
        if not text.strip():
            report.blank += 1
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get(content_field), str):
            first = first or (number, text)
            report.skip(number, text)
            if report.parsed == 0 and report.unparsed >= PROBE_LINES:
                break
            continue
        report.parsed += 1
        content = record.pop(content_field)
        fields = {k: str(v) for k, v in record.items() if isinstance(v, (str, int, float, bool))}
        label = _label(fields.get(label_field), normal_value, str(path), number) if label_field else None
        yield LogLine(number, content, fields, label)
    if report.parsed == 0:
        example = f"; line {first[0]} is {first[1][:200]!r}" if first else ""
        raise DataError(f"{path}: no line is a JSON object with a string {content_field!r}"
                        f"{example}; name the message key with --content-field")


def read_log(path: str | os.PathLike, *, format: str | None = None, content_field: str | None = None,
             label_field: str | None = None, encoding: str = "utf-8",
             report: ReadReport | None = None) -> Iterator[LogLine]:
    """Stream any supported log file, chosen by its name: `.csv` (loghub structured CSV),
    `.jsonl` / `.ndjson` / `.json` (JSON lines), anything else raw text split by `format`
    (default: the whole line is the message).

    Parameters
    ----------
    path : path-like
        The log file.
    format : str, optional
        Format string of a raw log.
    content_field : str, optional
        Message column (CSV, default `Content`) or key (JSON lines, default `message`).
    label_field : str, optional
        Field holding line labels (`-` = normal).
    encoding : str
        Text encoding.
    report : ReadReport, optional
        Filled while reading.

    Returns
    -------
    iterator of LogLine

    Raises
    ------
    ConfigError
        A format string given for a CSV or JSON-lines file.
    DataError
        See the individual readers.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".jsonl", ".ndjson", ".json") and format is not None:
        raise ConfigError(f"--format applies to raw log files; {path} is read as "
                          f"{'CSV' if suffix == '.csv' else 'JSON lines'} (use --content-field)")
    if suffix == ".csv":
        return read_structured(path, content_column=content_field or "Content",
                               label_field=label_field, encoding=encoding, report=report)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(path, content_field=content_field or "message", label_field=label_field,
                          encoding=encoding, report=report)
    return read_raw(path, format or "<Content>", encoding=encoding, label_field=label_field,
                    report=report)


_ANOMALOUS = {"anomaly", "anomalous", "abnormal", "1", "true", "yes"}
_NORMAL = {"normal", "0", "false", "no", "-"}


def read_session_labels(path: str | os.PathLike, encoding: str = "utf-8") -> dict[str, int]:
    """A table of session labels: a CSV whose first column is the session id and second the
    label (Anomaly/Normal, 1/0, true/false), like HDFS's `anomaly_label.csv`.

    Parameters
    ----------
    path : path-like
        The CSV file, with a header row.
    encoding : str
        Text encoding.

    Returns
    -------
    dict
        Session id -> 1 (anomalous) or 0.

    Raises
    ------
    DataError
        Fewer than two columns, or a label that is not one of the accepted values.
    """
    path = Path(path)
    labels: dict[str, int] = {}
    rows = csv.reader(text for _, text in _text_lines(path, encoding))
    header = next(rows, None)
    if header is None or len(header) < 2:
        raise DataError(f"{path}: a labels table needs two columns (session id, label)")
    for number, row in enumerate(rows, 2):
        if not row:
            continue
        value = row[1].strip().lower() if len(row) > 1 else ""
        if value not in _ANOMALOUS | _NORMAL:
            raise DataError(f"{path}:{number}: label {value!r} is not Anomaly/Normal, 1/0 or true/false")
        labels[row[0].strip()] = int(value in _ANOMALOUS)
    return labels


def read_event_sessions(path: str | os.PathLike) -> tuple[LogSequences, list[str]]:
    """Sessions already parsed into templates: a CSV with columns BlockId (or SessionId),
    Label, a split column (`Split*`) and `EventTemplates_json` (the ordered template texts of
    the session as a JSON list), the layout of the shared HDFS sessions file.

    Parameters
    ----------
    path : path-like
        The CSV file.

    Returns
    -------
    (LogSequences, list of str)
        The sessions (labelled) and each session's split name ('' when there is no split column).

    Raises
    ------
    DataError
        Missing columns or a template list that is not a JSON list of strings.
    """
    path = Path(path)
    rows = csv.DictReader(text for _, text in _text_lines(path, "utf-8"))
    columns = rows.fieldnames or []
    id_column = next((c for c in ("BlockId", "SessionId") if c in columns), None)
    split_column = next((c for c in columns if c.startswith("Split")), None)
    if id_column is None or "Label" not in columns or "EventTemplates_json" not in columns:
        raise DataError(f"{path}: needs columns BlockId (or SessionId), Label and "
                        f"EventTemplates_json; found {', '.join(columns)}")
    ids, events, labels, splits = [], [], [], []
    for number, row in enumerate(rows, 2):
        try:
            templates = json.loads(row["EventTemplates_json"])
        except json.JSONDecodeError:
            templates = None
        if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
            raise DataError(f"{path}:{number}: EventTemplates_json is not a JSON list of strings")
        label = row["Label"].strip().lower()
        if label not in _ANOMALOUS | _NORMAL:
            raise DataError(f"{path}:{number}: label {label!r} is not Anomaly/Normal")
        ids.append(row[id_column])
        events.append(templates)
        labels.append(int(label in _ANOMALOUS))
        splits.append(row[split_column] if split_column else "")
    return LogSequences(ids=ids, events=events, labels=np.array(labels, dtype=np.int64)), splits


def read_event_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """A table of categorical events (CSV or Parquet): one row per event, one column per
    entity type (user, host, process, component, template, hour, ...), values as strings.

    Parameters
    ----------
    path : path-like
        `.csv` or `.parquet` file.
    columns : list of str, optional
        The entity columns to keep (default: all).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        Unreadable file, an unknown column, or no rows.
    """
    path = Path(path)
    try:
        frame = (pd.read_parquet(path) if path.suffix.lower() == ".parquet"
                 else pd.read_csv(path, dtype=str, keep_default_na=False))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV/Parquet table ({exc})") from None
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: no column {missing} (columns: {', '.join(map(str, frame.columns))})")
        frame = frame[columns]
    if frame.empty:
        raise DataError(f"{path}: the table has no rows")
    return frame.astype(str)
