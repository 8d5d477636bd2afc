"""`oddity fit --shots` and `oddity compare` end to end on tiny generated images."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import oddity
from oddity.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_reference import centre_crop, machined_part, moved_crop  # noqa: E402


def _save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(path)
    return path


def test_fit_with_shots_saves_a_few_shot_model(inspection_set, tmp_path, capsys):
    model = tmp_path / "m.oddity"
    assert main(["fit", "patchcore", "--data", str(inspection_set), "--out", str(model), "--shots", "2",
                 "--seed", "1", "--augment", "flips", "--image-size", "64", "--quiet"]) == 0
    assert "on 2 of the 12 images" in capsys.readouterr().out
    loaded = oddity.load(model)
    assert loaded.coreset_ratio == 1.0 and loaded.threshold_.method == "leave-one-shot-out"
    assert len(loaded.memory_bank_) == 2 * 3 * 64  # two shots, three views, 8x8 patches


def test_augment_without_shots_is_refused(inspection_set, tmp_path, capsys):
    code = main(["fit", "patchcore", "--data", str(inspection_set), "--out", str(tmp_path / "m"),
                 "--augment", "flips", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --augment applies to few-shot fits only")


def test_compare_writes_its_outputs(tmp_path, capsys):
    part = machined_part()
    reference = _save(tmp_path / "ref.png", centre_crop(part))
    query = _save(tmp_path / "query.png", moved_crop(part)[0])
    out = tmp_path / "out"
    assert main(["compare", str(reference), str(query), "--out", str(out), "--quiet"]) == 0
    assert "inliers" in capsys.readouterr().out
    document = json.loads((out / "comparison.json").read_text())
    assert document["alignment"]["ok"] and document["alignment"]["inliers"] >= 15
    assert document["score"] > 0 and len(document["alignment"]["homography"]) == 3
    for name in ("heatmap.png", "warped.png"):
        assert Image.open(out / name).size == (192, 192)


def test_compare_reports_a_failed_alignment(tmp_path, capsys):
    reference = _save(tmp_path / "ref.png", centre_crop(machined_part()))
    flat = _save(tmp_path / "flat.png", np.full((192, 192, 3), 0.5))
    code = main(["compare", str(reference), str(flat), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "not aligned" in err and "inliers of" in err
    assert not (tmp_path / "out").exists()
