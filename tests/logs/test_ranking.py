"""CAR alert ranking on generated alert streams: incidents first, determinism, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oddity.core.errors import ConfigError, DataError
from oddity.logs.ranking import CollaborativeAlertRanker
from oddity.logs.synth_alerts import SCENARIOS, synthetic_alerts

ENTITIES = ["kind", "host", "component"]


def _ranker(**params) -> CollaborativeAlertRanker:
    return CollaborativeAlertRanker(kind="kind", entities=ENTITIES, time="time", max_gap=600, epochs=10, **params)


@pytest.fixture(scope="module")
def stream():
    alerts, truth = synthetic_alerts(n_noise=300, n_incidents=10, seed=3, confusion=0.2)
    return alerts.assign(truth=truth), truth


def test_incidents_ranked_above_noise(stream):
    alerts, truth = stream
    ranking = _ranker(score="score").rank(alerts)
    top = ranking.top(20)["truth"].to_numpy()
    assert truth.mean() < 0.15
    assert top[:10].mean() >= 0.9 and top.mean() >= 0.8
    by_score = alerts.sort_values("score", ascending=False)["truth"].to_numpy()[:20]
    assert top.mean() > by_score.mean() + 0.5  # the detector's score here says nothing
    assert list(ranking.alerts["car_rank"]) == list(range(1, len(alerts) + 1))
    assert np.all(np.diff(ranking.alerts["car_score"].to_numpy()) <= 0)


def test_temporal_patterns_alone_rank_incidents_first(stream):
    alerts, truth = stream
    ranking = _ranker(content_weight=0.0).rank(alerts)
    assert ranking.top(20)["truth"].mean() > 3 * truth.mean()
    assert (ranking.patterns["strength"] > 0).all() and (ranking.patterns["support"] >= 2).all()


def test_content_neighbours_of_incident_alerts_are_incident_alerts(stream):
    alerts, truth = stream
    graph = _ranker().content_graph(alerts, ENTITIES).toarray()
    assert np.allclose(graph, graph.T) and np.all(np.diag(graph) == 0) and np.all(graph >= 0)
    true_share = (graph[truth == 1] @ truth) / graph[truth == 1].sum(1)
    noise_share = (graph[truth == 0] @ truth) / np.maximum(graph[truth == 0].sum(1), 1e-12)
    assert true_share.mean() > 3 * truth.mean() and noise_share.mean() < 2 * truth.mean()


def test_incident_patterns_ranked_first(stream):
    alerts, _ = stream
    steps = {step for scenario in SCENARIOS for step in scenario}
    best = _ranker().rank(alerts).patterns["pattern"].head(8)
    assert all(set(p.split(" -> ")) <= steps for p in best)


def test_same_seed_same_ranking(stream):
    alerts, _ = stream
    first, second = _ranker(seed=5).rank(alerts), _ranker(seed=5).rank(alerts)
    pd.testing.assert_frame_equal(first.alerts, second.alerts)
    pd.testing.assert_frame_equal(first.patterns, second.patterns)


def test_gap_breaks_patterns():
    alerts = pd.DataFrame({"kind": ["a", "b"] * 4, "host": ["h"] * 8, "time": np.arange(8) * 1000.0})
    apart = CollaborativeAlertRanker(kind="kind", time="time", max_gap=10, epochs=2).rank(alerts)
    close = CollaborativeAlertRanker(kind="kind", time="time", max_gap=5000, epochs=2).rank(alerts)
    assert apart.patterns.empty
    assert "a -> b" in set(close.patterns["pattern"])


@pytest.mark.parametrize("change, message", [
    (lambda a: a.drop(columns="host"), "entity columns"),
    (lambda a: a.head(1), "at least two alerts"),
    (lambda a: a.assign(score="high"), "must hold numbers"),
    (lambda a: a.iloc[::-1], "not in time order"),
])
def test_bad_alerts_refused(stream, change, message):
    alerts, _ = stream
    with pytest.raises(DataError, match=message):
        _ranker(score="score").rank(change(alerts))


def test_bad_parameters_refused(stream):
    alerts, _ = stream
    with pytest.raises(ConfigError, match="discount"):
        _ranker(discount=1.0).rank(alerts)
    with pytest.raises(ConfigError, match="depth"):
        _ranker(depth=0).rank(alerts)
    with pytest.raises(DataError, match="no kind column"):
        CollaborativeAlertRanker(kind="type").rank(alerts)
    with pytest.raises(DataError, match="two entity columns"):
        CollaborativeAlertRanker(kind="kind", entities=["kind"]).rank(alerts)


def test_rank_command_writes_ranked_alerts_and_patterns(stream, tmp_path, capsys):
    from oddity.cli import main

    alerts, truth = stream
    table = tmp_path / "alerts.csv"
    alerts.drop(columns="truth").to_csv(table, index=False)
    out = tmp_path / "ranked"
    assert main(["rank", str(table), "--out", str(out), "--kind", "kind", "--entities", *ENTITIES,
                 "--score", "score", "--time", "time", "--max-gap", "600", "--quiet"]) == 0
    assert "alerts ranked" in capsys.readouterr().out
    ranked = pd.read_csv(out / "alerts.csv")
    assert sorted(ranked["row"]) == list(range(len(alerts)))
    assert truth[ranked["row"].to_numpy()[:20]].mean() >= 0.9
    assert {"pattern", "support", "strength", "car_score"} <= set(pd.read_csv(out / "patterns.csv").columns)
    # the output exists: refused without --overwrite; a column that is not there: one line
    assert main(["rank", str(table), "--out", str(out), "--kind", "kind", "--quiet"]) == 2
    assert main(["rank", str(table), "--out", str(tmp_path / "other"), "--kind", "type", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "no kind column 'type'" in err[1]
    assert table.read_text().startswith("time,kind")  # the input is untouched


def test_sequence_column_keeps_each_host_a_sequence_of_its_own():
    # two hosts interleaved: a b a b ... on one, x y x y ... on the other
    kinds = [k for pair in zip("ab" * 6, "xy" * 6) for k in pair]
    alerts = pd.DataFrame({"kind": kinds, "host": ["h1" if k in "ab" else "h2" for k in kinds]})
    joined = CollaborativeAlertRanker(kind="kind", epochs=2).rank(alerts)
    apart = CollaborativeAlertRanker(kind="kind", sequence="host", epochs=2).rank(alerts)
    assert "a -> x" in set(joined.patterns["pattern"]) and "a -> b" not in set(joined.patterns["pattern"])
    assert {"a -> b", "x -> y"} <= set(apart.patterns["pattern"]) and "a -> x" not in set(apart.patterns["pattern"])
