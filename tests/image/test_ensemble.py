"""The ensemble detector: rank scales, members on one scale, calibration and persistence."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import oddity
from oddity.core.errors import ConfigError
from oddity.image.data import evaluation_samples, training_samples
from oddity.image.detectors.ensemble import RankScale
from oddity.image.synth import make_inspection_set

SMALL = {"members": ("test-meandiff", "patchcore"),
         "member_params": {"test-meandiff": {"image_size": 64}, "patchcore": {"image_size": 64}}}


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    """30 normal training images, so that 10 are held out to build the rank scales."""
    return make_inspection_set(tmp_path_factory.mktemp("ensemble") / "woven", n_train=30,
                               n_test_good=10, n_test_defect=2, size=64, seed=3)


@pytest.fixture(scope="module")
def ensemble(product):
    return oddity.create("ensemble", calibration_fraction=0.34, **SMALL).fit(product, verbose=False)


def test_rank_scale_maps_normal_values_to_normal_quantiles_whatever_their_units():
    values = np.random.default_rng(0).gamma(2.0, size=50)
    small, large = RankScale.fit(values), RankScale.fit(1000.0 * values + 5.0)
    expected = stats.norm.ppf((np.arange(50) + 0.5) / 50)
    np.testing.assert_allclose(small(np.sort(values)), expected, atol=1e-5)
    probe = np.array([-1.0, 0.5, 2.0, 50.0, 100.0])  # below, inside and far above the range
    np.testing.assert_allclose(small(probe), large(1000.0 * probe + 5.0), atol=1e-4)
    assert np.all(np.diff(small(probe)) > 0)  # order kept beyond the largest normal value


def test_rank_scale_with_many_values_keeps_quantile_knots_and_merges_ties():
    values = np.r_[np.zeros(500), np.linspace(1.0, 2.0, 2000)]
    scale = RankScale.fit(values, max_knots=64)
    assert len(scale.values) <= 64 and np.all(np.diff(scale.values) > 0)
    assert scale(np.array([0.0]))[0] < scale(np.array([1.5]))[0] < scale(np.array([3.0]))[0]


def test_members_speak_one_scale_on_normal_images(ensemble, product):
    normal = [s for s in evaluation_samples(product) if s.label == 0]
    raw = [member.score(normal, verbose=False).scores for member in ensemble.members_]
    scaled = [scale(scores) for scale, scores in zip(ensemble.image_scales_, raw)]
    assert abs(np.median(raw[0]) - np.median(raw[1])) > 10 * abs(np.median(raw[0]))  # raw units differ
    assert all(np.all(np.abs(z) < 6) for z in scaled)  # a few standard units (10 knots: noisy tails)
    assert abs(np.median(scaled[0]) - np.median(scaled[1])) < 1.0


def test_ensemble_finds_the_defects_and_calibrates_leave_one_out(ensemble, product):
    samples = evaluation_samples(product)
    result = ensemble.predict(samples, verbose=False)
    labels = np.array([s.label for s in samples])
    assert result.scores[labels == 1].mean() > result.scores[labels == 0].mean()
    assert ensemble.threshold_.method == "conformal" and ensemble.threshold_.n_calibration == 10
    assert result.maps[0].shape == (64, 64) and ensemble.pixel_threshold_ is not None


def test_round_trip_gives_identical_scores(ensemble, product, reloaded):
    samples = evaluation_samples(product)
    loaded = reloaded(ensemble, samples)
    assert [m.name for m in loaded.members_] == ["test-meandiff", "patchcore"]


def test_ensemble_has_no_scoring_graph(ensemble):
    with pytest.raises(ConfigError, match="no scoring graph"):
        ensemble.kernel()


@pytest.mark.parametrize("params, fragment", [
    ({"members": ()}, "at least one"),
    ({"members": ("patchcore", "patchcore")}, "repeat"),
    ({"members": ("patchcore", "musc")}, "zero-shot"),
    ({"members": ("gaussian_ad",)}, "localises"),
    ({"members": ("patchcore",), "member_params": {"padim": {}}}, "not members"),
    ({"members": ("patchcore",), "member_params": {"patchcore": {"bogus": 1}}}, "bogus"),
])
def test_bad_members_are_refused(params, fragment):
    with pytest.raises(ConfigError, match=fragment):
        oddity.create("ensemble", **params)


def test_too_few_images_to_hold_out_is_refused(inspection_set):
    images = training_samples(inspection_set)[:5]
    with pytest.raises(oddity.core.errors.DataError, match="at least 3"):
        oddity.create("ensemble", **SMALL).fit(images, verbose=False)
