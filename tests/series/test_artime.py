"""ARTime: a dual-vigilance fuzzy ART over downsampled wavelet windows finds what breaks a
learned pattern, sees only the past, streams the same in any blocks and saves its state."""
import numpy as np
import pytest

import oddity
from oddity.core.errors import ConfigError, DataError
from oddity.series.detectors.artime import (
    ArtimeStream,
    DualVigilanceArt,
    haar,
    initial_vigilance,
    probation_steps,
)


def periodic(length: int, seed: int = 0) -> np.ndarray:
    """A noisy sine of period 24."""
    rng = np.random.default_rng(seed)
    return 10 + np.sin(np.arange(length) * 2 * np.pi / 24) + rng.normal(0, 0.05, length)


def test_haar_is_the_orthonormal_transform_coarsest_first():
    values = np.array([4.0, 2.0, 5.0, 5.0, 1.0, 3.0, 0.0, 8.0])
    coefficients = haar(values)
    assert coefficients[0] == pytest.approx(values.sum() / np.sqrt(8))
    assert coefficients[1] == pytest.approx((12.0 - 16.0) / np.sqrt(8))  # later half - earlier
    assert coefficients[4:] == pytest.approx(np.array([-2.0, 0.0, 2.0, 8.0]) / np.sqrt(2))
    assert np.linalg.norm(coefficients) == pytest.approx(np.linalg.norm(values))
    assert [probation_steps(n) for n in (1000, 4031, 5000)] == [150, 604, 750]


def test_art_learns_resonates_and_opens_a_cluster_for_a_stranger():
    art = DualVigilanceArt(2, lower=0.5, upper=0.9)
    assert not art.train(np.array([0.3, 0.3]))  # the first sample makes the all-ones category
    assert not art.train(np.array([0.3, 0.3])) and art.count == 2  # matches it at 1/8: new
    assert art.train(np.array([0.3, 0.3])) and art.match == pytest.approx(1.0)
    assert art.train(np.array([0.3, 0.32])) and art.count == 2  # above the upper: learned
    assert art.weights[1].tolist() == pytest.approx([0.3, 0.3, 0.7, 0.68])
    assert not art.train(np.array([0.9, 0.95])) and art.count == 3  # far: a new cluster
    assert 0.0 < art.match < 0.5
    art.train(np.array([0.3, 0.3]), learn=False)
    assert art.count == 3


def test_initial_vigilance_is_a_mean_match_in_zero_one():
    features = np.abs(np.random.default_rng(0).normal(size=(60, 16))) % 1.0
    vigilance = initial_vigilance(features, 0.8, 30)
    assert 0.0 < vigilance <= 1.0
    same = initial_vigilance(np.tile(features[:1], (60, 1)), 0.8, 30)
    assert same == pytest.approx(1.0)  # identical windows match their category fully


@pytest.mark.parametrize("kind", ["spike", "level shift"])
def test_the_anomaly_of_a_periodic_series_scores_highest(kind):
    values = periodic(3000)
    if kind == "spike":
        values[2000] += 4.0
    else:
        values[2000:] += 1.5
    detector = oddity.create("artime").fit(values[:600], verbose=False)
    scores = detector.score(values).scores
    assert (scores[:600] == 0).all() and ((scores >= 0) & (scores <= 1)).all()
    assert 2000 <= int(np.argmax(scores)) < 2040
    assert scores[2000:2040].max() > 2 * scores[600:1990].max()
    flags = detector.update(values[600:]).labels  # a detection is a flag
    assert flags[1400:1440].any() and flags.mean() < 0.01


def test_scores_see_only_the_past_and_stream_alike_in_any_blocks(tmp_path):
    values = periodic(2400, seed=3)
    values[1500] -= 3.0
    detector = oddity.create("artime").fit(values[:500], verbose=False)
    assert detector.probation_ == 500 and detector.threshold_.value == 0.0
    whole = detector.score(values).scores
    for end in (700, 1501, 2000):
        np.testing.assert_array_equal(detector.score(values[:end]).scores, whole[:end])
    test = values[500:]
    blocks = [detector.update(test[a:b]) for a, b in ((0, 1), (1, 2), (2, 900), (900, 1900))]
    np.testing.assert_array_equal(np.concatenate([b.scores for b in blocks]), whole[500:])
    detector.save(tmp_path / "m.oddity")
    loaded = oddity.load(tmp_path / "m.oddity")
    assert loaded.probation_ == 500
    np.testing.assert_array_equal(loaded.update(test).scores, whole[500:])  # a new stream


def test_channels_are_scored_apart_and_the_step_takes_the_highest():
    values = np.stack([periodic(2000, seed=1), periodic(2000, seed=2)], axis=1)
    values[1500, 1] += 4.0
    result = oddity.create("artime").fit(values[:500], verbose=False).score(values)
    assert result.scores.tolist() == result.channel_scores.max(axis=1).tolist()
    step = 1500 + int(np.argmax(result.scores[1500:1540]))
    assert result.channel_scores[step, 1] > 0 and result.channel_scores[step, 0] == 0


def test_a_stream_matches_the_detector_on_one_channel():
    values = periodic(1500, seed=4)
    values[1200] += 3.0
    detector = oddity.create("artime", range_margin=0.5).fit(values[:400], verbose=False)
    stream = ArtimeStream(float(detector.low_[0]), float(detector.high_[0]), 400, 8, 80, 0.075,
                          0.8)
    assert [stream.step(v) for v in values] == detector.score(values).scores.tolist()


@pytest.mark.parametrize(("params", "match"), [
    ({"window": 6}, "window"), ({"window": 1}, "window"), ({"levels": 0}, "levels"),
    ({"chomp": 1.0}, "chomp"), ({"initial_vigilance": 1.0}, "initial_vigilance"),
    ({"max_probation": 16}, "max_probation"), ({"range_margin": -0.1}, "range_margin")])
def test_invalid_parameters_are_refused(params, match):
    with pytest.raises(ConfigError, match=match):
        oddity.create("artime", **params)


def test_a_history_shorter_than_four_windows_is_refused():
    with pytest.raises(DataError, match="4 windows"):
        oddity.create("artime").fit(periodic(20), verbose=False)
