"""CAD OSE: an online context memory that learns a repeating pattern, scores what breaks it,
rests after an alert, sees only the past and streams the same in any blocks."""
import numpy as np
import pytest

import oddity
from oddity.core.errors import ConfigError
from oddity.series.detectors.cad_ose import ContextMemory, Halves
from oddity.series.evaluate import NabEvaluation, SeriesResult

PATTERN = [0, 2, 5, 7, 5, 2]


def pattern_series(repeats: int, seed: int = 0) -> np.ndarray:
    """A repeating 6-step pattern over 8 levels with small noise (below a level's width)."""
    rng = np.random.default_rng(seed)
    return np.tile(np.array(PATTERN, float), repeats) + rng.uniform(0.05, 0.45, 6 * repeats)


def test_halves_count_the_facts_each_half_holds():
    halves = Halves()
    assert [halves.id(f) for f in ((1, 2), (2, 3, 4), (1, 2))] == [0, 1, 0]
    assert halves.counts((2, 4, 9)).tolist() == [1, 2]
    assert halves.counts((9,)).tolist() == [0, 0]


def test_a_learned_pattern_scores_zero_and_a_break_scores_high():
    memory = ContextMemory(3, 7, 15, 0.75, rest_period=0)
    scores = [memory.step(code) for code in PATTERN * 30]
    assert scores[0] > 0 and max(scores[-60:]) == 0.0  # new at first, then fully predicted
    broken = memory.step(1)  # 1 never follows 2 in the pattern
    assert broken >= 0.5


def test_rest_period_silences_the_start_and_the_steps_after_an_alert():
    memory = ContextMemory(3, 7, 15, 0.75, rest_period=5)
    raw = ContextMemory(3, 7, 15, 0.75, rest_period=0)
    codes = PATTERN * 20 + [1, 3, 6, 4, 1, 3, 6, 4]
    rested = np.array([memory.step(c) for c in codes])
    plain = np.array([raw.step(c) for c in codes])
    assert (rested[:5] == 0).all() and plain[0] > 0
    alert = 6 * 20
    assert plain[alert] >= 0.75 and rested[alert] == plain[alert]
    assert (rested[alert + 1:alert + 6] == 0).all() and plain[alert + 1:alert + 6].max() > 0


def test_detector_finds_the_break_in_a_pattern_and_says_which_channel():
    values = np.stack([pattern_series(150, seed=1), pattern_series(150, seed=2)], axis=1)
    values[700, 1] = 3.3  # out of the pattern, in range
    detector = oddity.create("cad_ose", rest_period=10, range_margin=0.0).fit(values[:300],
                                                                              verbose=False)
    result = detector.score(values)
    assert int(np.argmax(result.scores[300:])) + 300 == 700
    assert result.channel_scores[700, 1] == result.scores[700] > result.channel_scores[700, 0]
    assert detector.rest_period_ == 10
    assert detector.predict(values[600:]).labels[100]


def test_values_outside_the_fitted_range_take_the_end_codes():
    history = np.tile([0.0, 3.0, 7.0, 1.0], 50)
    values = np.array([[-5.0], [0.0], [3.5], [7.0], [99.0]])
    detector = oddity.create("cad_ose", range_margin=0.0).fit(history, verbose=False)
    assert detector.memory_inputs(values)[:, 0].tolist() == [0, 0, 3, 7, 7]
    default = oddity.create("cad_ose").fit(history, verbose=False)  # a span's margin each side
    assert (default.low_, default.high_) == (-7.0, 14.0)
    assert default.memory_inputs(values)[:, 0].tolist() == [0, 2, 3, 4, 7]
    assert detector.rest_period_ == 160 // 5  # a fifth of the fitted steps (20% held out)
    wide = oddity.create("cad_ose", range_margin=0.5).fit(np.tile([0.0, 3.0, 7.0, 1.0], 50),
                                                          verbose=False)
    assert (wide.low_, wide.high_) == (-3.5, 10.5)  # codes 2 units wide
    assert wide.memory_inputs(np.array([[-5.0], [0.0], [7.0], [99.0]]))[:, 0].tolist() == [0, 1, 5, 7]


def test_scores_see_only_the_past_and_stream_alike_in_any_blocks(tmp_path):
    values = pattern_series(120)
    values[500] += 3.0
    detector = oddity.create("cad_ose", rest_period=6).fit(values[:240], verbose=False)
    test = values[240:]
    whole = detector.score(test).scores
    for end in (1, 100, 300):
        np.testing.assert_array_equal(detector.score(test[:end]).scores, whole[:end])
    # A stream continues the fitted history: the scores of history and rows scored together.
    after = detector.score(values).scores[240:]
    assert not np.array_equal(after, whole)
    blocks = [detector.update(test[a:b]) for a, b in ((0, 1), (1, 2), (2, 250), (250, 480))]
    np.testing.assert_array_equal(np.concatenate([b.scores for b in blocks]), after)
    detector.save(tmp_path / "m.oddity")
    loaded = oddity.load(tmp_path / "m.oddity")
    assert loaded.rest_period_ == 6
    np.testing.assert_array_equal(loaded.update(test).scores, after)  # a new stream


@pytest.mark.parametrize(("params", "match"), [
    ({"value_bits": 0}, "value_bits"), ({"value_bits": 20}, "value_bits"),
    ({"base_threshold": 0.0}, "base_threshold"), ({"rest_period": -1}, "rest_period"),
    ({"max_active": 0}, "max_active"), ({"range_margin": -0.1}, "range_margin")])
def test_invalid_parameters_are_refused(params, match):
    with pytest.raises(ConfigError, match=match):
        oddity.create("cad_ose", **params)


def test_raw_nab_steps_are_the_scores_and_only_for_scores_in_zero_one():
    labels = np.zeros(400, bool)
    labels[300:320] = True
    scores = np.zeros(400)
    scores[305] = 0.9

    def result(values):
        return SeriesResult("s", "g", {}, 0.0, 0.0, "online", labels, values, 60, np.zeros(5),
                            np.zeros(340), np.zeros(340, bool))

    steps = result(scores).nab_steps("raw")
    assert steps[305] == 0.9 and steps.sum() == pytest.approx(0.9)
    evaluation = NabEvaluation("cad_ose", {}, [result(scores)])
    assert evaluation.nab_figures()["nab_raw"]["standard"] == pytest.approx(
        evaluation.nab("raw")["standard"]) and evaluation.nab("raw")["standard"] > 90
    assert "nab_raw" not in NabEvaluation("x", {}, [result(scores * 5)]).nab_figures()
