"""The output guard: the rules every file and folder oddity writes goes through.

`oddity.core.persistence.atomic_write` (files) and `staged_directory` (folders) stage each
output in a unique temporary sibling and call `commit` here to move it into place. The rules:

- **Inputs are never outputs.** An output that is an input, lies inside an input folder, holds
  an input, or is the same file under another name (symbolic or hard link) is refused. The
  command names its inputs with `claim`; the Python API has none to protect.
- **Existing outputs are kept** unless overwriting is allowed (`--overwrite`; the Python API
  allows it). An empty folder counts as absent. A replaced output is replaced whole and
  atomically: a file by one rename, a folder by moving the old one aside, renaming the new
  one into place and only then deleting the old one; folders are never merged.
- **A read-only file is never replaced**, whatever the setting: make it writable first.
- **Concurrent runs do not race.** The final move holds an exclusive lock on the parent
  folder: of two runs writing one new output, the second fails with a clear error (or, with
  overwriting allowed, replaces the first one whole).
- **No debris.** Temporaries are named `.NAME.PID.RANDOM.tmp`; those of a process that no
  longer runs (a run killed with SIGKILL) are deleted the next time NAME is written.
- **Permissions follow the umask**: 0666 for files, 0777 for folders, less the umask.
- **Early checks.** `claim` validates every output before a command starts working: not an
  input, not existing without overwrite, not read-only, its folder writable.
"""
from __future__ import annotations

import contextlib
import contextvars
import fcntl
import glob
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from oddity.core.errors import OutputError

PathLike = str | os.PathLike


@dataclass
class OutputPolicy:
    """Inputs to protect and whether existing outputs may be replaced."""

    overwrite: bool = True
    inputs: list[Path] = field(default_factory=list)


_POLICY: contextvars.ContextVar[OutputPolicy] = contextvars.ContextVar("oddity_output_policy",
                                                                        default=OutputPolicy())


@contextlib.contextmanager
def output_policy(overwrite: bool) -> Iterator[OutputPolicy]:
    """Apply a policy to every output written inside the block (the CLI wraps each command:
    `overwrite` is its `--overwrite`); `claim` adds the command's inputs to it.

    Parameters
    ----------
    overwrite : bool
        Allow replacing existing outputs.

    Yields
    ------
    OutputPolicy
        The active policy.
    """
    token = _POLICY.set(OutputPolicy(overwrite=overwrite))
    try:
        yield _POLICY.get()
    finally:
        _POLICY.reset(token)


