"""Writers of video outputs: mp4 files, written atomically.

OpenCV picks the container from the file name, so frames are encoded into a temporary file
with the target's suffix beside the target, then renamed into place.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from oddity.core.persistence import atomic_write

FOURCC = "mp4v"  # MPEG-4 Part 2: encodable by every OpenCV build (H.264 is often missing)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Encode RGB uint8 frames (all of one size) into the video file `path`; returns the path.

    Parameters
    ----------
    path : str or os.PathLike
        The video file.
    frames : iterable of numpy.ndarray
        (H, W, 3) uint8 frames.
    fps : float, default 10.0
        Frame rate.

    Returns
    -------
    pathlib.Path
        The path.
    """
    path = Path(path)

    def write(tmp: str) -> None:
        encoded = f"{tmp}{path.suffix}"
        writer: cv2.VideoWriter | None = None
        try:
            for frame in frames:
                if writer is None:
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(encoded, cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
                    if not writer.isOpened():
                        raise OSError(f"{path}: OpenCV cannot encode {path.suffix} video here")
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            if writer is not None:
                writer.release()
        if writer is None:
            raise OSError(f"{path}: no frames to write")
        os.replace(encoded, tmp)

    atomic_write(path, write)
    return path
