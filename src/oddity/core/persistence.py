"""Saving and loading detectors without pickle: one safetensors file, JSON in its header.

The file holds the learned arrays as safetensors tensors and, under the header metadata key
"oddity", a JSON document with the detector name, its constructor parameters, its thresholds
and the format version. Loading parses JSON and raw tensors only, so a model file can never
execute code. Writes go to a temporary file in the same folder and are renamed into place, so
an interrupted save never leaves a half-written model behind.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from safetensors import safe_open

from oddity.core.errors import ModelFileError

FORMAT_VERSION = 1
_META_KEY = "oddity"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call `write(tmp_path)` and move the result onto `path` only if it succeeded. The file
    gets the usual permissions (0666 less the umask), not the 0600 of a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside `path`; when the block succeeds, move each of its
    entries into `path` (created if missing), replacing same-named entries and leaving others
    alone; when it fails or is interrupted, delete the staging folder. Output written this way
    is all there or not there at all; SIGINT is held back during the few renames at the end."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OSError(f"{path}: exists and is not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    stage.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; it may become `path` itself
    try:
        yield stage
        blockable = hasattr(signal, "pthread_sigmask")
        if blockable:
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            if not path.exists():
                os.replace(stage, path)
                return
            trash = Path(tempfile.mkdtemp(prefix=".old.", dir=stage))
            for entry in sorted(stage.iterdir()):
                if entry == trash:
                    continue
                target = path / entry.name
                if target.exists() or target.is_symlink():
                    os.replace(target, trash / entry.name)
                os.replace(entry, target)
        finally:
            if blockable:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def save_model(path: str | os.PathLike, document: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as safetensors and `document` (JSON-serialisable) into its header."""
    document = {**document, "format_version": FORMAT_VERSION}
    metadata = {_META_KEY: json.dumps(document)}
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata=metadata))


def load_model(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file written by `save_model`: (JSON document, arrays)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file (create one with `oddity fit`)")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable oddity model file ({exc})") from None
    if _META_KEY not in metadata:
        raise ModelFileError(f"{path}: a safetensors file, but not an oddity model (no metadata)")
    try:
        document = json.loads(metadata[_META_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: model metadata is not valid JSON ({exc})") from None
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version!r}, this oddity reads version "
            f"{FORMAT_VERSION}; refit the model with this version"
        )
    return document, arrays
