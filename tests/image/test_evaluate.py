"""evaluate(): metric keys and values, masks at image size, no-mask and mixed-size sets, AUPIMO."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

import oddity
from oddity.core.errors import DataError
from oddity.image.evaluate import METRIC_LABELS, evaluate, metric_rows, pixel_metrics
from oddity.image.synth import make_inspection_set
from oddity.metrics import aupimo, aupro

KEYS = {"image_auroc", "image_aupr", "image_f1max", "pixel_auroc", "aupro", "aupimo",
        "images_per_second", "test_images", "seconds", "target_fpr", "expected_fpr", "realised_fpr"}


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
    # 4 normal images of 64x64 cannot reach a shared FPR of 1e-5: AUPIMO is None, with a note.
    assert metrics["aupimo"] is None and evaluation.aupimo is None
    assert any(note.startswith("AUPIMO not computed") and "FPR" in note for note in evaluation.notes)
    assert ("AUPIMO (mean, FPR 1e-5 to 1e-4)", "n/a") in metric_rows(metrics)


@pytest.fixture(scope="module")
def larger_set(tmp_path_factory):
    """8 normal test images of 128x128: enough normal pixels to reach AUPIMO's FPR 1e-5."""
    return make_inspection_set(tmp_path_factory.mktemp("synth128") / "stripes", n_train=12,
                               n_test_good=8, n_test_defect=2, size=128, seed=1, texture="stripes")


def test_aupimo_per_image_and_mean(larger_set):
    detector = oddity.create("test-meandiff", image_size=128).fit(larger_set, verbose=False)
    evaluation = evaluate(detector, larger_set, verbose=False)
    masks = [m.astype(bool) for m in evaluation.masks]
    expected = aupimo(evaluation.maps, masks)
    np.testing.assert_array_equal(evaluation.aupimo, expected.per_image)
    assert evaluation.metrics["aupimo"] == pytest.approx(expected.mean)
    assert np.isnan(evaluation.aupimo[evaluation.labels == 0]).all()
    assert not np.isnan(evaluation.aupimo[evaluation.labels == 1]).any()
    assert 0.0 < evaluation.metrics["aupimo"] <= 1.0
    assert not [n for n in evaluation.notes if "AUPIMO" in n]
    label, text = metric_rows(evaluation.metrics)[list(METRIC_LABELS).index("aupimo")]
    assert label.startswith("AUPIMO") and text == f"{evaluation.metrics['aupimo']:.4f}"


