"""Leave-one-image-out calibration of PatchCore: every training image is scored by the fitted
bank without the rows it gave, exactly as a brute-force search of that smaller bank scores it,
and those scores set the thresholds, the method recorded and saved."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import softmax

import oddity
from oddity.core.thresholds import calibrate_threshold
from oddity.image.border import BorderStandardiser, ring_index

PARAMS = {"image_size": 64, "seed": 0, "coreset_ratio": 0.25}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(5)
    base = rng.uniform(0.3, 0.7, size=(1, 64, 64, 3))
    return np.clip(base + rng.normal(0.0, 0.05, size=(12, 64, 64, 3)), 0.0, 1.0).astype(np.float32)


def twin_images() -> np.ndarray:
    """A texture, its near copy and ten images of another texture: some bank rows of the
    copy have most of their nearest rows in the first image, so leaving that one out empties
    their wider neighbour lists and the support is searched again."""
    rng = np.random.default_rng(5)
    first, other = rng.uniform(0.0, 1.0, size=(64, 64, 3)), rng.uniform(0.4, 0.6, size=(64, 64, 3))
    copies = [first + rng.normal(0.0, 1e-3, first.shape)] + [other + rng.normal(0.0, 0.01, other.shape)
                                                             for _ in range(10)]
    return np.clip(np.stack([first, *copies]), 0.0, 1.0).astype(np.float32)


def brute_force(detector, image: np.ndarray, left_out: int) -> tuple[float, np.ndarray]:
    """Eq. 7 score and distance map of `image` against the bank without image `left_out`'s
    rows, by exact float64 search (the support neighbours searched within that bank too)."""
    x = torch.from_numpy(detector.spec().model_input(image))[None]
    with torch.inference_mode():
        patches = detector.fit_features(x).astype(np.float64)
    bank = detector.memory_bank_[detector.bank_sources_ != left_out].astype(np.float64)
    distances = cdist(patches, bank)
    nearest, closest = distances.min(axis=1), distances.argmin(axis=1)
    worst = int(nearest.argmax())
    support = np.argsort(cdist(bank[closest[worst]][None], bank)[0])[:detector.reweight_neighbours]
    weight = 1.0 - softmax(np.linalg.norm(bank[support] - patches[worst], axis=1))[0]
    side = int(np.sqrt(len(patches)))
    return weight * nearest[worst], nearest.reshape(side, side)


@pytest.mark.parametrize("kind", ["noisy", "twins"])
def test_left_out_scores_equal_a_brute_force_search_of_the_smaller_bank(images, kind):
    images = images if kind == "noisy" else twin_images()
    detector = oddity.create("patchcore", border_rings=0, **PARAMS).fit(images, verbose=False)
    sources = detector.bank_sources_
    assert len(set(sources.tolist())) > 6  # the bank draws on many images
    wide = np.argsort(cdist(detector.memory_bank_, detector.memory_bank_), axis=1)[:, :2 * detector.reweight_neighbours]
    short = [int(((sources != i)[wide[sources != i]].sum(axis=1) < detector.reweight_neighbours).sum())
             for i in range(len(images))]
    assert (sum(short) > 0) == (kind == "twins")  # the twins need the exact fallback search
    expected = []
    for index, image in enumerate(images):
        score, distance_map = brute_force(detector, image, index)
        with torch.inference_mode():
            scores, maps = detector.kernel(left_out=index)(torch.from_numpy(detector.spec().model_input(image))[None])
        np.testing.assert_allclose(maps[0].numpy(), distance_map, rtol=1e-4, atol=1e-4)
        assert float(scores[0]) == pytest.approx(score, rel=1e-4)
        expected.append(score)
    wanted = calibrate_threshold(np.array(expected), detector.target_fpr, "leave-one-image-out")
    assert detector.threshold_.method == "leave-one-image-out" and detector.threshold_.n_calibration == 12
    assert detector.threshold_.value == pytest.approx(wanted.value, rel=1e-4)
    assert detector.threshold_.fpr_interval is not None


def test_border_statistics_come_from_the_left_out_maps(images):
    detector = oddity.create("patchcore", **PARAMS).fit(images, verbose=False)
    maps = [brute_force(detector, image, index)[1] for index, image in enumerate(images)]
    expected = BorderStandardiser.fit(maps, detector.border_rings)
    np.testing.assert_allclose(detector.border_.mean, expected.mean, rtol=1e-4)
    np.testing.assert_allclose(detector.border_.std, expected.std, rtol=1e-3)
    rings = ring_index(maps[0].shape, detector.border_rings)
    standardised = [((m - detector.border_.mean[rings]) / detector.border_.std[rings]).max() for m in maps]
    wanted = calibrate_threshold(np.array(standardised), detector.target_fpr, "leave-one-image-out")
    assert detector.threshold_.value == pytest.approx(wanted.value, rel=1e-4)
    # fit passed the maps it had computed for the border statistics on; scoring afresh agrees
    again = detector.left_out_image_scores(list(range(len(images))), verbose=False)
    np.testing.assert_allclose(again.scores, standardised, rtol=1e-4)
    assert detector.pixel_threshold_ == calibrate_threshold(np.array([m.max() for m in again.maps]),
                                                            detector.target_fpr, "leave-one-image-out")


def test_bank_rows_come_from_the_image_they_are_credited_to():
    rng = np.random.default_rng(2)
    images = rng.uniform(0.0, 1.0, size=(10, 96, 96, 3)).astype(np.float32)
    detector = oddity.create("patchcore", tile=64, **PARAMS).fit(images, verbose=False)  # 4 tiles per image
    spec = detector.spec()
    assert len(spec.boxes((96, 96))) == 4
    for source in set(detector.bank_sources_.tolist()):
        parts = [torch.from_numpy(spec.model_input(images[source][t:b, l:r]))[None]
                 for t, l, b, r in spec.boxes((96, 96))]
        with torch.inference_mode():
            own = np.concatenate([detector.fit_features(x) for x in parts])
        rows = detector.memory_bank_[detector.bank_sources_ == source]
        assert cdist(rows, own).min(axis=1).max() < 1e-4


def test_saved_model_keeps_its_method_and_old_calibrations_still_work(images, tmp_path):
    detector = oddity.create("patchcore", **PARAMS).fit(images, verbose=False)
    detector.save(tmp_path / "loo.oddity")
    loaded = oddity.load(tmp_path / "loo.oddity")
    assert loaded.threshold_ == detector.threshold_ and loaded.bank_sources_ is None
    np.testing.assert_array_equal(loaded.score(images[:2], verbose=False).scores,
                                  detector.score(images[:2], verbose=False).scores)
    held_out = oddity.create("patchcore", calibration="holdout", **PARAMS).fit(images, verbose=False)
    assert held_out.threshold_.method == "conformal" and held_out.threshold_.n_calibration == 3
    few = oddity.create("patchcore", **PARAMS).fit(images[:6], verbose=False)  # too few to leave out
    assert few.threshold_.method == "conformal"


def test_only_detectors_that_can_leave_an_image_out_accept_it():
    assert oddity.create("patchcore").leaves_images_out(10) and not oddity.create("patchcore").leaves_images_out(9)
    assert not oddity.create("padim").leaves_images_out(100)
    with pytest.raises(oddity.OddityError, match="leave-one-out"):
        oddity.create("padim", calibration="leave-one-out").validate_params()


def test_an_unreadable_training_image_is_skipped_without_shifting_the_sources(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = (rng.uniform(0.0, 1.0, size=(11, 64, 64, 3)) * 255).astype(np.uint8)
    for index, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"{index:02d}.png")
        if index == 4:
            (tmp_path / "04b.png").write_bytes(b"not an image")  # read between images 4 and 5
    with pytest.warns(UserWarning, match="04b.png"):
        detector = oddity.create("patchcore", skip_bad=True, **PARAMS).fit(tmp_path, verbose=False)
    samples = detector.fitted_samples_
    assert detector.threshold_.n_calibration == 11 and len(detector.calibration_images_) == 11
    assert len(set(detector.bank_sources_.tolist()) & {5, 6, 7, 8, 9, 10, 11}) > 0  # images after the bad one
    spec = detector.spec()
    for source in set(detector.bank_sources_.tolist()):
        assert not str(samples[source].name).endswith("04b.png")
        with torch.inference_mode():
            own = detector.fit_features(torch.from_numpy(spec.model_input(samples[source].load()))[None])
        assert cdist(detector.memory_bank_[detector.bank_sources_ == source], own).min(axis=1).max() < 1e-4
