"""Video readers: clips stored as folders of frames or as video files, and their frame labels.

A `Clip` decodes lazily and streams: `frames()` yields one frame at a time, so a two-hour
video never sits in memory. Frames come back as RGB uint8 arrays of shape (H, W, 3), whatever
the source held: grayscale is expanded, alpha dropped, 16-bit divided by 257. Every frame of a
clip must have the first frame's size; a clip that changes size, or a file that cannot be
decoded, raises a `DataError` naming it.

Layouts
- A clip: a folder of image files (frames in file-name order), or a video file (mp4, avi, mov,
  mkv, m4v; decoded with OpenCV's FFmpeg backend).
- A folder of clips: sub-folders of frames and/or video files, one clip each, sorted by name.
- A dataset (UCSD Ped, CUHK Avenue, ShanghaiTech as distributed with most public code):
  `ROOT/training/frames/<clip>/` (normal clips) and `ROOT/testing/frames/<clip>/`, with labels
  in `ROOT/test_frame_labels.csv` (columns clip, frame_file, label: one row per frame) or
  `ROOT/test_anomaly_ranges.csv` (clip, first_anomalous_frame, last_anomalous_frame: 1-based,
  inclusive; a clip may have several rows, a clip with no row is normal). `training/` and
  `testing/` holding clips directly (no `frames/` level) are accepted too.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from oddity.core.errors import DataError

FRAME_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v"})
FRAME_LABELS_CSV = "test_frame_labels.csv"
RANGES_CSV = "test_anomaly_ranges.csv"


def as_rgb_uint8(pixels: np.ndarray, source: str) -> np.ndarray:
    """An OpenCV-decoded frame (gray, BGR or BGRA; 8 or 16 bit) as RGB uint8 (H, W, 3).

    Parameters
    ----------
    pixels : numpy.ndarray
        The decoded frame.
    source : str
        Where it came from, for messages.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.

    Raises
    ------
    DataError
        On an unsupported shape or pixel type.
    """
    if pixels.dtype == np.uint16:
        pixels = (pixels // 257).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise DataError(f"{source}: frames of type {pixels.dtype} are not supported; "
                        "convert them to 8- or 16-bit images")
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return cv2.cvtColor(pixels[:, :, 0], cv2.COLOR_GRAY2RGB)
    raise DataError(f"{source}: frame of shape {pixels.shape} is neither gray nor colour")


def read_frame(path: Path) -> np.ndarray:
    """Decode one frame file to RGB uint8 (H, W, 3).

    Parameters
    ----------
    path : pathlib.Path
        An image file.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.

    Raises
    ------
    DataError
        If the file cannot be decoded.
    """
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise DataError(f"{path}: not a readable image (PNG, JPEG, BMP or TIFF expected); "
                        "replace or remove it")
    return as_rgb_uint8(pixels, str(path))


@dataclass
class Clip:
    """One clip: a frame folder (`files` set) or a video file (`files` None).

    `labels` (bool per frame, True = anomalous) is set by the dataset readers when known.
    `fps` is the video's frame rate (None for frame folders unless given).
    """

    id: str
    source: Path
    files: list[Path] | None = None
    fps: float | None = None
    labels: np.ndarray | None = None
    _count: int | None = field(default=None, repr=False)

    @property
    def is_video(self) -> bool:
        return self.files is None

    def __len__(self) -> int:
        """Number of frames (for a video: the container's count, checked while decoding)."""
        if self.files is not None:
            return len(self.files)
        if self._count is None:
            capture = self._open_video()
            self._count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
            capture.release()
        return self._count

    def frame_names(self) -> list[str]:
        """A name per frame: the file name for frame folders, the 0-based index for videos.

        Returns
        -------
        list of str
            The names.
        """
        if self.files is not None:
            return [f.name for f in self.files]
        return [str(i) for i in range(len(self))]

    def _open_video(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.source))
        if not capture.isOpened():
            raise DataError(f"{self.source}: OpenCV cannot open this video (corrupt, or a codec "
                            "FFmpeg lacks); convert it to H.264 mp4 or extract the frames")
        return capture

    def frames(self) -> Iterator[np.ndarray]:
        """Stream the frames as RGB uint8 (H, W, 3), one at a time.

        Yields
        ------
        numpy.ndarray
            (H, W, 3) uint8 frame.

        Raises
        ------
        DataError
            If a frame cannot be decoded.
        """
        shape: tuple[int, ...] | None = None
        for number, frame in enumerate(self._decode()):
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise DataError(f"{self.source}: frame {number} is {frame.shape[1]}x{frame.shape[0]}, "
                                f"the first frame {shape[1]}x{shape[0]}; a clip needs one frame size")
            yield frame

    def _decode(self) -> Iterator[np.ndarray]:
        if self.files is not None:
            for path in self.files:
                yield read_frame(path)
            return
        capture = self._open_video()
        count = 0
        try:
            while True:
                ok, pixels = capture.read()
                if not ok:
                    break
                count += 1
                yield as_rgb_uint8(pixels, str(self.source))
        finally:
            capture.release()
        if count == 0:
            raise DataError(f"{self.source}: no frame could be decoded from this video")
        self._count = count


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS)