def test_aupimo_keeps_images_without_masks_out(larger_set, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(larger_set, root)
    removed = sorted((root / "ground_truth" / "scratch").glob("*.png"))[0]
    removed.unlink()
    detector = oddity.create("test-meandiff", image_size=128).fit(root, verbose=False)
    evaluation = evaluate(detector, root, verbose=False)
    unknown = [i for i, m in enumerate(evaluation.masks) if m is None]
    assert len(unknown) == 1 and evaluation.labels[unknown[0]] == 1
    assert np.isnan(evaluation.aupimo[unknown[0]])
    known = [i for i, m in enumerate(evaluation.masks) if m is not None]
    expected = aupimo([evaluation.maps[i] for i in known], [evaluation.masks[i] for i in known])
    np.testing.assert_array_equal(evaluation.aupimo[known], expected.per_image)


def testpixel_metrics_are_none_without_masks(detector, inspection_set, tmp_path):
    root = tmp_path / "nomasks"
    shutil.copytree(inspection_set, root, ignore=shutil.ignore_patterns("ground_truth"))
    evaluation = evaluate(detector, root, verbose=False)
    assert evaluation.metrics["pixel_auroc"] is None and evaluation.metrics["aupro"] is None
    assert evaluation.metrics["image_auroc"] is not None
    assert any("mask" in note for note in evaluation.notes)
    assert json.loads(json.dumps(evaluation.metrics))["aupro"] is None


def test_mixed_image_sizes_are_evaluated_exactly(detector, inspection_set, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(inspection_set, root)
    for name in ("000", "001"):  # a normal image at another size
        path = root / "test" / "good" / f"{name}.png"
        Image.open(path).resize((80, 64)).save(path)
    evaluation = evaluate(detector, root, verbose=False)
    assert {m.shape for m in evaluation.maps} == {(64, 64), (64, 80)}
    masks = [m.astype(bool) for m in evaluation.masks]
    # No resizing: the metrics are those of the maps and masks as they are.
    assert evaluation.metrics["aupro"] == aupro(evaluation.maps, masks)
    pooled = roc_auc_score(np.concatenate([m.ravel() for m in masks]),
                           np.concatenate([m.ravel() for m in evaluation.maps]))
    assert evaluation.metrics["pixel_auroc"] == pytest.approx(pooled, abs=1e-12)
    assert not any("differ in size" in note or "resized" in note for note in evaluation.notes)


def testpixel_metrics_of_mixed_sizes_are_exact():
    rng = np.random.default_rng(0)
    maps = [rng.random((20, 30)), rng.random((20, 20)), rng.random((20, 30))]
    masks = [np.zeros((20, 30), bool), np.zeros((20, 20), bool), np.zeros((20, 30), bool)]
    masks[1][5:10, 5:10] = True
    masks[2][0:4, 0:6] = True
    maps[1][5:10, 5:10] += 0.5
    notes: list[str] = []
    auroc, pro, per_image = pixel_metrics(maps, masks, notes)
    expected = roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
    assert auroc == pytest.approx(expected)
    assert pro == aupro(maps, masks) and 0 <= pro <= 1
    # 600 normal pixels cannot reach FPR 1e-5: no AUPIMO, and a note says why.
    assert per_image is None and len(notes) == 1 and "AUPIMO not computed" in notes[0]
    same_size = [m[:, :20] for m in maps], [m[:, :20] for m in masks]
    assert pixel_metrics(*same_size, [])[1] == pytest.approx(aupro(np.stack(same_size[0]), np.stack(same_size[1])))


def test_test_set_with_one_class_is_a_data_error(detector, inspection_set, tmp_path):
    root = tmp_path / "only-good"
    shutil.copytree(inspection_set / "test" / "good", root / "good")
    with pytest.raises(DataError, match="every scored test image is normal"):
        evaluate(detector, root, verbose=False)


def test_cross_fitting_calibrates_on_every_training_image(inspection_set):
    cross = oddity.create("test-meandiff", image_size=48, calibration="cross").fit(inspection_set, verbose=False)
    assert cross.threshold_.method == "cross-conformal" and cross.threshold_.n_calibration == 12
    assert cross.pixel_threshold_.method == "cross-conformal" and cross.threshold_.fpr_interval is not None
    held = oddity.create("test-meandiff", image_size=48, calibration="holdout").fit(inspection_set, verbose=False)
    assert held.threshold_.method == "conformal" and held.threshold_.n_calibration == 3
    # the cross-fitted model learned from every image; the held-out one from 9 of 12
    assert not np.allclose(cross.mean_, held.mean_)
    # border statistics need held-out images: PatchCore's default keeps the hold-out
    assert not oddity.create("patchcore", calibration="cross").cross_fits(100)
    assert oddity.create("padim").cross_fits(100) and not oddity.create("padim").cross_fits(9)


def test_eval_reports_the_realised_false_positive_rate(inspection_set):
    from oddity.image.data import evaluation_samples

    detector = oddity.create("test-meandiff", image_size=48, target_fpr=0.2).fit(inspection_set, verbose=False)
    metrics = evaluate(detector, inspection_set, verbose=False).metrics
    normal = [s for s in evaluation_samples(inspection_set) if s.label == 0]
    scores = detector.score(normal, verbose=False).scores
    assert metrics["realised_fpr"] == pytest.approx(np.mean(scores > detector.threshold_.value))
    assert metrics["target_fpr"] == 0.2 and metrics["expected_fpr"] == pytest.approx(1 / 4)
