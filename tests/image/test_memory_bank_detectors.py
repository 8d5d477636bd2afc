"""PatchCore and PaDiM learn real normality on generated data, keep maps at each image's size,
survive a save/load round trip, and keep their documented bounds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import oddity
from oddity.image.data import evaluation_samples
from oddity.image.detectors.patchcore import greedy_coreset, patch_chunks, streamed_coreset
from oddity.image.features import concat_on_first_grid, feature_extractor
from oddity.image.synth import inspection_images, make_inspection_set

SMALL = {"image_size": 64, "seed": 0}


@pytest.fixture(scope="module", params=[("patchcore", {}), ("padim", {}),
                                        ("patchcore", {"border_rings": 0})],
                ids=["patchcore", "padim", "patchcore-eq7"])
def fitted(request, inspection_set):
    name, extra = request.param
    detector = oddity.create(name, **SMALL, **extra)
    return detector.fit(inspection_set, verbose=False)


def test_detects_synthetic_defects(fitted, inspection_set, aurocs):
    samples = evaluation_samples(inspection_set)
    result = fitted.predict(samples, verbose=False)
    image_auroc, pixel_auroc = aurocs(samples, result)
    assert image_auroc >= 0.9 and pixel_auroc >= 0.9
    assert result.labels.dtype == bool and result.masks[0].shape == result.maps[0].shape


def test_save_load_gives_identical_scores(fitted, inspection_set, tmp_path):
    path = tmp_path / "model.oddity"
    fitted.save(path)
    loaded = oddity.load(path)
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    samples = evaluation_samples(inspection_set)[:3]
    before, after = fitted.score(samples, verbose=False), loaded.score(samples, verbose=False)
    np.testing.assert_allclose(after.scores, before.scores, rtol=1e-6)
    np.testing.assert_allclose(after.maps[0], before.maps[0], rtol=1e-5, atol=1e-6)
    assert loaded.threshold_ == fitted.threshold_


@pytest.mark.parametrize("tile", [None, 40])
def test_maps_come_back_at_the_original_non_square_size(fitted, tile):
    fitted.tile = tile
    try:
        images = [np.random.default_rng(0).random((50, 130, 3)).astype(np.float32),
                  np.random.default_rng(1).random((97, 61, 3)).astype(np.float32)]
        result = fitted.score(images, verbose=False)
    finally:
        fitted.tile = None
    assert [m.shape for m in result.maps] == [(50, 130), (97, 61)]
    assert np.all(np.isfinite(result.scores))


@pytest.mark.parametrize("name, method, n_calibration",
                         [("patchcore", "leave-one-image-out", 40), ("padim", "cross-conformal", 40)])
def test_calibrated_threshold_passes_most_normal_images(name, method, n_calibration, tmp_path):
    root = make_inspection_set(tmp_path / "normal", n_train=40, n_test_good=20, n_test_defect=0,
                               size=64, seed=5, texture="stripes")
    detector = oddity.create(name, **SMALL).fit(root, verbose=False)
    # PatchCore leaves each of the 40 images out of its bank; PaDiM cross-fits on all 40
    assert detector.threshold_.method == method and detector.threshold_.n_calibration == n_calibration
    normal = [s for s in evaluation_samples(root) if s.label == 0]
    # the calibration bounds the false-positive rate by 1/41 in expectation; 20 test
    # images leave room for chance, not for a threshold calibrated on the wrong scores.
    assert detector.predict(normal, verbose=False).labels.mean() <= 0.3


def test_greedy_coreset_picks_the_farthest_points():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 10.0], [0.05, 0.05]])
    chosen = greedy_coreset(points, 3, seed=0)
    assert len(set(chosen.tolist())) == 3
    # Whatever the start, the three chosen points must cover the three clusters.
    clusters = {0: 0, 1: 0, 4: 0, 2: 1, 3: 2}
    assert {clusters[i] for i in chosen.tolist()} == {0, 1, 2}


def test_patch_chunks_keep_every_row_in_order_within_the_limit():
    sets = [torch.full((n, 2), float(i)) for i, n in enumerate([3, 4, 2, 9, 1])]
    chunks = list(patch_chunks(sets, limit=6))
    assert [len(c) for c in chunks] == [3, 6, 9, 1]  # a set larger than the limit stands alone
    assert torch.equal(torch.cat(chunks), torch.cat(sets))


def test_streamed_coreset_covers_clusters_spread_over_chunks():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    # each chunk holds two of the four clusters, so no single chunk sees them all
    chunks = [torch.cat([centres[a] + 0.1 * torch.randn(50, 2, generator=generator),
                         centres[b] + 0.1 * torch.randn(50, 2, generator=generator)])
              for a, b in ((0, 1), (2, 3), (1, 2))]
    kept = streamed_coreset(iter(chunks), ratio=0.02, max_size=4, seed=0)
    assert kept.shape == (4, 2)  # 2 per chunk = 6, cut to the hard cap by the last pass
    nearest = torch.cdist(centres, kept).min(dim=1).values
    assert (nearest < 1.0).all()  # every cluster keeps a representative
    single = streamed_coreset(iter(chunks[:1]), ratio=0.02, max_size=4, seed=0)
    assert torch.equal(single, chunks[0][greedy_coreset(chunks[0], 2, seed=0)])


def test_patchcore_bank_respects_ratio_and_hard_cap(inspection_set):
    capped = oddity.create("patchcore", coreset_ratio=0.5, max_bank_size=50, **SMALL).fit(inspection_set, verbose=False)
    assert capped.memory_bank_.shape[0] == 50
    ratio = oddity.create("patchcore", coreset_ratio=0.02, **SMALL).fit(inspection_set, verbose=False)
    patches_per_image = 8 * 8  # 64 px input, stride 8
    n_fit = 12  # fitted on all 12 (calibrated leaving one image out)
    assert ratio.memory_bank_.shape[0] == round(0.02 * n_fit * patches_per_image)


def test_padim_distance_is_the_mahalanobis_distance(inspection_set):
    detector = oddity.create("padim", **SMALL).fit(inspection_set, verbose=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        extractor = feature_extractor(detector.backbone, detector.layers, detector.input_norm)
        features = concat_on_first_grid(extractor(x))[0][torch.from_numpy(detector.channels_)]
        score_map = detector.kernel()(x)[1][0].numpy()
    whitening = detector.whitening_[0].double().numpy()
    covariance = np.linalg.inv(whitening.T @ whitening)
    delta = features[:, 0, 0].double().numpy() - detector.mean_[0].double().numpy()
    expected = np.sqrt(delta @ np.linalg.solve(covariance, delta))
    assert score_map.shape == tuple(features.shape[1:])
    assert score_map[0, 0] == pytest.approx(expected, rel=1e-4)


def test_unfitted_detector_refuses_to_score():
    with pytest.raises(oddity.OddityError, match="not fitted"):
        oddity.create("patchcore").score([np.zeros((32, 32, 3), np.float32)])


def test_detectors_are_registered():
    assert {"patchcore", "padim"} <= set(oddity.list_detectors())


def test_padim_accepts_in_memory_images():
    images = [item.pixels for item in inspection_images(n_train=6, n_test_good=0, n_test_defect=0,
                                                        size=48, seed=3)]
    detector = oddity.create("padim", image_size=48).fit(np.stack(images), verbose=False)
    assert detector.input_shape_ == (48, 48)


def test_per_image_contrast_removes_exposure_differences():
    from oddity.image.geometry import standardise_contrast

    image = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32) * 0.2
    darker = image * 0.5
    np.testing.assert_allclose(standardise_contrast(image), standardise_contrast(darker), atol=1e-5)
    assert standardise_contrast(image).mean() == pytest.approx(0.45, abs=0.02)


def test_patch_chunks_grow_their_buffer_without_losing_rows():
    sets = [torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) + 100 * i for i, n in enumerate([5, 7, 2, 6])]
    chunks = list(patch_chunks(sets, limit=14, initial_rows=4))  # buffer grows 5 -> 12 -> 14
    assert [len(c) for c in chunks] == [14, 6]
    assert torch.equal(torch.cat(chunks), torch.cat(sets))
