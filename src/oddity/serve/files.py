"""Content-addressed file store for uploaded images and anomaly-map PNGs.

A file is named by the sha256 of its bytes, under two levels of folders taken from the hash
(`ab/cd/abcd...`), so the same image uploaded twice is stored once and a name can never be
chosen by a client. A file is written to a temporary name in its folder, flushed to disk
(`fsync`), renamed into place and its folder flushed too (and the folders above it when they
are new): once `put` or `put_many` returns, the files survive a crash of the process or the
machine, and no half-written file ever bears a hash name.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from oddity.core.errors import DataError

_HASH = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The lowercase hex sha256 of `data`.

    Parameters
    ----------
    data : bytes
        Bytes to hash.

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> sha256_hex(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """Files by content hash below `root` (created if missing).

    Parameters
    ----------
    root : str or os.PathLike
        Folder that holds the files.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the file with this hash lives.

        Parameters
        ----------
        digest : str
            sha256 hex digest of the file.

        Returns
        -------
        pathlib.Path
            ``root/ab/cd/abcd...`` (the file need not exist).

        Raises
        ------
        DataError
            If `digest` is not 64 lowercase hex digits.
        """
        if not _HASH.fullmatch(digest):
            raise DataError(f"{digest!r}: not a sha256 hex digest")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store `data` durably and return its sha256 hex digest.

        Parameters
        ----------
        data : bytes
            File content.

        Returns
        -------
        str
            sha256 hex digest naming the stored file.
        """
        return self.put_many([data])[0]

    def put_many(self, blobs: list[bytes]) -> list[str]:
        """Store every blob durably (see module docstring) and return their sha256 hex digests.

        Each file is flushed before its rename; each folder that gained a file is flushed
        once after all renames, and a folder's parent only when the folder itself is new.
        A file already stored with the same size is not written again.

        Parameters
        ----------
        blobs : list of bytes
            File contents.

        Returns
        -------
        list of str
            sha256 hex digest of each blob, in order.
        """
        digests, folders = [], set()
        for data in blobs:
            digest = sha256_hex(data)
            digests.append(digest)
            target = self.path(digest)
            if target.is_file() and target.stat().st_size == len(data):
                continue
            if not target.parent.is_dir():
                if not target.parent.parent.is_dir():
                    target.parent.parent.mkdir(parents=True, exist_ok=True)
                    folders.add(self.root)
                target.parent.mkdir(exist_ok=True)
                folders.add(target.parent.parent)
            fd, tmp = tempfile.mkstemp(prefix=".put.", suffix=".tmp", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            folders.add(target.parent)
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            _fsync_folder(folder)
        return digests

    def get(self, digest: str) -> bytes:
        """The bytes stored under `digest`.

        Parameters
        ----------
        digest : str
            sha256 hex digest of the file.

        Returns
        -------
        bytes
            The file's content, checked against its hash.

        Raises
        ------
        DataError
            If no file has this hash or its content does not match it.
        """
        path = self.path(digest)
        if not path.is_file():
            raise DataError(f"{path}: stored file missing")
        data = path.read_bytes()
        if sha256_hex(data) != digest:
            raise DataError(f"{path}: stored file does not match its hash (damaged on disk)")
        return data

    def has(self, digest: str) -> bool:
        """Whether a file with this hash is stored intact.

        Parameters
        ----------
        digest : str
            sha256 hex digest of the file.

        Returns
        -------
        bool
            False also when `digest` is not a valid digest.
        """
        try:
            self.get(digest)
        except DataError:
            return False
        return True
