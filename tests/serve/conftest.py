"""Fixtures of the service tests: a tiny PatchCore fitted on generated images, a service over
a temporary SQLite store, and images (good, corrupt, bomb) made in memory."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import oddity
from oddity.image.data import evaluation_samples
from oddity.serve.adapter import load_models
from oddity.serve.app import create_app
from oddity.serve.files import FileStore
from oddity.serve.service import InspectionService
from oddity.serve.settings import ServiceSettings
from oddity.serve.store import InspectionStore


@pytest.fixture(scope="session")
def model_file(inspection_set, tmp_path_factory) -> Path:
    """A PatchCore at 64 px fitted on the synthetic set, saved as `parts.oddity`. Twelve
    training images leave three to calibrate on, too few for a 1% threshold, so the image
    threshold is set between the test set's normal and defective scores: the service tests
    check what the service does with labels, not the calibration."""
    path = tmp_path_factory.mktemp("models") / "parts.oddity"
    detector = oddity.create("patchcore", image_size=64, seed=0).fit(inspection_set, verbose=False)
    samples = evaluation_samples(inspection_set)
    scores = detector.score(samples, verbose=False).scores
    labels = np.array([s.label for s in samples])
    assert scores[labels == 0].max() < scores[labels == 1].min(), "the tiny model must separate the set"
    detector.set_threshold((scores[labels == 0].max() + scores[labels == 1].min()) / 2)
    detector.save(path)
    return path


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def test_images(inspection_set) -> dict[str, bytes]:
    """PNG bytes of a normal and a defective test image of the synthetic set."""
    samples = evaluation_samples(inspection_set)
    good = next(s for s in samples if s.label == 0)
    bad = next(s for s in samples if s.label == 1)
    return {"good": good.path.read_bytes(), "defect": bad.path.read_bytes()}


@pytest.fixture
def make_client(model_file, tmp_path) -> Callable[..., tuple[TestClient, InspectionService]]:
    """Build a service over `model_file` with a store in `tmp_path` (or `url`) and limits
    from keyword arguments; returns (test client, service). Closed at the end of the test."""
    opened: list[tuple[TestClient, InspectionService]] = []

    def make(url: str | None = None, **settings) -> tuple[TestClient, InspectionService]:
        store = InspectionStore.open(url or f"sqlite:///{tmp_path / 'store' / 'inspections.sqlite'}")
        service = InspectionService(load_models([str(model_file)]), store,
                                    FileStore(tmp_path / "store" / "files"), ServiceSettings(**settings))
        client = TestClient(create_app(service))
        opened.append((client, service))
        return client, service

    yield make
    for client, service in opened:
        client.close()
        service.close()


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()[0]


def post_images(client: TestClient, *images: bytes, threshold: str | None = None, headers=None,
                name: str = "parts"):
    """POST images to the predict route."""
    files = [("images", (f"part{i}.png", data, "image/png")) for i, data in enumerate(images)]
    form = {} if threshold is None else {"threshold": threshold}
    return client.post(f"/v1/models/{name}:predict", files=files, data=form, headers=headers or {})


@pytest.fixture
def predict() -> Callable:
    """`post_images`, for tests."""
    return post_images


@pytest.fixture(scope="session")
def series_model(tmp_path_factory) -> Path:
    """A rolling z-score series model (fixed threshold) fitted on a noisy sine, `oven.oddity`."""
    rng = np.random.default_rng(0)
    history = pd.DataFrame({"temperature": np.sin(np.arange(600) / 10) + 0.05 * rng.standard_normal(600)})
    path = tmp_path_factory.mktemp("series") / "oven.oddity"
    oddity.create("rolling_zscore", window=32, calibration="fixed").fit(history).save(path)
    return path


@pytest.fixture(scope="session")
def series_csv() -> Callable[..., bytes]:
    """A function: CSV bytes of a 300-row sine series with a jump of 6 at rows 150-152."""
    return make_series_csv


def make_series_csv(spike_at: int | None = 150, rows: int = 300) -> bytes:
    values = np.sin(np.arange(rows) / 10)
    if spike_at is not None:
        values[spike_at:spike_at + 3] += 6.0
    times = pd.date_range("2026-01-01", periods=rows, freq="min")
    return pd.DataFrame({"time": times, "temperature": values}).to_csv(index=False).encode()
