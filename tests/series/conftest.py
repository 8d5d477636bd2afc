"""Generated series shared by the series tests: a noisy seasonal signal with injected
anomalies (spikes and a level shift) at known steps, and a tiny NAB-layout folder."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
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


def write_nab(root, lengths=(400, 300), seed=0):
    """A tiny NAB-layout folder: group 'realTest' with one series per length, each with one
    anomaly window (a spike) after the probationary period, and 'artificialNoAnomaly' with
    one normal series. Returns the windows by name."""
    rng = np.random.default_rng(seed)
    windows = {}
    specs = [("realTest", f"s{i}.csv", n, True) for i, n in enumerate(lengths)]
    specs.append(("artificialNoAnomaly", "flat.csv", 200, False))
    for group, name, length, anomalous in specs:
        times = pd.date_range("2024-01-01", periods=length, freq="5min")
        values = np.sin(np.arange(length) / 8) + 0.05 * rng.normal(size=length)
        windows[f"{group}/{name}"] = []
        if anomalous:
            at = int(length * 0.7)
            values[at:at + 4] += 4.0
            windows[f"{group}/{name}"] = [[str(times[at - 5]), str(times[at + 8])]]
        (root / "data" / group).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": times, "value": values}).to_csv(
            root / "data" / group / name, index=False)
    (root / "labels").mkdir(exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return windows


@pytest.fixture
def nab_root(tmp_path):
    """A tiny NAB-layout folder (see `write_nab`)."""
    write_nab(tmp_path / "nab")
    return tmp_path / "nab"