def open_clip(path: str | Path, clip_id: str | None = None) -> Clip:
    """A clip from a video file or a folder of frames (raises DataError otherwise).

    Parameters
    ----------
    path : str or pathlib.Path
        A video file or a folder of frames.
    clip_id : str, optional
        Its id (default: the file or folder name).

    Returns
    -------
    Clip
        The clip (frames read lazily).

    Raises
    ------
    DataError
        If `path` is neither.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise DataError(f"{path}: not a video file ({', '.join(sorted(VIDEO_EXTENSIONS))}) "
                            "nor a folder of frames")
        clip = Clip(clip_id or path.stem, path)
        capture = clip._open_video()
        fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        clip.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
        return clip
    if path.is_dir():
        files = _frame_files(path)
        if not files:
            raise DataError(f"{path}: a folder with no frame images (PNG, JPEG, BMP, TIFF) in it")
        return Clip(clip_id or path.name, path, files=files)
    raise DataError(f"{path}: no such video file or frame folder")


def find_clips(path: str | Path) -> list[Clip]:
    """The clips at `path`: a video file or a frame folder is one clip; a folder of frame
    folders and/or video files gives one clip each, sorted by name.

    Parameters
    ----------
    path : str or pathlib.Path
        A video, a frame folder, or a folder of those.

    Returns
    -------
    list of Clip
        The clips.

    Raises
    ------
    DataError
        If nothing readable is found.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file() or _frame_files(path):
        return [open_clip(path)]
    clips = [open_clip(entry) for entry in sorted(path.iterdir())
             if (entry.is_dir() and _frame_files(entry))
             or (entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS)]
    if not clips:
        raise DataError(f"{path}: no clips found (expected frame folders or video files in it, "
                        "or a dataset with training/ and testing/)")
    return clips


def _split_folder(root: Path, split: str) -> Path | None:
    for candidate in (root / split / "frames", root / split):
        if candidate.is_dir():
            return candidate
    return None


def training_clips(path: str | Path) -> list[Clip]:
    """Normal clips to fit on: a dataset's `training/` split, or every clip at `path`.

    Parameters
    ----------
    path : str or pathlib.Path
        A dataset or clips.

    Returns
    -------
    list of Clip
        The clips.

    Raises
    ------
    DataError
        If nothing readable is found.
    """
    folder = _split_folder(Path(path), "training")
    return find_clips(folder if folder is not None else path)


