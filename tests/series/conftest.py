"""Generated series shared by the series tests: a noisy seasonal signal with injected
anomalies (spikes and a level shift) at known steps."""
from __future__ import annotations

import numpy as np
import pytest


def seasonal_series(length: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    """(length, channels) sine waves of period 50 plus Gaussian noise (std 0.1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)[:, None]
    return np.sin(2 * np.pi * t / 50 + np.arange(channels)) + 0.1 * rng.normal(size=(length, channels))


@pytest.fixture(name="seasonal_series")
def seasonal_series_fixture():
    """The generator `seasonal_series(length, seed=0, channels=1)`."""
    return seasonal_series


@pytest.fixture
def injected() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normal history (1000, 2), test series (1000, 2), per-step labels (1000,)): the test
    series has three spikes and one 20-step level shift, all in channel 1."""
    history = seasonal_series(1000, seed=1, channels=2)
    test = seasonal_series(1000, seed=2, channels=2)
    labels = np.zeros(1000, bool)
    for start, length, size in ((200, 3, 3.0), (450, 2, -3.0), (600, 20, 1.5), (850, 3, 3.0)):
        test[start:start + length, 1] += size
        labels[start:start + length] = True
    return history, test, labels