def umask() -> int:
    """The process umask (read without changing it for longer than one call).

    Returns
    -------
    int
        The umask.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(output: PathLike, inputs: Iterable[PathLike] | None = None) -> None:
    """Raise OutputError if `output` is an input, lies inside an input folder, contains an
    input or is the same file as one (links); `inputs` defaults to the active policy's.

    Parameters
    ----------
    output : path-like
        The output.
    inputs : iterable of path-like, optional
        The inputs (default: the active policy's).

    Raises
    ------
    OutputError
        If the output would touch an input.
    """
    out = Path(output).resolve()
    for item in (_POLICY.get().inputs if inputs is None else inputs):
        source = Path(item).resolve()
        if out == source or _same_file(out, source):
            raise OutputError(f"{output}: this output is the input {item}; oddity never writes over "
                              "an input: choose another output path")
        if (source.is_dir() and source in out.parents) or out in source.parents:
            raise OutputError(f"{output}: output would be written into (or over) the input {item}; "
                              "choose an output location outside the inputs")


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _read_only(path: Path) -> bool:
    return path.is_file() and not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def check_output(path: PathLike, folder: bool, overwrite: bool | None = None) -> None:
    """Raise OutputError unless `path` can take a new file (or folder, `folder=True`): not an
    input, of the right kind, absent (or `overwrite`), not read-only, in a writable folder.

    Parameters
    ----------
    path : path-like
        The output.
    folder : bool
        Whether it is a folder.
    overwrite : bool, optional
        Allow replacing it (default: the active policy's).

    Raises
    ------
    OutputError
        If it may not be written.
    """
    path = Path(path)
    overwrite = _POLICY.get().overwrite if overwrite is None else overwrite
    check_not_input(path)
    kind = "folder" if folder else "file"
    if path.exists() or path.is_symlink():
        if folder and not path.is_dir():
            raise OutputError(f"{path}: exists and is not a folder; give a folder path for this output")
        if not folder and path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file path for this output")
        if _read_only(path):
            raise OutputError(f"{path}: the existing file is read-only and is not replaced; make it "
                              "writable or choose another path")
        if not overwrite and not _is_empty_folder(path):
            raise OutputError(f"{path}: the {kind} exists; pass --overwrite to replace it, or "
                              "choose another path")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: cannot create it, {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write into {parent} (permission denied); choose a "
                          "writable location")


def claim(inputs: Sequence[PathLike] = (), files: Sequence[PathLike | None] = (),
          folders: Sequence[PathLike | None] = ()) -> None:
    """Register a command's inputs with the active policy and check each of its outputs
    (None entries are options not given) before any work starts; outputs must also be
    distinct and not nested in one another.

    Parameters
    ----------
    inputs : sequence of path-like
        The command's inputs.
    files, folders : sequence of path-like or None
        Its output files and folders.

    Raises
    ------
    OutputError
        If an output may not be written or two outputs clash.
    """
    policy = _POLICY.get()
    policy.inputs.extend(Path(p) for p in inputs)
    outputs = [(Path(p), False) for p in files if p is not None]
    outputs += [(Path(p), True) for p in folders if p is not None]
    for path, folder in outputs:
        check_output(path, folder)
    resolved = [path.resolve() for path, _ in outputs]
    for i, a in enumerate(resolved):
        for b in resolved[i + 1:]:
            if a == b or a in b.parents or b in a.parents:
                raise OutputError(f"{a} and {b}: two outputs of one command must be different "
                                  "paths, neither inside the other")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(path: Path) -> None:
    """Delete temporaries of `path` (`.NAME.PID.*.tmp` / `.old`) left by processes that are gone.

    Parameters
    ----------
    path : pathlib.Path
        The output whose temporaries are cleaned.
    """
    pattern = os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*")
    for leftover in glob.glob(pattern):
        parts = Path(leftover).name[len(path.name) + 2:].split(".")
        if len(parts) != 3 or parts[2] not in ("tmp", "old") or not parts[0].isdigit():
            continue
        if _pid_alive(int(parts[0])):
            continue
        if os.path.isdir(leftover) and not os.path.islink(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def temporary_sibling(path: PathLike, folder: bool, staged: bool = False) -> Path:
    """A new empty temporary file or folder beside `path` (after `check_output` and cleaning
    stale temporaries), with the permissions the final output gets.

    Parameters
    ----------
    path : path-like
        The output.
    folder : bool
        Create a folder (True) or a file.
    staged : bool, default False
        `path` lies in a staging folder of this run (`staged_directory`), which was checked
        as a whole and holds no other run's temporaries: skip the checks and the scan for
        stale temporaries (a listing of the folder, which would make writing n files into
        one folder cost n^2).

    Returns
    -------
    pathlib.Path
        The temporary.

    Raises
    ------
    OutputError
        If the output may not be written.
    """
    path = Path(path)
    if not staged:
        check_output(path, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not staged:
        clean_stale(path)
    prefix = f".{path.name}.{os.getpid()}."
    if folder:
        stage = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))
        stage.chmod(0o777 & ~umask())
        return stage
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def commit(staged: Path, path: PathLike) -> None:
    """Move the finished temporary `staged` onto `path` by the rules of the module docstring;
    on refusal `staged` is left for the caller to delete.

    Parameters
    ----------
    staged : pathlib.Path
        The finished temporary file or folder.
    path : path-like
        The output.

    Raises
    ------
    OutputError
        If the output may not be replaced.
    """
    path = Path(path)
    folder = staged.is_dir()
    mode = (0o777 if folder else 0o666) & ~umask()
    os.chmod(staged, mode)  # writers such as safetensors create their file 0600
    policy = _POLICY.get()
    with _locked(path.parent):
        if path.exists() or path.is_symlink():
            if _read_only(path):
                raise OutputError(f"{path}: the existing file is read-only and was not replaced; "
                                  "make it writable or choose another path")
            if not policy.overwrite and not _is_empty_folder(path):
                raise OutputError(f"{path}: was created by another run while this one worked; "
                                  "nothing was written (pass --overwrite to replace it)")
            if folder and path.is_dir() and not path.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".old",
                                            dir=path.parent))
                os.replace(path, old / "previous")
                os.replace(staged, path)
                shutil.rmtree(old, ignore_errors=True)
                return
            if folder:
                raise OutputError(f"{path}: exists and is not a folder; give a folder path")
            if path.is_dir():
                raise OutputError(f"{path}: is a folder; give a file path for this output")
        os.replace(staged, path)
