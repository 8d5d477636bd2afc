"""Model choice without defect labels: `select_detector` and `oddity fit auto`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

import oddity
from oddity.cli import main
from oddity.core.errors import ConfigError, DataError
from oddity.image import select
from oddity.image.data import evaluation_samples, training_samples
from oddity.image.synth import inspection_images

SMALL = {"image_size": 64}
CANDIDATES = [("test-meandiff", SMALL), ("patchcore", SMALL)]


@pytest.fixture(scope="module")
def selection(inspection_set):
    return select.select_detector(inspection_set, candidates=CANDIDATES, keep_candidates=True, verbose=False)


def test_picks_the_best_scoring_candidate_and_refits_it_on_every_image(selection, inspection_set):
    rows = selection.rows
    assert [r.detector for r in rows] == ["test-meandiff", "patchcore"]
    assert all(r.error is None and 0.0 <= r.image_auroc <= 1.0 and r.pixel_auroc is not None for r in rows)
    assert selection.chosen == int(np.argmax([r.score for r in rows]))
    assert (selection.validation_images, selection.fit_images) == (4, 8)
    assert selection.anomalies == 4 * select.ANOMALIES_PER_IMAGE
    winner = selection.detector
    assert winner.name == rows[selection.chosen].detector and winner.is_fitted
    assert winner.threshold_.n_calibration == 12  # its own calibration, on all 12 images
    assert winner.selection_["chosen"] == winner.name and len(winner.selection_["rows"]) == 2
    assert [c.name for c in selection.candidates] == ["test-meandiff", "patchcore"]


def test_the_rule_adds_a_lighting_penalty_above_twice_the_allowed_rate(selection):
    for row in selection.rows:
        excess = max(0.0, row.lighting_fpr - 2 * row.allowed_fpr)
        expected = (row.image_auroc + row.pixel_auroc) / 2 - excess
        assert row.penalty == pytest.approx(excess) and row.score == pytest.approx(expected)
    assert select.selection_score(0.8, None, 0.0, 0.01) == (0.8, 0.0)  # no map: image AUROC twice


def test_a_tie_goes_to_the_candidate_listed_first(inspection_set):
    twice = [("test-meandiff", SMALL), ("test-meandiff", {**SMALL, "smoothing_sigma": 4.0})]
    chosen = select.select_detector(inspection_set, candidates=twice, refit=False, verbose=False)
    assert chosen.rows[0].score == chosen.rows[1].score and chosen.chosen == 0 and chosen.detector is None


def test_the_chosen_model_loads_and_predicts_with_its_table(selection, inspection_set, tmp_path):
    path = tmp_path / "auto.oddity"
    selection.detector.save(path)
    loaded = oddity.load(path)
    assert loaded.selection_ == json.loads(json.dumps(selection.to_dict()))
    samples = evaluation_samples(inspection_set)
    np.testing.assert_array_equal(loaded.predict(samples, verbose=False).scores,
                                  selection.detector.predict(samples, verbose=False).scores)


def test_synthetic_anomalies_change_exactly_their_masks():
    images = [item.pixels for item in inspection_images(n_train=2, n_test_good=0, n_test_defect=0, size=64)]
    for kind in select.ANOMALY_KINDS:
        image, mask = select.synthetic_anomaly(images[0], kind, np.random.default_rng(0), images[1])
        changed = np.abs(image - images[0]).max(axis=2) > 1e-6
        assert mask.any() and not changed[~mask].any(), kind
    with pytest.raises(ConfigError, match="unknown anomaly kind"):
        select.synthetic_anomaly(images[0], "dent", np.random.default_rng(0), images[1])


def test_the_validation_set_cycles_through_the_kinds_and_is_reproducible():
    images = [item.pixels for item in inspection_images(n_train=3, n_test_good=0, n_test_defect=0, size=64)]
    anomalies, masks = select.validation_set(images, 2, seed=0)
    assert [a.name.split("[")[0] for a in anomalies] == [*select.ANOMALY_KINDS, select.ANOMALY_KINDS[0]]
    assert all(m.shape == (64, 64) and m.any() for m in masks)
    again, _ = select.validation_set(images, 2, seed=0)
    other, _ = select.validation_set(images, 2, seed=1)
    np.testing.assert_array_equal(again[3].pixels, anomalies[3].pixels)
    assert not np.array_equal(other[3].pixels, anomalies[3].pixels)


def test_too_few_images_and_bad_candidates_are_refused(inspection_set):
    with pytest.raises(DataError, match="at least 12 normal images"):
        select.select_detector(training_samples(inspection_set)[:11], candidates=CANDIDATES, verbose=False)
    with pytest.raises(ConfigError, match="not an image detector that learns"):
        select.select_detector(inspection_set, candidates=[("musc", {})], verbose=False)


def test_fit_auto_prints_the_table_and_saves_the_winner(capsys, inspection_set, tmp_path, monkeypatch):
    monkeypatch.setattr(select, "CANDIDATES", tuple(CANDIDATES))
    out = tmp_path / "auto.oddity"
    assert main(["fit", "auto", "--data", str(inspection_set), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "rule: score =" in printed and "test-meandiff" in printed and "patchcore" in printed
    assert "chosen: " in printed and f"model saved to {out}" in printed
    with safe_open(str(out), framework="numpy") as handle:
        document = json.loads(handle.metadata()["oddity"])
    assert document["state"]["selection_"]["chosen"] == document["detector"]
    assert main(["predict", str(out), str(inspection_set / "test"), "--out", str(tmp_path / "p"), "--quiet"]) == 0


def test_fit_auto_refuses_options_of_one_detector(capsys, inspection_set, tmp_path):
    assert main(["fit", "auto", "--data", str(inspection_set), "--out", str(tmp_path / "m.oddity"),
                 "--image-size", "64"]) == 2
    assert "--image-size does not apply to `oddity fit auto`" in capsys.readouterr().err
    assert not (tmp_path / "m.oddity").exists()
