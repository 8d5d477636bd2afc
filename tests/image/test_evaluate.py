"""evaluate(): metric keys and values, masks at image size, no-mask and mixed-size sets."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

import oddity
from oddity.core.errors import DataError
from oddity.image.evaluate import METRIC_LABELS, _pixel_metrics, evaluate
from oddity.metrics import aupro

KEYS = {"image_auroc", "image_aupr", "image_f1max", "pixel_auroc", "aupro",
        "images_per_second", "test_images", "seconds"}


@pytest.fixture(scope="module")
def detector(inspection_set):
    return oddity.create("test-meandiff", image_size=64).fit(inspection_set, verbose=False)


def test_metrics_on_synthetic_set(detector, inspection_set):
    evaluation = evaluate(detector, inspection_set, verbose=False)
    assert set(evaluation.metrics) == KEYS == set(METRIC_LABELS)
    metrics = evaluation.metrics
    assert metrics["test_images"] == 4 + 3 * 2 == len(evaluation.paths) == len(evaluation.maps)
    for key in ("image_auroc", "image_aupr", "image_f1max", "pixel_auroc", "aupro"):
        assert 0.0 <= metrics[key] <= 1.0
    # Even the mean-image baseline separates these synthetic defects well.
    assert metrics["image_auroc"] > 0.8 and metrics["pixel_auroc"] > 0.8
    assert metrics["seconds"] > 0 and metrics["images_per_second"] == pytest.approx(10 / metrics["seconds"])
    assert list(evaluation.labels) == [int(d != "good") for d in evaluation.defects]
    for score_map, mask, label in zip(evaluation.maps, evaluation.masks, evaluation.labels):
        assert mask is not None and mask.shape == score_map.shape == (64, 64)
        assert mask.any() == bool(label)
    assert evaluation.threshold == detector.threshold_.value
    json.dumps(metrics, allow_nan=False)


def test_pixel_metrics_are_none_without_masks(detector, inspection_set, tmp_path):
    root = tmp_path / "nomasks"
    shutil.copytree(inspection_set, root, ignore=shutil.ignore_patterns("ground_truth"))
    evaluation = evaluate(detector, root, verbose=False)
    assert evaluation.metrics["pixel_auroc"] is None and evaluation.metrics["aupro"] is None
    assert evaluation.metrics["image_auroc"] is not None
    assert any("mask" in note for note in evaluation.notes)
    assert json.loads(json.dumps(evaluation.metrics))["aupro"] is None


def test_mixed_image_sizes(detector, inspection_set, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(inspection_set, root)
    for name in ("000", "001"):  # a normal image at another size
        path = root / "test" / "good" / f"{name}.png"
        Image.open(path).resize((80, 64)).save(path)
    evaluation = evaluate(detector, root, verbose=False)
    assert {m.shape for m in evaluation.maps} == {(64, 64), (64, 80)}
    assert 0.0 <= evaluation.metrics["aupro"] <= 1.0
    assert any("differ in size" in note for note in evaluation.notes)


def test_pixel_metrics_of_mixed_sizes_pool_pixels_exactly():
    rng = np.random.default_rng(0)
    maps = [rng.random((20, 30)), rng.random((20, 20)), rng.random((20, 30))]
    masks = [np.zeros((20, 30), bool), np.zeros((20, 20), bool), np.zeros((20, 30), bool)]
    masks[1][5:10, 5:10] = True
    masks[2][0:4, 0:6] = True
    maps[1][5:10, 5:10] += 0.5
    notes: list[str] = []
    auroc, pro = _pixel_metrics(maps, masks, notes)
    expected = roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
    assert auroc == pytest.approx(expected)
    assert 0 <= pro <= 1 and notes
    same_size = [m[:, :20] for m in maps], [m[:, :20] for m in masks]
    notes = []
    assert _pixel_metrics(*same_size, notes)[1] == pytest.approx(aupro(np.stack(same_size[0]), np.stack(same_size[1])))
    assert not notes


def test_test_set_with_one_class_is_a_data_error(detector, inspection_set, tmp_path):
    root = tmp_path / "only-good"
    shutil.copytree(inspection_set / "test" / "good", root / "good")
    with pytest.raises(DataError, match="every scored test image is normal"):
        evaluate(detector, root, verbose=False)
