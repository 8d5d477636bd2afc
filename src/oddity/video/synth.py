"""Synthetic clips for tests and demos: a bright square crossing a textured background.

Normal motion is a walkway's: the square crosses the frame from left to right at a constant
speed, at a height that differs between clips, and re-enters on the left when it has left on
the right. An anomalous stretch of a clip changes that motion: the square moves `speed_factor`
times faster (a cyclist among walkers), or it goes the other way (`reverse=True`). Frames are
RGB uint8 (H, W, 3).

For validation on real footage, `insert_moving_object` pastes a fast figure into the frames
of a normal clip (see benchmarks/video_validation.py).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from oddity.core.errors import ConfigError


def moving_square_clip(frames: int = 40, size: int = 64, square: int = 10, speed: float = 1.5,
                       anomaly: tuple[int, int] | None = None, speed_factor: float = 4.0,
                       reverse: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, labels (T,) bool): labels mark the anomalous frames, those
    in `anomaly` = (first, last), 0-based and inclusive (None: a normal clip).

    Parameters
    ----------
    frames : int, default 40
        Frames.
    size : int, default 64
        Frame side.
    square : int, default 10
        Side of the square.
    speed : float, default 1.5
        Pixels per frame.
    anomaly : tuple of int, optional
        (first, last) anomalous frame.
    speed_factor : float, default 4.0
        Speed-up inside the anomaly.
    reverse : bool, default False
        Reverse the motion inside the anomaly instead.
    seed : int, default 0
        Seed of the start and the background.

    Returns
    -------
    tuple of numpy.ndarray
        (frames, labels).
    """
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(40, 90, size=(size, size), dtype=np.uint8), (5, 5), 1.0)
    y = int(rng.integers(0, size - square))
    x = float(rng.uniform(0, size - square))
    labels = np.zeros(frames, dtype=bool)
    if anomaly is not None:
        labels[anomaly[0]:anomaly[1] + 1] = True
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        step = speed * (speed_factor if labels[t] and not reverse else 1.0)
        x += -step if labels[t] and reverse else step
        if x > size:
            x -= size + square
        elif x < -square:
            x += size + square
        frame = background.copy()
        left = round(x)
        frame[y:y + square, max(left, 0):max(left + square, 0)] = 220
        video[t] = np.repeat(frame[:, :, None], 3, axis=2)
    return video, labels


def write_frames(folder: str | Path, frames: np.ndarray) -> Path:
    """Write frames as numbered PNG files 000.png, 001.png, ... into `folder`.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder (created).
    frames : numpy.ndarray
        (T, H, W, 3) uint8.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for number, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{number:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def make_video_set(root: str | Path, train_clips: int = 4, test_clips: int = 3, frames: int = 40,
                   size: int = 64, seed: int = 0) -> Path:
    """A labelled dataset in the Ped2 layout (training/frames, testing/frames, frame labels):
    every test clip has one anomalous stretch, alternately faster and reversed motion.

    Parameters
    ----------
    root : str or pathlib.Path
        The dataset folder to create.
    train_clips, test_clips : int
        Clip counts.
    frames : int, default 40
        Frames per clip.
    size : int, default 64
        Frame side in pixels.
    seed : int, default 0
        Seed of everything.

    Returns
    -------
    pathlib.Path
        `root`.
    """
    root = Path(root)
    for number in range(train_clips):
        video, _ = moving_square_clip(frames, size, seed=seed + number)
        write_frames(root / "training" / "frames" / f"{number + 1:02d}", video)
    rows = ["clip,frame_file,label"]
    for number in range(test_clips):
        first = frames // 3 + number
        video, labels = moving_square_clip(frames, size, anomaly=(first, first + frames // 4),
                                           reverse=number % 2 == 1, seed=seed + 100 + number)
        clip = f"{number + 1:02d}"
        write_frames(root / "testing" / "frames" / clip, video)
        rows += [f"{clip},{t:03d}.png,{int(label)}" for t, label in enumerate(labels)]
    (root / "test_frame_labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def insert_moving_object(frames: np.ndarray, height: int, speed: float, row: int, first: int,
                         leftward: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paste a dark textured figure (`height` pixels tall, 0.4 as wide) that crosses real
    frames horizontally at `speed` pixels per frame from frame `first` on, its top at `row`:
    a validation anomaly for a fixed camera (a cyclist among walkers, small when far).

    Parameters
    ----------
    frames : np.ndarray
        (T, H, W, 3) uint8 frames of a normal clip (not modified).
    height, speed, row, first : int, float, int, int
        Figure height in pixels, pixels per frame, top row, first frame it moves in.
    leftward : bool
        Cross from right to left instead of left to right.
    seed : int
        Seed of the figure's texture.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        The new frames, and labels (T,) bool: True where part of the figure is in view.

    Raises
    ------
    ConfigError
        If the figure does not fit the frame height or `speed` is not positive.
    """
    count, rows, columns = frames.shape[:3]
    width = max(2, round(0.4 * height))
    if height < 2 or row < 0 or row + height > rows or speed <= 0:
        raise ConfigError(f"a {height}-pixel figure at row {row} moving {speed} px/frame does not "
                         f"fit {rows}-pixel frames; lower the row or the height")
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(20, 90, (height, width)).astype(np.float32), (3, 3), 0.8)
    mask = np.zeros((height + 4, width + 4), np.float32)
    cv2.ellipse(mask, (((width + 4) / 2, (height + 4) / 2), (width, height), 0.0), 1.0, -1)
    mask = cv2.GaussianBlur(mask, (3, 3), 0.7)[2:-2, 2:-2, None]
    out = frames.copy()
    labels = np.zeros(count, dtype=bool)
    for t in range(first, count):
        travelled = speed * (t - first + 1)  # partly in view from the first frame on
        left = round(columns - travelled if leftward else travelled - width)
        if left >= columns or left + width <= 0:
            break
        lo, hi = max(left, 0), min(left + width, columns)
        region = out[t, row:row + height, lo:hi].astype(np.float32)
        alpha = mask[:, lo - left:hi - left]
        region = alpha * texture[:, lo - left:hi - left, None] + (1 - alpha) * region
        out[t, row:row + height, lo:hi] = np.clip(region, 0, 255).astype(np.uint8)
        labels[t] = True
    return out, labels
