"""MuSc scores a batch of unlabelled images against each other: it finds and localises generated
defects with no training image, its chunked search equals the one-pass search, it refuses a
batch too small to score, and its configuration survives save/load and the CLI."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import oddity
from oddity.cli import main
from oddity.core.errors import DataError
from oddity.core.thresholds import batch_threshold
from oddity.image.data import evaluation_samples
from oddity.image.detectors.musc import mutual_scores, rescore
from oddity.image.synth import make_inspection_set

SMALL = {"image_size": 64, "seed": 0}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """A test split that is mostly normal, as MuSc assumes (12 good, 2 x 3 defective images), and
    one training image that zero-shot scoring must ignore."""
    root = tmp_path_factory.mktemp("musc") / "stripes"
    return make_inspection_set(root, n_train=1, n_test_good=12, n_test_defect=2, size=64,
                               seed=3, texture="stripes")


@pytest.fixture(scope="module")
def prediction(batch):
    return oddity.create("musc", **SMALL).predict(evaluation_samples(batch), verbose=False)


def test_finds_and_localises_defects_without_training(batch, prediction, aurocs):
    samples = evaluation_samples(batch)
    labels = np.array([s.label for s in samples])
    image_auroc, pixel_auroc = aurocs(samples, prediction)
    assert image_auroc >= 0.9 and pixel_auroc >= 0.9
    assert prediction.maps[0].shape == (64, 64) and prediction.masks[0].dtype == bool
    # thresholds come from the batch itself: most normal images stay below, some defect is caught
    assert prediction.labels[labels == 0].mean() <= 0.25 and prediction.labels[labels == 1].any()


def test_chunked_search_equals_one_pass():
    rng = np.random.default_rng(0)
    patches = [rng.standard_normal((int(rng.integers(20, 40)), 8)).astype(np.float32) for _ in range(9)]
    references = list(range(9))
    whole = mutual_scores(patches, references, 0.3, chunk_bytes=2**30)
    chunked = mutual_scores(patches, references, 0.3, chunk_bytes=1)  # one image per chunk
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    # against a brute-force reference: per other image the nearest patch, mean of the 2 smallest
    distances = [np.linalg.norm(patches[0][:, None] - other[None], axis=2).min(1) for other in patches[1:]]
    expected = np.sort(np.stack(distances, 1), axis=1)[:, :2].mean(1)
    np.testing.assert_allclose(whole[0], expected, rtol=1e-4)


def test_reference_cap_keeps_scores_sensible(batch, prediction):
    samples = evaluation_samples(batch)
    capped = oddity.create("musc", max_references=8, **SMALL).score(samples, verbose=False)
    labels = np.array([s.label for s in samples])
    assert roc_auc_score(labels, capped.scores) >= 0.9


def test_rescoring_averages_over_similar_images():
    scores = np.array([0.0, 1.0, 2.0, 4.0])
    embeddings = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    np.testing.assert_allclose(rescore(scores, embeddings, (1,)), scores / 4)
    np.testing.assert_allclose(rescore(scores, embeddings, (2,)), [0.125, 0.125, 0.75, 0.75], atol=1e-6)


def test_a_single_image_cannot_be_scored(batch):
    single = evaluation_samples(batch)[:1]
    with pytest.raises(DataError, match="at least 2 images"):
        oddity.create("musc", **SMALL).score(single, verbose=False)


def test_fit_stores_configuration_only_and_survives_save_load(batch, prediction, tmp_path):
    detector = oddity.create("musc", interval=0.5, **SMALL)
    with pytest.warns(UserWarning, match="zero-shot"):
        assert detector.fit(batch, verbose=False) is detector
    detector.save(tmp_path / "musc.oddity")
    loaded = oddity.load(tmp_path / "musc.oddity")
    assert loaded.get_params() == detector.get_params() and loaded.threshold_ is None
    samples = evaluation_samples(batch)[:6]
    np.testing.assert_allclose(loaded.score(samples, verbose=False).scores,
                               detector.score(samples, verbose=False).scores)


def test_batch_threshold_ignores_a_minority_of_outliers():
    scores = np.concatenate([np.random.default_rng(0).standard_normal(400), np.full(40, 10.0)])
    threshold = batch_threshold(scores, target_fpr=0.01)
    assert 1.9 < threshold.value < 3.0 and threshold.method == "batch median + MAD"


def test_cli_zeroshot_writes_predictions_and_eval_ignores_train(batch, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["zeroshot", str(batch / "test"), "--out", str(out), "--image-size", "64",
                 "--set", "chunk_mb=1", "--quiet"]) == 0
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == 18 and all((out / row["overlay"]).is_file() and (out / row["mask"]).is_file()
                                   for row in rows)
    model = tmp_path / "musc.oddity"
    assert main(["fit", "musc", "--data", str(batch), "--out", str(model), "--image-size", "64", "--quiet"]) == 0
    assert main(["eval", str(model), "--data", str(batch), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "nothing to learn" in printed and "zero-shot: the 18 test images" in printed
    assert main(["zeroshot", str(batch / "test"), "--out", str(tmp_path / "x"), "--detector", "padim"]) == 2
