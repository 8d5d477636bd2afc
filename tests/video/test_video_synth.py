"""The validation anomaly generator: a figure crossing real frames."""
from __future__ import annotations

import numpy as np
import pytest

from oddity.core.errors import ConfigError
from oddity.video.synth import insert_moving_object


def test_figure_crosses_at_the_given_speed_and_labels_mark_it() -> None:
    frames = np.full((30, 60, 90, 3), 200, np.uint8)
    video, labels = insert_moving_object(frames, height=10, speed=6.0, row=20, first=5)
    assert (frames == 200).all()  # the input is not modified
    dark = [np.nonzero((video[t, :, :, 0] < 150).any(axis=0))[0] for t in (10, 12)]
    assert abs((dark[1].mean() - dark[0].mean()) - 12.0) <= 1.5  # 6 pixels a frame
    rows = np.nonzero((video[10, :, :, 0] < 150).any(axis=1))[0]
    assert rows.min() >= 20 and rows.max() < 30
    last = int(np.flatnonzero(labels)[-1])
    assert not labels[:5].any() and labels[5:last + 1].all()  # in view from frame 5 on
    assert last < 29 and (video[last + 1:] == 200).all()  # gone once out of view
    left, left_labels = insert_moving_object(frames, 10, 6.0, 20, 5, leftward=True)
    assert (left_labels == labels).all()
    assert (left[6, :, :, 0] < 150).any(axis=0)[-10:].any()  # enters on the right


def test_a_figure_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ConfigError, match="does not fit"):
        insert_moving_object(np.zeros((3, 20, 20, 3), np.uint8), height=30, speed=1.0, row=0, first=0)
