"""The alert-ranking benchmark row on generated alerts: precision@k of every order."""
from __future__ import annotations

from oddity.bench.logs import ranking_row
from oddity.logs.synth_alerts import synthetic_alerts


def test_ranking_row_measures_every_order():
    alerts, truth = synthetic_alerts(n_noise=150, n_incidents=6, seed=1, confusion=0.2, score_signal=1.0)
    table = alerts.rename(columns={"kind": "template", "time": "seconds"})
    row = ranking_row("generated", table, truth, ks=(5, 10))
    assert row["alerts"] == len(table) and row["true"] == int(truth.sum())
    assert set(row["orders"]) == {"random (expected)", "detector score", "CAR (detector score as prior)",
                                  "CAR (alerts only)", "ablation: CAR without content (content_weight 0)"}
    assert row["orders"]["random (expected)"][5] == truth.mean()
    assert all(0.0 <= p <= 1.0 for order in row["orders"].values() for p in order.values())
    assert row["orders"]["CAR (detector score as prior)"][10] > 2 * truth.mean()
    assert row["patterns"] and row["rank_s"] >= 0