def evaluation_clips(root: str | Path) -> list[Clip]:
    """The labelled test clips of a dataset (see the module docstring), labels attached.

    Parameters
    ----------
    root : str or pathlib.Path
        The dataset.

    Returns
    -------
    list of Clip
        Labelled clips.

    Raises
    ------
    DataError
        If the layout or the labels cannot be read.
    """
    root = Path(root)
    folder = _split_folder(root, "testing")
    if folder is None:
        raise DataError(f"{root}: no testing/ folder; a labelled video set has testing/frames/<clip>/ "
                        f"and {FRAME_LABELS_CSV} or {RANGES_CSV}")
    clips = find_clips(folder)
    if (root / FRAME_LABELS_CSV).is_file():
        attach_frame_labels(clips, root / FRAME_LABELS_CSV)
    elif (root / RANGES_CSV).is_file():
        attach_range_labels(clips, root / RANGES_CSV)
    else:
        raise DataError(f"{root}: no labels; add {FRAME_LABELS_CSV} (clip, frame_file, label) or "
                        f"{RANGES_CSV} (clip, first_anomalous_frame, last_anomalous_frame)")
    return clips


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype={"clip": str, "frame_file": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")
    return table


def _by_id(clips: Sequence[Clip], table: pd.DataFrame, path: Path) -> dict[str, Clip]:
    """Clips by id; labelled clip ids must all exist (numeric ids match with or without zeros)."""
    clip_ids = {c.id: c for c in clips}
    unknown = sorted(set(table["clip"]) - set(clip_ids))
    if unknown:
        raise DataError(f"{path}: labels for clip(s) {', '.join(unknown[:5])} that are not in the "
                        f"data ({', '.join(sorted(clip_ids)[:5])} ...)")
    return clip_ids


def attach_frame_labels(clips: Sequence[Clip], path: str | Path) -> None:
    """Set `clip.labels` from a CSV of (clip, frame_file, label) rows; every frame of every
    clip needs exactly one row (frame_file is the file name, or the index for videos).

    Parameters
    ----------
    clips : sequence of Clip
        The clips to label.
    path : str or pathlib.Path
        The CSV file.

    Raises
    ------
    DataError
        If the file is unreadable or a frame has no row or several.
    """
    path = Path(path)
    table = _read_csv(path, ("clip", "frame_file", "label"))
    if not table["label"].isin([0, 1]).all():
        raise DataError(f"{path}: column label must hold 0 (normal) or 1 (anomalous) only")
    clip_ids = _by_id(clips, table, path)
    for clip_id, clip in clip_ids.items():
        rows = table[table["clip"] == clip_id]
        lookup = dict(zip(rows["frame_file"], rows["label"]))
        names = clip.frame_names()
        missing = [n for n in names if n not in lookup]
        if missing or len(rows) != len(names):
            raise DataError(f"{path}: clip {clip_id} has {len(names)} frames but {len(rows)} label "
                            f"rows (first unlabelled frame: {missing[0] if missing else 'none'})")
        clip.labels = np.array([lookup[n] for n in names], dtype=bool)


def attach_range_labels(clips: Sequence[Clip], path: str | Path) -> None:
    """Set `clip.labels` from a CSV of anomalous ranges (clip, first_anomalous_frame,
    last_anomalous_frame; 1-based and inclusive). Clips with no row are all normal.

    Parameters
    ----------
    clips : sequence of Clip
        The clips to label.
    path : str or pathlib.Path
        The CSV file.

    Raises
    ------
    DataError
        If the file is unreadable or a range is invalid.
    """
    path = Path(path)
    table = _read_csv(path, ("clip", "first_anomalous_frame", "last_anomalous_frame"))
    clip_ids = _by_id(clips, table, path)
    for clip in clips:
        clip.labels = np.zeros(len(clip), dtype=bool)
    for row in table.itertuples(index=False):
        clip = clip_ids[row.clip]
        first, last = int(row.first_anomalous_frame), int(row.last_anomalous_frame)
        assert clip.labels is not None
        if not 1 <= first <= last <= len(clip.labels):
            raise DataError(f"{path}: range {first}-{last} of clip {row.clip} is not within its "
                            f"frames 1-{len(clip.labels)} (ranges are 1-based and inclusive)")
        clip.labels[first - 1:last] = True
