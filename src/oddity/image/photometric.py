"""Global photometric changes of an image: brightness, contrast, gamma and white balance.

What a change of lighting, exposure or camera settings does to a whole image between the
images a detector was fitted on and later ones. `SHIFTS` names the fixed shifts of the lighting
benchmark (`benchmarks/run_lighting.py`), applied to normal test images; `jitter` draws a
random change within a strength, the photometric augmentation of the normal images a detector
fits and calibrates on (`ImageDetector(fit_jitter=...)`; `JitteredSample` is a jittered image
to score). Images are (H, W, 3) float arrays in [0, 1]; every
function returns a new float32 array clipped to [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

__all__ = ["SHIFTS", "JitteredSample", "brightness", "contrast", "gamma", "jitter", "white_balance"]


def brightness(pixels: np.ndarray, factor: float) -> np.ndarray:
    """Every intensity times `factor` (an exposure or light-level change).
    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float32 RGB in [0, 1].
    factor : float
        The brightness factor (1 leaves the image unchanged).

    Returns
    -------
    numpy.ndarray
        The changed image, float32 clipped to [0, 1].
    """
    return np.clip(pixels * np.float32(factor), 0.0, 1.0).astype(np.float32)


def contrast(pixels: np.ndarray, factor: float) -> np.ndarray:
    """Intensities spread by `factor` about the image's mean (its mean is kept).
    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float32 RGB in [0, 1].
    factor : float
        The contrast factor (1 leaves the image unchanged).

    Returns
    -------
    numpy.ndarray
        The changed image, float32 clipped to [0, 1].
    """
    mean = np.float32(pixels.mean())
    return np.clip(mean + (pixels - mean) * np.float32(factor), 0.0, 1.0).astype(np.float32)


def gamma(pixels: np.ndarray, exponent: float) -> np.ndarray:
    """Intensities raised to `exponent` (< 1 brightens the mid-tones, > 1 darkens them).
    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float32 RGB in [0, 1].
    exponent : float
        The gamma exponent.

    Returns
    -------
    numpy.ndarray
        The changed image, float32 clipped to [0, 1].
    """
    return np.power(np.clip(pixels, 0.0, 1.0), np.float32(exponent)).astype(np.float32)


def white_balance(pixels: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Each channel (R, G, B) times its gain (a colour-temperature or white-balance change).
    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float32 RGB in [0, 1].
    gains : tuple of float
        (R, G, B) gains.

    Returns
    -------
    numpy.ndarray
        The changed image, float32 clipped to [0, 1].
    """
    return np.clip(pixels * np.asarray(gains, dtype=np.float32), 0.0, 1.0).astype(np.float32)


# The lighting benchmark's shifts: +-20% brightness and contrast, gamma 0.8 and 1.25, and a
# warm white balance (red up 10%, blue down 10%).
SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "brightness -20%": partial(brightness, factor=0.8),
    "brightness +20%": partial(brightness, factor=1.2),
    "contrast -20%": partial(contrast, factor=0.8),
    "contrast +20%": partial(contrast, factor=1.2),
    "gamma 0.8": partial(gamma, exponent=0.8),
    "gamma 1.25": partial(gamma, exponent=1.25),
    "white balance R+10% B-10%": partial(white_balance, gains=(1.1, 1.0, 0.9)),
}


def jitter(pixels: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A random global photometric change of `strength` s: brightness and contrast factors
    uniform in [1 - s, 1 + s], a gamma exponent log-uniform in [1 - s, 1 / (1 - s)] and
    white-balance gains uniform in [1 - s/2, 1 + s/2] per channel (at s = 0.2: +-20%, gamma
    0.8 to 1.25, gains 0.9 to 1.1, the range of `SHIFTS`).

    Parameters
    ----------
    pixels : numpy.ndarray
        (H, W, 3) float image in [0, 1].
    rng : numpy.random.Generator
        Source of the random factors.
    strength : float
        s, in (0, 1).

    Returns
    -------
    numpy.ndarray
        The changed image, float32 in [0, 1].
    """
    low, high = 1.0 - strength, 1.0 + strength
    changed = brightness(pixels, rng.uniform(low, high))
    changed = contrast(changed, rng.uniform(low, high))
    changed = gamma(changed, float(np.exp(rng.uniform(np.log(low), -np.log(low)))))
    return white_balance(changed, tuple(rng.uniform(1.0 - strength / 2, 1.0 + strength / 2, size=3)))


@dataclass(frozen=True)
class JitteredSample:
    """An image sample (anything with `.load()` and `.name`) loaded with a random `jitter` of
    `strength`, the same every time (drawn from `seed`)."""

    sample: Any
    strength: float
    seed: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.sample.name} (jittered)"

    def load(self) -> np.ndarray:
        """The sample's pixels with its fixed jitter.

        Returns
        -------
        numpy.ndarray
            (H, W, 3) float32 RGB in [0, 1].
        """
        return jitter(self.sample.load(), np.random.default_rng(self.seed), self.strength)
