"""Parts shared by the benchmark runners (`benchmarks/run_*.py`): one run in a fresh Python
process, the command line a results file quotes, the loop over runs that merges re-measured
rows into the earlier ones, table cells, and writing the result files atomically."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, TypeVar

from oddity.core.persistence import atomic_write


class Keyed(Protocol):
    """A benchmark run that `merge_runs` matches on its `key`."""

    @property
    def key(self) -> Any:
        """What identifies the run (dataset, detector, settings)."""
        ...


R = TypeVar("R", bound=Keyed)


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """Detector settings from "name=value" items, each value read as JSON where it is JSON
    (numbers, true/false, lists) and kept as text otherwise, as the runners' `--set` options.

    Parameters
    ----------
    items : sequence of str
        "name=value" items.

    Returns
    -------
    dict
        Setting name to value.

    Examples
    --------
    >>> parse_settings(["steps=200", "perspective=true", "backbone=efficientnet_lite0"])
    {'steps': 200, 'perspective': True, 'backbone': 'efficientnet_lite0'}
    """
    settings: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            settings[key] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw
    return settings


def candidate_settings(text: str) -> dict[str, Any]:
    """One benchmark candidate written on the command line: "defaults" -> {}, "a=1,b=true" ->
    {"a": 1, "b": True} (`parse_settings` of its comma-separated items).

    Parameters
    ----------
    text : str
        The candidate.

    Returns
    -------
    dict
        Its settings.
    """
    return {} if text == "defaults" else parse_settings(text.split(","))


def run_in_child(worker: str, arguments: list[Any], timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    """Call `worker` (``"package.module:function"``) with `arguments` in a fresh Python process.

    A fresh process makes peak RSS (the child's ``ru_maxrss``) and timings belong to that run
    alone. The worker returns a JSON-serialisable dict.

    Parameters
    ----------
    worker : str
        The function to call, as ``"module:function"``.
    arguments : list
        Its positional arguments (JSON-serialisable).
    timeout : float
        Seconds before the child is stopped.

    Returns
    -------
    tuple
        (the worker's result, None), or (None, a one-line error) when the child failed or
        timed out.
    """
    module, function = worker.split(":")
    code = (f"import json, sys; from {module} import {function}; "
            f"print('@@' + json.dumps({function}(*json.loads(sys.argv[1]))))")
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps(arguments)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode != 0 or not lines:
        return None, (done.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(lines[-1][2:]), None


def command_line(script: str, argv: Sequence[str], make_target: str | None = "make bench") -> str:
    """The command a results file says to run.

    `make_target` when the runner was called with no option, else
    ``python benchmarks/<script> <options>``.

    Parameters
    ----------
    script : str
        The runner's file name in `benchmarks/`.
    argv : sequence of str
        The options it was called with.
    make_target : str or None, default "make bench"
        The command quoted when `argv` is empty; None to always quote the script.

    Returns
    -------
    str
        The command, options shell-quoted.

    Examples
    --------
    >>> command_line("run_image.py", [])
    'make bench'
    >>> command_line("run_image.py", ["--detectors", "padim"])
    'python benchmarks/run_image.py --detectors padim'
    """
    if not argv and make_target:
        return make_target
    return " ".join([f"python benchmarks/{script}", *(shlex.quote(a) for a in argv)])


def merge_runs(previous: list[R], new: list[R]) -> list[R]:
    """`previous` with re-measured runs replaced and the other new runs appended.

    A run is replaced by a new run of the same key (dataset, detector, settings), so that one
    row can be re-measured alone.

    Parameters
    ----------
    previous : list
        Runs read from the earlier results, each with a `key`.
    new : list
        Runs just measured.

    Returns
    -------
    list
        The merged runs, in `previous`'s order, then the new keys in `new`'s order.
    """
    fresh = {run.key: run for run in new}
    kept = [fresh.pop(run.key, run) for run in previous]
    return kept + list(fresh.values())


def read_runs(out_dir: str | os.PathLike, stem: str, run_type: Callable[..., R]) -> list[R]:
    """The runs recorded in `out_dir`/`stem`.json (none when there is no such file).

    Parameters
    ----------
    out_dir : str or os.PathLike
        The results folder.
    stem : str
        The results file's name without its suffix.
    run_type : callable
        Builds one run from its recorded fields (the run's dataclass).

    Returns
    -------
    list
        The recorded runs.
    """
    path = Path(out_dir) / f"{stem}.json"
    return [run_type(**fields) for fields in json.loads(path.read_text())["runs"]] if path.is_file() else []


def merging_writer(out_dir: str | os.PathLike, stem: str, run_type: Callable[..., R],
                   page: Callable[[list[R]], str]) -> Callable[[list[R]], None]:
    """A `run_all` writer that merges its runs into `out_dir`/`stem`.json as the file is at
    that moment (so that runners working in parallel keep each other's rows) and writes the
    JSON and `page` of the merged runs as `stem`.md, atomically.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The results folder.
    stem : str
        The results files' name without suffix.
    run_type : callable
        The runs' dataclass (see `read_runs`).
    page : callable
        The Markdown page of a list of runs.

    Returns
    -------
    callable
        Writes a list of runs.
    """
    def write(runs: list[R]) -> None:
        merged = merge_runs(read_runs(out_dir, stem, run_type), runs)
        document = {"cpu_count": os.cpu_count(), "runs": [asdict(run) for run in merged]}
        write_files(out_dir, {f"{stem}.json": json.dumps(document, indent=2, default=float),
                              f"{stem}.md": page(merged)})

    return write


def cell(value: Any, digits: int = 3) -> str:
    """A table cell: floats with `digits` decimals, None as a dash.

    Parameters
    ----------
    value : object
        The value; anything but a float or None is shown with `str`.
    digits : int, default 3
        Decimals of a float.

    Returns
    -------
    str

    Examples
    --------
    >>> cell(0.98765), cell(12.0, 1), cell(None)
    ('0.988', '12.0', '–')
    """
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_files(out_dir: str | os.PathLike, texts: dict[str, str]) -> None:
    """Write each `texts` entry into `out_dir` atomically.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder of the result files.
    texts : dict of str to str
        File name -> text.
    """
    out = Path(out_dir)
    for name, text in texts.items():
        atomic_write(out / name, lambda tmp, text=text: Path(tmp).write_text(text))


def run_all(jobs: Iterable[tuple[str, Callable[[], R]]], previous: list[R], command: str,
            write: Callable[[list[R]], None], describe: Callable[[R], str]) -> list[R]:
    """Run each (label, job) in turn, printing the label and `describe(run)`.

    After every run the results so far, merged into `previous`, are written with `write`, so
    an interrupted benchmark keeps what it measured.

    Parameters
    ----------
    jobs : iterable of (str, callable)
        Label and a function measuring one run.
    previous : list
        Runs read from the earlier results (see `merge_runs`).
    command : str
        Command line to record on each new run (`command_line`).
    write : callable
        Writes the merged runs (called after every run).
    describe : callable
        One-line summary of a run, printed.

    Returns
    -------
    list
        The new runs, each with ``command`` set.
    """
    runs: list[R] = []
    for label, job in jobs:
        print(f"{label} ...", flush=True)
        run = job()
        run.command = command  # type: ignore[attr-defined]
        print(f"  {describe(run)}", flush=True)
        runs.append(run)
        write(merge_runs(previous, runs))
    return runs
