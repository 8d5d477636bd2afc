"""image_size="auto": the input size chosen from the training images' size, printed, saved and
never re-decided on load; an explicit size still works; bad values are refused."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

import oddity
from oddity.core.errors import ConfigError, ModelFileError, NotFittedError
from oddity.core.persistence import load_model, save_model
from oddity.image import resolution
from oddity.image.cli import image_size_option


def normal_images(count: int, side: int, seed: int = 0) -> np.ndarray:
    """Grey parts with a little noise, (count, side, side, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + rng.normal(0, 0.03, (count, side, side, 3)), 0.0, 1.0)


@pytest.fixture()
def small_rule(monkeypatch):
    """The rule scaled down (base 32, at most 64) so that tests fit in seconds."""
    monkeypatch.setattr(resolution, "BASE_SIZE", 32)
    monkeypatch.setattr(resolution, "MAX_SIZE", 64)


@pytest.mark.parametrize(("sizes", "tile", "expected"), [
    ([(512, 512)] * 3, None, 256),            # up to 2x the base: the base size
    ([(200, 300), (250, 600)], None, 256),   # smaller images are enlarged to the base, as before
    ([(600, 900)] * 3, None, 288),           # half the short side, a multiple of 32
    ([(700, 700), (1000, 1000), (1100, 1500)], None, 512),  # half of 1000 px
    ([(2000, 3000)] * 2, None, resolution.MAX_SIZE),          # capped by the speed budget
    ([(1024, 1024)], 512, 256),              # tiles of 512 px: the base size
    ([], None, 256),                         # no training image (zero-shot): the base size
])
def test_rule(sizes, tile, expected):
    assert resolution.auto_size(sizes, tile) == expected


def test_auto_is_the_default_and_picks_the_base_for_small_images(small_rule, capsys):
    detector = oddity.create("padim", seed=0)
    assert detector.image_size == "auto"
    with pytest.raises(NotFittedError, match="auto"):
        detector.input_size()
    detector.fit(normal_images(12, 48), verbose=True)
    assert detector.input_size() == detector.image_size_ == 32
    assert detector.spec().image_size == 32 and detector.input_shape_ == (32, 32)
    assert "image_size auto" in capsys.readouterr().err


def test_auto_picks_a_larger_input_for_large_images(small_rule, tmp_path):
    images = normal_images(10, 128)
    detector = oddity.create("patchcore", seed=0).fit(images, verbose=False)
    assert detector.image_size_ == 64  # half of 128 px
    probe = normal_images(2, 128, seed=1)
    probe[1, 60:66, 60:66] = 1.0  # a 6 px defect
    result = detector.predict(probe, verbose=False)
    assert result.maps[1].shape == (128, 128) and result.scores[1] > result.scores[0]
    peak = np.unravel_index(np.argmax(result.maps[1]), (128, 128))
    assert 56 <= peak[0] <= 70 and 56 <= peak[1] <= 70


def test_resolved_size_round_trips_and_is_not_re_decided(small_rule, tmp_path, monkeypatch):
    images = normal_images(10, 128)
    detector = oddity.create("patchcore", seed=0).fit(images, verbose=False)
    path = tmp_path / "model.oddity"
    detector.save(path)
    document, _ = load_model(path)
    assert document["params"]["image_size"] == "auto" and document["state"]["image_size_"] == 64
    monkeypatch.setattr(resolution, "MAX_SIZE", 32)  # a rule that would now choose otherwise
    loaded = oddity.load(path)
    assert loaded.input_size() == 64
    np.testing.assert_allclose(loaded.score(images[:2], verbose=False).scores,
                               detector.score(images[:2], verbose=False).scores, rtol=1e-5)


def test_model_file_without_the_resolved_size_is_refused(small_rule, tmp_path):
    detector = oddity.create("padim", seed=0).fit(normal_images(12, 48), verbose=False)
    detector.save(tmp_path / "model.oddity")
    document, arrays = load_model(tmp_path / "model.oddity")
    document["state"]["image_size_"] = None
    document["state"]["pipeline"]["image_size"] = None
    save_model(tmp_path / "bad.oddity", document, arrays)
    with pytest.raises(ModelFileError, match="image_size_"):
        oddity.load(tmp_path / "bad.oddity")


def test_an_explicit_size_is_kept(small_rule, capsys):
    detector = oddity.create("padim", image_size=48, seed=0).fit(normal_images(12, 128), verbose=True)
    assert detector.input_size() == detector.image_size_ == 48 and detector.input_shape_ == (48, 48)
    assert "image_size auto" not in capsys.readouterr().err


@pytest.mark.parametrize("value", ["big", 16, 3.5, True, None])
def test_bad_values_are_refused(value):
    with pytest.raises(ConfigError, match="image_size"):
        oddity.create("patchcore", image_size=value)


def test_cli_option():
    assert image_size_option("auto") == "auto" and image_size_option("384") == 384
    with pytest.raises(argparse.ArgumentTypeError, match="auto"):
        image_size_option("large")
