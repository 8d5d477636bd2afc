"""Global photometric shifts do what they say, `jitter` stays in its stated range, and
`fit_jitter` makes a detector read a lighting change of normal parts as normal while it still
flags a defect; the setting is saved with the model."""
from __future__ import annotations

import numpy as np
import pytest

import oddity
from oddity.core.errors import ConfigError
from oddity.image.data import ArraySample
from oddity.image.photometric import SHIFTS, JitteredSample, brightness, contrast, gamma, jitter, white_balance


def image(seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.3, 0.7, size=(size, size, 3)).astype(np.float32)


def test_shifts_change_intensities_as_named():
    pixels = image()
    assert np.allclose(brightness(pixels, 0.8), pixels * 0.8)
    assert np.allclose(brightness(np.full((2, 2, 3), 0.9, np.float32), 1.2), 1.0)  # clipped
    stretched = contrast(pixels, 1.2)
    assert stretched.mean() == pytest.approx(pixels.mean(), abs=1e-6)
    assert stretched.std() == pytest.approx(1.2 * pixels.std(), rel=1e-5)
    assert np.allclose(gamma(pixels, 1.25), pixels ** 1.25)
    warm = white_balance(pixels, (1.1, 1.0, 0.9))
    assert np.allclose(warm / pixels, [1.1, 1.0, 0.9], atol=1e-6)
    for shift in SHIFTS.values():
        shifted = shift(pixels)
        assert shifted.dtype == np.float32 and 0.0 <= shifted.min() and shifted.max() <= 1.0
        assert not np.allclose(shifted, pixels)


def test_jitter_stays_within_its_strength_and_is_reproducible():
    flat = np.full((4, 4, 3), 0.5, dtype=np.float32)  # contrast has no effect on a flat image
    values = np.array([jitter(flat, np.random.default_rng(seed), 0.2)[0, 0] for seed in range(200)])
    # brightness 0.8-1.2 and gamma 0.8-1.25 on 0.5, then gains 0.9-1.1
    low, high = (0.4 ** 1.25) * 0.9, (0.6 ** 0.8) * 1.1
    assert low <= values.min() and values.max() <= high
    assert values.std() > 0.02  # it does vary
    sample = JitteredSample(ArraySample(image(), "a"), 0.2, (0, 1))
    assert np.array_equal(sample.load(), sample.load()) and sample.name == "a (jittered)"


def normal_set(count: int = 24) -> np.ndarray:
    """Smooth normal parts: one pattern, small noise."""
    grid = np.linspace(0, 1, 64, dtype=np.float32)
    pattern = 0.35 + 0.2 * np.sin(6 * grid)[:, None] * np.cos(4 * grid)[None, :]
    rng = np.random.default_rng(0)
    return np.stack([np.repeat(pattern[:, :, None], 3, axis=2) + rng.normal(0, 0.01, (64, 64, 3))
                     for _ in range(count)]).clip(0, 1).astype(np.float32)


def test_fit_jitter_reads_darker_normal_parts_as_normal_and_still_flags_defects():
    normal = normal_set()
    fit, test = normal[:20], normal[20:]
    darker = np.stack([brightness(p, 0.8) for p in test])
    defect = test.copy()
    defect[:, 20:36, 20:36] = 1.0
    plain = oddity.create("test-meandiff", image_size=64, seed=0).fit(fit, verbose=False)
    jittered = oddity.create("test-meandiff", image_size=64, seed=0, fit_jitter=0.2).fit(fit, verbose=False)
    assert plain.predict(darker, verbose=False).labels.all()  # without: every darker part flagged
    assert not jittered.predict(darker, verbose=False).labels.any()
    assert jittered.predict(defect, verbose=False).labels.all()
    # one calibration score per held-out image: the larger of its own and a jittered copy's
    assert jittered.threshold_.n_calibration == plain.threshold_.n_calibration


def test_fit_jitter_is_saved_and_checked(tmp_path):
    detector = oddity.create("test-meandiff", image_size=64, fit_jitter=0.2).fit(normal_set(12), verbose=False)
    detector.save(tmp_path / "model")
    assert oddity.load(tmp_path / "model").fit_jitter == 0.2
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="fit_jitter"):
            oddity.create("test-meandiff", fit_jitter=bad)
