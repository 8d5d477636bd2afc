"""window_autoencoder: reconstruction error finds injected anomalies and their channel."""
import numpy as np

import oddity
from oddity.metrics.series import point_auroc

SMALL = {"window": 16, "epochs": 8}


def test_detects_injected_anomalies_and_names_the_channel(injected):
    history, test, labels = injected
    # Mean over covering windows: the last step of a window, which causal scoring uses, is
    # reconstructed worse in both channels across the level shift.
    result = oddity.create("window_autoencoder", causal=False, **SMALL).fit(history, verbose=False).predict(test)
    assert point_auroc(labels, result.scores) > 0.95
    assert result.channel_scores.shape == test.shape
    # every anomaly is in channel 1: its reconstruction error is the larger one there
    assert (result.channel_scores[labels, 1] > result.channel_scores[labels, 0]).mean() > 0.9


def test_same_seed_same_scores_and_save_load_round_trip(injected, tmp_path):
    history, test, _ = injected
    first = oddity.create("window_autoencoder", **SMALL).fit(history, verbose=False)
    second = oddity.create("window_autoencoder", **SMALL).fit(history, verbose=False)
    scores = first.score(test).scores
    np.testing.assert_array_equal(scores, second.score(test).scores)
    first.save(tmp_path / "ae.oddity")
    loaded = oddity.load(tmp_path / "ae.oddity")
    np.testing.assert_array_equal(loaded.score(test).scores, scores)
    assert loaded.threshold_ == first.threshold_
