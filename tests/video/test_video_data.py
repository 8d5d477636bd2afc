"""Video readers: frame folders, mp4 files written and read back, labels, refusals."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from oddity.core.errors import DataError
from oddity.video.data import (attach_range_labels, evaluation_clips, find_clips, open_clip,
                               training_clips)
from oddity.video.synth import make_video_set, moving_square_clip, write_frames
from oddity.video.writers import write_video


def test_frame_folder_clip_streams_rgb_frames_in_name_order(tmp_path: Path) -> None:
    video, _ = moving_square_clip(frames=6, size=32)
    clip = open_clip(write_frames(tmp_path / "07", video))
    assert clip.id == "07" and len(clip) == 6 and not clip.is_video
    frames = list(clip.frames())
    assert np.array_equal(np.stack(frames), video)  # PNG is lossless
    assert clip.frame_names()[0] == "000.png"


def test_grayscale_frames_are_expanded_to_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((8, 12), 100, np.uint8))
    frame = next(open_clip(folder).frames())
    assert frame.shape == (8, 12, 3) and frame.dtype == np.uint8 and (frame == 100).all()


def test_mp4_written_and_read_back_keeps_count_size_and_content(tmp_path: Path) -> None:
    video, _ = moving_square_clip(frames=20, size=64, seed=3)
    path = write_video(tmp_path / "walk.mp4", video, fps=10)
    clip = open_clip(path)
    assert clip.is_video and clip.id == "walk" and clip.fps == pytest.approx(10)
    decoded = np.stack(list(clip.frames()))
    assert decoded.shape == video.shape and len(clip) == 20
    # lossy codec: close to the original, and the square is where it was
    assert np.abs(decoded.astype(int) - video.astype(int)).mean() < 8
    bright = decoded[10, :, :, 0] > 160
    assert bright.any() and (video[10, :, :, 0][bright] > 160).mean() > 0.8


def test_frames_stream_one_at_a_time(tmp_path: Path) -> None:
    video, _ = moving_square_clip(frames=10, size=32)
    frames = open_clip(write_video(tmp_path / "a.mp4", video)).frames()
    first = next(frames)
    assert first.shape == (32, 32, 3)  # a generator: nothing else decoded yet
    frames.close()


def test_dataset_layout_and_frame_labels(tmp_path: Path) -> None:
    root = make_video_set(tmp_path / "set", train_clips=2, test_clips=2, frames=12, size=32)
    assert [c.id for c in training_clips(root)] == ["01", "02"]
    clips = evaluation_clips(root)
    assert [c.id for c in clips] == ["01", "02"]
    assert all(c.labels is not None and c.labels.shape == (12,) and c.labels.any() for c in clips)


def test_range_labels_are_one_based_and_inclusive(tmp_path: Path) -> None:
    video, _ = moving_square_clip(frames=10, size=32)
    clips = find_clips(write_frames(tmp_path / "clips" / "01", video).parent)
    csv = tmp_path / "ranges.csv"
    csv.write_text("clip,first_anomalous_frame,last_anomalous_frame\n01,3,5\n")
    attach_range_labels(clips, csv)
    assert np.flatnonzero(clips[0].labels).tolist() == [2, 3, 4]
    csv.write_text("clip,first_anomalous_frame,last_anomalous_frame\n01,8,11\n")
    with pytest.raises(DataError, match="1-based"):
        attach_range_labels(clips, csv)


def test_folder_of_clips_mixes_frame_folders_and_videos(tmp_path: Path) -> None:
    video, _ = moving_square_clip(frames=5, size=32)
    write_frames(tmp_path / "a", video)
    write_video(tmp_path / "b.mp4", video)
    (tmp_path / "notes.txt").write_text("x")
    assert [(c.id, c.is_video) for c in find_clips(tmp_path)] == [("a", False), ("b", True)]


def test_refusals_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such"):
        open_clip(tmp_path / "missing.mp4")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match="x.txt"):
        open_clip(tmp_path / "x.txt")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError, match="broken.mp4"):
        list(open_clip(tmp_path / "broken.mp4").frames())
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(folder / "1.png"), np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match="one frame size"):
        list(open_clip(folder).frames())


def test_labels_must_cover_every_frame(tmp_path: Path) -> None:
    root = make_video_set(tmp_path / "set", train_clips=1, test_clips=1, frames=8, size=32)
    labels = root / "test_frame_labels.csv"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="8 frames but 7"):
        evaluation_clips(root)
