"""`predict_to_folder`: workers write overlays and masks into the staged output; the folder
equals the one a local run writes, file for file and byte for byte."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image

import oddity
from oddity.distributed import predict_to_folder
from oddity.image.data import evaluation_samples, unlabelled_samples
from oddity.image.predictions import write_predictions


@pytest.fixture(scope="module")
def model(inspection_set, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dask-out") / "padim.oddity"
    oddity.create("padim", image_size=64, seed=0, calibration="holdout").fit(inspection_set, verbose=False).save(path)
    return str(path)


def contents(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-1 of every file under `folder` (hidden files included)."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def local_folder(model: str, samples: list, out: Path, skip_bad: bool = False) -> dict[str, str]:
    detector = oddity.load(model)
    detector.skip_bad = skip_bad
    write_predictions(out, detector.predict(samples, verbose=False, batch_size=2), detector.map_range_)
    return contents(out)


def test_the_workers_write_the_folder_a_local_run_writes(client, model, inspection_set, tmp_path, capsys):
    samples = evaluation_samples(inspection_set)
    expected = local_folder(model, samples, tmp_path / "local")
    prediction = predict_to_folder(client, model, samples, tmp_path / "dask", partition_size=2, batch_size=2)
    assert contents(tmp_path / "dask") == expected
    assert len([name for name in expected if name.startswith("overlays/")]) == len(samples)
    assert prediction.maps is None and prediction.paths == [s.name for s in samples]
    assert f"{len(samples) // 2}/{len(samples) // 2}" in capsys.readouterr().err  # progress over partitions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask", "local"]  # no staging folder left


def test_names_follow_the_readable_images_when_one_is_skipped(client, model, inspection_set, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    good = [s.path for s in evaluation_samples(inspection_set)][:4]
    for index, path in enumerate(good[:3]):
        shutil.copy(path, folder / f"a{index}.png")
    (folder / "x.jpg").write_bytes(b"not an image")  # unreadable, sorted before x.png
    Image.open(good[3]).save(folder / "x.png")  # named "x" locally, "x-2" among all inputs
    samples = unlabelled_samples([folder])
    expected = local_folder(model, samples, tmp_path / "local", skip_bad=True)
    predict_to_folder(client, model, samples, tmp_path / "dask", partition_size=2, batch_size=2,
                      skip_bad=True, verbose=False)
    assert "overlays/x.png" in expected
    assert contents(tmp_path / "dask") == expected


def test_a_model_without_a_colour_range_shares_the_run_range(client, model, inspection_set, tmp_path):
    old = oddity.load(model)
    old.map_range_ = None  # as saved before the range was kept
    old.save(tmp_path / "old.oddity")
    samples = evaluation_samples(inspection_set)
    expected = local_folder(str(tmp_path / "old.oddity"), samples, tmp_path / "local")
    prediction = predict_to_folder(client, str(tmp_path / "old.oddity"), samples, tmp_path / "dask",
                                   partition_size=2, batch_size=2, verbose=False)
    assert prediction.maps is not None  # gathered to share one scale
    assert contents(tmp_path / "dask") == expected
