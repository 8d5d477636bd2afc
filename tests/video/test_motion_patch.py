"""motion_patch on synthetic clips: a square that speeds up or turns back is the anomaly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import oddity
from oddity.core.errors import ConfigError, NotFittedError
from oddity.metrics.video import micro_auroc
from oddity.video.data import evaluation_clips, open_clip
from oddity.video.detector import smooth_scores
from oddity.video.detectors.motion_patch import (
    cell_motion,
    perspective_fit,
    perspective_speed,
)
from oddity.video.synth import make_video_set, moving_square_clip
from oddity.video.writers import write_video

PARAMS = {"image_size": 64, "frame_stride": 1, "smoothing_window": 1}


@pytest.fixture(scope="module")
def video_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video_set(tmp_path_factory.mktemp("video") / "set", train_clips=4, test_clips=4,
                          frames=40, size=64)


@pytest.fixture(scope="module")
def fitted(video_set: Path):
    return oddity.create("motion_patch", **PARAMS).fit(video_set, verbose=False)


def test_faster_and_reversed_motion_score_above_normal_motion(fitted, video_set: Path) -> None:
    clips = evaluation_clips(video_set)
    results = fitted.score(clips, verbose=False)
    assert micro_auroc([c.labels for c in clips], [r.scores for r in results]) > 0.95
    for clip, result in zip(clips, results):  # faster (even clips) and reversed (odd) both
        assert result.scores[clip.labels].mean() > 1.5 * result.scores[~clip.labels].mean()
        assert result.maps is not None and result.maps.shape == (40, 8, 8)


def test_the_map_points_at_the_square(fitted, video_set: Path) -> None:
    clip = evaluation_clips(video_set)[0]
    result = fitted.score(clip, verbose=False)[0]
    frame = int(np.flatnonzero(clip.labels)[5])
    pixels = list(clip.frames())[frame][:, :, 0]
    ys, xs = np.nonzero(pixels > 160)
    peak = np.unravel_index(np.argmax(result.maps[frame]), result.maps[frame].shape)
    cell = 64 / 8
    assert abs(peak[0] * cell + cell / 2 - ys.mean()) <= 2 * cell
    assert abs(peak[1] * cell + cell / 2 - xs.mean()) <= 2.5 * cell  # the flow trails the square


def test_appearance_alone_cannot_see_motion(video_set: Path) -> None:
    still = oddity.create("motion_patch", **PARAMS, motion_weight=0.0).fit(video_set, verbose=False)
    clips = evaluation_clips(video_set)
    auroc = micro_auroc([c.labels for c in clips], [r.scores for r in still.score(clips, verbose=False)])
    assert auroc < 0.8


def test_threshold_is_calibrated_on_a_held_out_clip(fitted) -> None:
    threshold = fitted.threshold_
    assert threshold.method == "conformal" and threshold.n_calibration == 40  # 1 of 4 clips held out


def test_save_load_gives_the_same_scores_on_an_mp4(fitted, tmp_path: Path) -> None:
    video, labels = moving_square_clip(frames=30, size=64, anomaly=(12, 20), seed=7)
    clip = open_clip(write_video(tmp_path / "clip.mp4", video))
    fitted.save(tmp_path / "m.oddity")
    loaded = oddity.load(tmp_path / "m.oddity")
    before = fitted.predict(clip, verbose=False)[0]
    after = loaded.predict(clip, verbose=False)[0]
    assert np.allclose(before.scores, after.scores, atol=1e-5) and before.ranges == after.ranges
    assert micro_auroc([labels], [after.scores]) > 0.9
    assert any(first <= 20 and last >= 12 for first, last in after.ranges)


def test_smoothing_is_a_causal_moving_mean() -> None:
    assert smooth_scores(np.array([0.0, 3.0, 0.0, 6.0]), 2).tolist() == [0.0, 1.5, 1.5, 3.0]
    assert smooth_scores(np.array([1.0, 2.0]), 1).tolist() == [1.0, 2.0]


def test_bad_parameters_and_unfitted_use_are_refused(video_set: Path) -> None:
    with pytest.raises(ConfigError, match="smoothing_window"):
        oddity.create("motion_patch", smoothing_window=0)
    with pytest.raises(ConfigError, match="frame_stride"):
        oddity.create("motion_patch", frame_stride=0)
    with pytest.raises(NotFittedError):
        oddity.create("motion_patch").score(video_set)


def test_position_block_is_scaled_and_saved(video_set: Path, tmp_path: Path) -> None:
    placed = oddity.create("motion_patch", **PARAMS, position_weight=1.0).fit(video_set, verbose=False)
    assert placed.block_scales_.shape == (3,)
    # rows and columns of an 8 x 8 grid, each spread like linspace(0, 1, 8)
    assert placed.block_scales_[2] == pytest.approx(np.sqrt(2 * np.var(np.linspace(0, 1, 8))), rel=1e-4)
    placed.save(tmp_path / "p.oddity")
    assert oddity.load(tmp_path / "p.oddity").position_weight == 1.0
    with pytest.raises(ConfigError, match="position_weight"):
        oddity.create("motion_patch", position_weight=-1)


def test_perspective_line_follows_speed_growing_down_the_frame() -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 11, 20000) / 10
    movers = rng.uniform(size=20000) < 0.2
    magnitudes = np.where(movers, (0.5 + 2.0 * rows) * rng.uniform(0.9, 1.1, 20000), 0.01)
    intercept, slope, floor = perspective_fit(rows, magnitudes)
    assert intercept == pytest.approx(0.5, abs=0.05) and slope == pytest.approx(2.0, abs=0.1)
    assert floor == pytest.approx(0.25 * 2.5, abs=0.05)
    speeds = perspective_speed(np.array([intercept, slope, floor]), torch.tensor([0.0, 1.0]))
    assert speeds.tolist() == pytest.approx([max(intercept, floor), intercept + slope], abs=1e-5)
    assert perspective_fit(np.zeros(100), np.ones(100)).tolist() == [1.0, 0.0, 1.0]  # one row: flat


def test_peak_motion_of_a_cell_is_its_fastest_pixel() -> None:
    previous = np.zeros((32, 48), np.uint8)
    previous[8:12, 8:12] = 200
    current = np.roll(previous, 3, axis=1)
    mean = cell_motion(previous, current, (4, 6), flow_scale=1.0)
    peak = cell_motion(previous, current, (4, 6), flow_scale=1.0, peak=True)
    assert np.array_equal(mean[..., :2], peak[..., :2]) and (peak[..., 2] >= mean[..., 2] - 1e-6).all()
    assert peak[..., 2].max() == pytest.approx(3.0, abs=0.4)  # the square moved 3 pixels
    assert (peak[..., 2] > 2.5).sum() > (mean[..., 2] > 2.5).sum()  # the mean dilutes it


def test_perspective_and_full_resolution_flow_are_fitted_and_saved(video_set: Path, tmp_path: Path) -> None:
    detector = oddity.create("motion_patch", **PARAMS, perspective=True, flow_scale=1.0,
                             motion_peak=True).fit(video_set, verbose=False)
    assert detector.perspective_.shape == (3,) and detector.perspective_[2] > 0
    clips = evaluation_clips(video_set)
    scores = [r.scores for r in detector.score(clips, verbose=False)]
    assert micro_auroc([c.labels for c in clips], scores) > 0.9
    detector.save(tmp_path / "p.oddity")
    loaded = oddity.load(tmp_path / "p.oddity")
    assert loaded.perspective and loaded.motion_peak and np.array_equal(loaded.perspective_, detector.perspective_)
    assert np.allclose(loaded.score(clips[0], verbose=False)[0].scores, scores[0], atol=1e-5)
    with pytest.raises(ConfigError, match="flow_scale"):
        oddity.create("motion_patch", flow_scale=2.0)
