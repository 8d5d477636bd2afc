import numpy as np
import pytest

from oddity.core.errors import ConfigError, DataError
from oddity.series.scaling import robust_scaling
from oddity.series.windows import (
    labels_to_spans,
    sliding_windows,
    window_scores_to_steps,
)


def test_sliding_windows_shape_content_and_stride():
    values = np.arange(20.0).reshape(10, 2)
    windows = sliding_windows(values, 4, stride=3)
    assert windows.shape == (3, 4, 2)
    np.testing.assert_array_equal(windows[1], values[3:7])
    np.testing.assert_array_equal(windows[2], values[6:10])
    assert not windows.flags.writeable  # a view, not a copy
    one = sliding_windows(values[:4], 4, stride=3)  # a single window
    assert one.shape == (1, 4, 2) and not one.flags.writeable
    np.testing.assert_array_equal(one[0], values[:4])


def test_sliding_windows_errors():
    with pytest.raises(DataError, match="shorter than the window"):
        sliding_windows(np.zeros((3, 1)), 5)
    with pytest.raises(ConfigError):
        sliding_windows(np.zeros((3, 1)), 0)


def test_window_scores_to_steps_is_mean_of_covering_windows():
    steps = window_scores_to_steps(np.array([1.0, 2.0, 3.0]), length=5, width=3)
    np.testing.assert_allclose(steps, [1.0, 1.5, 2.0, 2.5, 3.0])


def test_window_scores_to_steps_keeps_small_scores_after_a_huge_one():
    scores = np.array([1e20, 1.0, 2.0, 3.0, 4.0])
    steps = window_scores_to_steps(scores, length=6, width=2)
    np.testing.assert_allclose(steps[2:], [1.5, 2.5, 3.5, 4.0])


def test_window_scores_to_steps_stride_tail_and_channels():
    # windows start at 0 and 3 (width 3) over 7 steps: step 6 is uncovered -> last window
    steps = window_scores_to_steps(np.array([[1.0, 10.0], [2.0, 20.0]]), 7, 3, stride=3)
    np.testing.assert_allclose(steps[:, 0], [1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(steps[:, 1], [10, 10, 10, 20, 20, 20, 20])
    with pytest.raises(DataError):
        window_scores_to_steps(np.ones(10), 5, 3)


def test_labels_to_spans():
    labels = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert labels_to_spans(labels) == [(0, 1), (4, 4), (6, 8)]
    assert labels_to_spans(np.zeros(4, bool)) == []


def test_robust_scaling_handles_flat_and_constant_channels():
    values = np.zeros((100, 3))
    values[:, 0] = np.arange(100)
    values[::10, 1] = 5.0  # IQR 0 but not constant: falls back to the std
    centre, scale = robust_scaling(values)
    assert scale[0] == pytest.approx(np.subtract(*np.percentile(np.arange(100), [75, 25])) / 1.349)
    assert scale[1] == pytest.approx(values[:, 1].std())
    assert scale[2] == 1.0 and centre[2] == 0.0
