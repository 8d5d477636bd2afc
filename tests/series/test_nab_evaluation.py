"""NAB evaluation details: a constant history, and the step scores NAB's optimiser sees."""
import numpy as np
import pandas as pd
import pytest

from oddity.core.errors import ConfigError
from oddity.series.data import NabSeries
from oddity.series.evaluate import evaluate_series


def flat_series(change_at: int | None) -> NabSeries:
    values = np.full(200, 5.0)
    if change_at is not None:
        values[change_at:change_at + 3] = 9.0
    index = pd.date_range("2024-01-01", periods=200, freq="5min")
    labels = np.zeros(200, bool)
    labels[100:120] = True
    return NabSeries("g/flat.csv", "g", pd.DataFrame({"value": values}, index=index),
                     [(index[100], index[119])], labels, 30)


def test_constant_history_is_scored_without_a_fit():
    result = evaluate_series("rolling_zscore", {}, flat_series(110))
    assert result.threshold_method == "constant history"
    assert np.flatnonzero(result.flags).tolist() == [80, 81, 82]  # steps 110-112 of the series
    assert result.metrics["fpr"] == 0.0 and result.metrics["event_f1"] == 1.0
    steps = result.nab_steps("level", period=100)
    assert np.flatnonzero(steps).tolist() == [110] and steps[110] == 1.0
    alerts = result.nab_steps("alerts", period=2)
    assert np.flatnonzero(alerts).tolist() == [110]
    assert np.flatnonzero(result.nab_detections(0)).tolist() == [110, 111, 112]
    with pytest.raises(ConfigError, match="post-processing"):
        result.nab_steps("median")


def test_likelihood_step_scores_lie_in_zero_one_and_rise_at_the_change():
    result = evaluate_series("rolling_zscore", {"window": 16}, flat_series(110))
    steps = result.nab_steps("likelihood", period=0)
    assert steps.shape == (200,) and (steps[:30] == 0).all()
    assert 0 <= steps.min() and steps.max() < 1 and steps.argmax() == 110
