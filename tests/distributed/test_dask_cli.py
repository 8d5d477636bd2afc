"""`oddity fit|predict|eval --dask ADDRESS` against a running scheduler: the same model, the
same prediction folder and the same metrics as without --dask."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import oddity
from oddity.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fitted(client, inspection_set, tmp_path_factory) -> Path:
    """A PatchCore model fitted with --dask (features on the workers)."""
    path = tmp_path_factory.mktemp("dask-cli") / "patchcore.oddity"
    assert main(["fit", "patchcore", "--data", str(inspection_set), "--out", str(path), "--image-size", "64",
                 "--quiet", "--dask", client.scheduler.address]) == 0
    return path


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_fit_with_dask_saves_the_model_a_local_fit_saves(fitted, inspection_set):
    local = oddity.create("patchcore", image_size=64).fit(inspection_set, verbose=False)
    model = oddity.load(fitted)
    assert np.array_equal(model.memory_bank_, local.memory_bank_)
    assert model.threshold_ == local.threshold_ and model.map_range_ == local.map_range_


def test_predict_and_eval_with_dask_write_what_local_runs_write(capsys, client, fitted, inspection_set, tmp_path):
    test = inspection_set / "test"
    for name, extra in (("local", []), ("dask", ["--dask", client.scheduler.address])):
        code, out, err = run(capsys, "predict", fitted, test, "--out", tmp_path / name, "--quiet", *extra)
        assert code == 0, err
        assert "overlays:" in out and "note:" not in out
        code, _, err = run(capsys, "eval", fitted, "--data", inspection_set, "--json", tmp_path / f"{name}.json",
                           "--quiet", *extra)
        assert code == 0, err
    assert digests(tmp_path / "dask") == digests(tmp_path / "local")
    timing = ("images_per_second", "seconds")
    local, dask = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "dask"))
    assert {k: v for k, v in dask.items() if k not in timing} == {k: v for k, v in local.items() if k not in timing}


def test_a_bad_address_is_one_line(capsys, fitted, inspection_set, tmp_path):
    code, _, err = run(capsys, "predict", fitted, inspection_set / "test", "--out", tmp_path / "p", "--dask", "local:0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "local:N with N >= 1" in err
