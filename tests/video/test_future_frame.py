"""future_frame (CT-D2GAN, reduced) on tiny synthetic clips: it learns, scores, saves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import oddity
from oddity.core.errors import ConfigError
from oddity.metrics.video import micro_auroc
from oddity.video.data import evaluation_clips
from oddity.video.detectors.future_frame import ConvTransformerGenerator, psnr
from oddity.video.synth import make_video_set

PARAMS = {"image_size": 32, "width": 8, "steps": 80, "batch_size": 4, "smoothing_window": 1,
          "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def video_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video_set(tmp_path_factory.mktemp("ff") / "set", train_clips=3, test_clips=2,
                          frames=30, size=32)


@pytest.fixture(scope="module")
def fitted(video_set: Path):
    torch.set_num_threads(1)
    return oddity.create("future_frame", **PARAMS).fit(video_set, verbose=False)


def test_generator_predicts_a_frame_of_the_input_size() -> None:
    generator = ConvTransformerGenerator(past_frames=4, width=8)
    out = generator(torch.zeros(2, 4, 32, 48))
    assert out.shape == (2, 1, 32, 48) and out.abs().max() <= 1


def test_psnr_of_identical_and_opposite_frames() -> None:
    frame = torch.zeros(1, 1, 4, 4)
    assert psnr(frame + 1, frame - 1).item() == pytest.approx(0.0)  # error = the full range
    assert psnr(frame, frame).item() > 90


def test_training_lowers_the_loss_and_fast_motion_predicts_worse(fitted, video_set: Path) -> None:
    history = fitted.loss_history_
    assert len(history) == PARAMS["steps"] and np.mean(history[-10:]) < 0.5 * np.mean(history[:10])
    clips = evaluation_clips(video_set)
    results = fitted.score(clips, verbose=False)
    assert micro_auroc([c.labels for c in clips], [r.scores for r in results]) > 0.7
    assert results[0].maps is not None and results[0].maps.shape == (30, 8, 8)
    assert fitted.threshold_.n_calibration == 30  # one of three clips held out


def test_save_and_load_give_the_same_scores(fitted, video_set: Path, tmp_path: Path) -> None:
    fitted.save(tmp_path / "ff.oddity")
    loaded = oddity.load(tmp_path / "ff.oddity")
    clip = evaluation_clips(video_set)[0]
    assert np.allclose(fitted.score(clip, verbose=False)[0].scores,
                       loaded.score(clip, verbose=False)[0].scores, atol=1e-4)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="past_frames"):
        oddity.create("future_frame", past_frames=1)
    with pytest.raises(ConfigError, match="multiple of 4"):
        oddity.create("future_frame", image_size=66)
