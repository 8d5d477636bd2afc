"""Saving and loading detectors without pickle: one safetensors file, JSON in its header.

The file holds the learned arrays as safetensors tensors and, under the header metadata key
"oddity", a JSON document with the detector name, its constructor parameters, its thresholds
and the format version. Loading parses JSON and raw tensors only, so a model file can never
execute code. A SHA-256 checksum over the JSON document and every tensor (name, dtype, shape,
bytes), stored under "oddity_sha256", is verified on load: a flipped byte, an edited header or
a removed tensor is refused with the file named. Floating-point tensors must be finite.

Writes go through the output guard (`oddity.core.outputs`): a temporary file or folder in the
same folder, renamed into place at the end, so an interrupted save never leaves a half-written
output behind, and the guard's rules (inputs never overwritten, `--overwrite`, read-only files
kept, permissions from the umask) apply to every output.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from oddity.core.errors import ModelFileError
from oddity.core.outputs import commit, temporary_sibling

FORMAT_VERSION = 2  # 2: checksum; 1 (no checksum) is still read, with a warning
_META_KEY = "oddity"
_CHECKSUM_KEY = "oddity_sha256"


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold SIGINT back during the few renames that put an output in place."""
    blockable = hasattr(signal, "pthread_sigmask")
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blockable else None
    try:
        yield
    finally:
        if blockable:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def atomic_write(path: str | os.PathLike, write: Any, *, staged: bool = False) -> None:
    """Call `write(tmp_path)` and move the result onto `path` only if it succeeded, by the
    rules of `oddity.core.outputs` (the file gets 0666 less the umask).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    write : callable
        Called with a temporary path beside `path`; writes the whole file there.
    staged : bool, default False
        `path` lies inside a folder being written by `staged_directory` (see
        `oddity.core.outputs.temporary_sibling`).

    Raises
    ------
    OutputError
        If `path` may not be written (`oddity.core.outputs`).
    """
    tmp = temporary_sibling(path, folder=False, staged=staged)
    try:
        write(tmp)
        with _sigint_held():
            commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside `path`; when the block succeeds, the staging
    folder becomes `path` (an existing `path` is replaced whole, as `oddity.core.outputs`
    allows; never merged); when it fails or is interrupted, it is deleted. Output written this
    way is all there or not there at all.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to create or replace.

    Yields
    ------
    pathlib.Path
        The staging folder to write into.
    """
    stage = temporary_sibling(path, folder=True)
    try:
        yield stage
        with _sigint_held():
            commit(stage, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def checksum(document_text: str, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the JSON text and each array's name, dtype, shape and bytes.

    Parameters
    ----------
    document_text : str
        The JSON header text.
    arrays : dict of str to numpy.ndarray
        The named arrays.

    Returns
    -------
    str
        The hex digest.
    """
    digest = hashlib.sha256(b"oddity-model\0")
    digest.update(document_text.encode("utf-8"))
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\0{name}\0{array.dtype.str}\0{list(array.shape)}\0".encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_model(path: str | os.PathLike, document: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as safetensors and `document` into its header, with the checksum of both.

    Parameters
    ----------
    path : str or os.PathLike
        The model file to write (atomically).
    document : dict
        JSON-serialisable description (detector, parameters, thresholds, state).
    arrays : dict of str to numpy.ndarray
        The learned arrays.
    """
    text = json.dumps({**document, "format_version": FORMAT_VERSION})
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    metadata = {_META_KEY: text, _CHECKSUM_KEY: checksum(text, contiguous)}
    atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata=metadata))


def load_model(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file written by `save_model`, verified.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.

    Returns
    -------
    document : dict
        The JSON header.
    arrays : dict of str to numpy.ndarray
        The arrays.

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable, not an oddity model, altered since it was saved or
        holds non-finite values.
    """
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
    if not isinstance(document, dict):
        raise ModelFileError(f"{path}: model metadata is not a JSON object; refit the model")
    version = document.get("format_version")
    if version == 1:
        warnings.warn(f"{path}: saved by an older oddity without a checksum, so it cannot be "
                      "verified; save it again (or refit) to add one", stacklevel=2)
    elif version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version!r}, this oddity reads versions 1 and "
            f"{FORMAT_VERSION}; refit the model with this version"
        )
    elif metadata.get(_CHECKSUM_KEY) != checksum(metadata[_META_KEY], arrays):
        raise ModelFileError(f"{path}: checksum mismatch: the file changed after it was saved "
                             "(corrupted or edited); restore it from a copy or refit")
    for name, array in arrays.items():
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise ModelFileError(f"{path}: tensor {name!r} holds NaN or infinite values; refit the model")
    return document, arrays
