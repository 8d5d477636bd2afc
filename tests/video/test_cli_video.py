"""`oddity fit/predict/eval` with a video detector, on generated frame folders and mp4 files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import oddity
from oddity.cli import main
from oddity.video.data import open_clip
from oddity.video.synth import make_video_set, moving_square_clip
from oddity.video.writers import write_video


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def mp4_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Normal training clips as mp4 files (fit and predict on the same kind of source)."""
    root = tmp_path_factory.mktemp("mp4s")
    for number in range(4):
        video, _ = moving_square_clip(frames=30, size=64, seed=number)
        write_video(root / "train" / f"walk{number}.mp4", video)
    video, labels = moving_square_clip(frames=30, size=64, anomaly=(12, 21), seed=11)
    write_video(root / "test.mp4", video)
    np.save(root / "labels.npy", labels)
    return root


def test_fit_on_mp4s_then_predict_an_mp4_writes_every_output(tmp_path: Path, capsys, mp4_set: Path) -> None:
    model = tmp_path / "m.oddity"
    code, out, err = run(capsys, "fit", "motion_patch", "--data", mp4_set / "train", "--out", model,
                         "--image-size", 64, "--set", "frame_stride=1", "--set", "smoothing_window=1",
                         "--quiet")
    assert code == 0, err
    assert "fitted motion_patch on 4 clips" in out and "30 held-out frames" in out
    code, out, err = run(capsys, "predict", model, mp4_set / "test.mp4", "--out", tmp_path / "pred", "--quiet")
    assert code == 0, err
    scores = pd.read_csv(tmp_path / "pred" / "scores.csv", dtype={"clip": str})
    assert list(scores.columns) == ["clip", "frame", "name", "score", "raw_score", "anomalous"]
    assert len(scores) == 30 and set(scores["clip"]) == {"test"}
    labels = np.load(mp4_set / "labels.npy")
    assert scores["anomalous"][labels].mean() > 0.7 and scores["anomalous"][~labels].mean() < 0.2
    ranges = pd.read_csv(tmp_path / "pred" / "ranges.csv")
    assert ranges["frames"].sum() == scores["anomalous"].sum()
    annotated = open_clip(tmp_path / "pred" / "annotated" / "test.mp4")
    frames = np.stack(list(annotated.frames()))
    assert frames.shape == (30, 64, 64, 3)
    flagged = int(np.flatnonzero(scores["anomalous"])[0])
    assert (frames[flagged, 0, :, 0] > 150).mean() > 0.8  # red border on an anomalous frame
    assert (tmp_path / "pred" / "timeline" / "test.png").stat().st_size > 1000


def test_fit_and_eval_on_a_dataset_of_frame_folders(tmp_path: Path, capsys) -> None:
    root = make_video_set(tmp_path / "set", train_clips=4, test_clips=2, frames=30, size=64)
    model = tmp_path / "m.oddity"
    code, out, err = run(capsys, "fit", "motion_patch", "--data", root, "--out", model,
                         "--image-size", 64, "--set", "frame_stride=2", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "eval", model, "--data", root, "--json", tmp_path / "m.json", "--quiet")
    assert code == 0, err
    assert "per_clip_normalised" in out and "frames/s" in out
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert metrics["scores"]["micro_auroc"] > 0.9 and "range_f1" in metrics["scores"]
    assert "range_f1" not in metrics["per_clip_normalised"]
    assert oddity.load(model).frame_stride == 2


def test_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "fit", "motion_patch", "--data", tmp_path / "none", "--out", tmp_path / "m")
    assert code == 2 and err.startswith("error:") and "none" in err and len(err.splitlines()) == 1
