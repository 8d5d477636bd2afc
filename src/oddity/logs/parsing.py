"""From a log file to templates and sequences: read, mask, mine or match, group.

Fitting makes two streamed passes over the file: the first mines templates (`learn`), the
second matches every line against the final templates and groups the lines. Templates a line
was mined into may still be generalised by later lines; the second pass gives every line the
template it has at the end, which is also what scoring a new file gives (match-only), so fit
and predict see the same events. Memory stays bounded by the templates (and, when grouping,
by the sequences themselves), never by the file.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from tqdm import tqdm

from oddity.logs.data import LogLine, ReadReport, read_log
from oddity.logs.grouping import Grouping
from oddity.logs.parser import TemplateParser
from oddity.logs.results import LogSequences


@dataclass(frozen=True)
class LogSource:
    """How to read a log file (JSON-friendly; saved in log models so that predict reads new
    files the same way): see `oddity.logs.data.read_log`."""

    format: str | None = None
    content_field: str | None = None
    label_field: str | None = None
    encoding: str = "utf-8"

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-serialisable data.

        Returns
        -------
        dict
            Field name to value.
        """
        return asdict(self)

    def lines(self, path: str | os.PathLike, report: ReadReport, verbose: bool = False,
              description: str = "reading") -> Iterator[LogLine]:
        """Stream the lines of `path` (see `read_log`), with a progress bar when `verbose`.

        Parameters
        ----------
        path : str or os.PathLike
            The log file.
        report : ReadReport
            Filled while reading.
        verbose : bool, default False
            Show a progress bar.
        description : str, default "reading"
            Label of the progress bar.

        Yields
        ------
        LogLine
            The parsed lines.
        """
        lines = read_log(path, format=self.format, content_field=self.content_field,
                         label_field=self.label_field, encoding=self.encoding, report=report)
        return iter(tqdm(lines, desc=f"{description} {os.path.basename(path)}", unit=" lines",
                         disable=not verbose, mininterval=1.0))


def mine(path: str | os.PathLike, source: LogSource, parser: TemplateParser,
         verbose: bool = False) -> ReadReport:
    """Mine the templates of `path` into `parser` (first pass); the reader's report.

    Parameters
    ----------
    path : str or os.PathLike
        The log file.
    source : LogSource
        How its lines are read (format, masking).
    parser : TemplateParser
        The template miner.
    verbose : bool, default False
        Show a progress bar.

    Returns
    -------
    ReadReport
        Lines read, skipped and why.
    """
    report = ReadReport(str(path))
    for line in source.lines(path, report, verbose, "mining"):
        parser.learn(line.content)
    return report


def matched(path: str | os.PathLike, source: LogSource, parser: TemplateParser,
            report: ReadReport, verbose: bool = False) -> Iterator[tuple[LogLine, str]]:
    """Stream (line, template text) of `path`, matched against the known templates only;
    a line matching none gets `<unseen>` and is counted in `parser.unseen`.

    Parameters
    ----------
    path : str or os.PathLike
        The log file.
    source : LogSource
        How its lines are read (format, masking).
    parser : TemplateParser
        The template miner.
    report : ReadReport
        Filled while reading.
    verbose : bool, default False
        Show a progress bar.

    Yields
    ------
    tuple
        (line, template text).
    """
    texts: dict[int, str] = {}
    for line in source.lines(path, report, verbose, "matching"):
        template_id = parser.match(line.content)
        if template_id not in texts:
            texts[template_id] = parser.template(template_id)
        yield line, texts[template_id]


def sequences_of(path: str | os.PathLike, source: LogSource, parser: TemplateParser,
                 grouping: Grouping, session_labels: dict[str, int] | None = None,
                 verbose: bool = False, contents: bool = False) -> tuple[LogSequences, ReadReport]:
    """The sequences of `path` (matched against `parser`'s templates) and the read report.

    Parameters
    ----------
    path : str or os.PathLike
        The log file.
    source : LogSource
        How its lines are read (format, masking).
    parser : TemplateParser
        The template miner.
    grouping : Grouping
        How lines form sequences (sessions or windows).
    session_labels : dict, optional
        Session id to 0/1 label.
    verbose : bool, default False
        Show a progress bar.
    contents : bool, default False
        Keep each event's message in the sequences (see `Grouping.group`).

    Returns
    -------
    tuple
        (LogSequences, ReadReport).
    """
    report = ReadReport(str(path))
    sequences = grouping.group(matched(path, source, parser, report, verbose), session_labels, contents)
    return sequences, report

