"""A synthetic stream of alerts with known true incidents, for tests, examples and the alert
ranking benchmark.

Noise alerts (false positives of a detector) draw their type, host and component independently
at random, at random times; a share `confusion` of them take the type of an incident step and,
independently, the same share the component of one, so that no attribute alone tells a true
alert. A true incident is a multi-step chain of alert types (one of a few
attack scenarios, e.g. scan -> login -> escalate -> exfiltrate) on one host (of the same pool),
its steps a few seconds apart, interleaved with the noise. Every alert carries a detector
score: noise and incidents draw it from the same distribution unless `score_signal` > 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SCENARIOS = (("scan", "login", "escalate", "exfiltrate"), ("probe", "exploit", "implant"),
             ("phish", "macro", "beacon", "lateral"))
NOISE_TYPES = tuple(f"noise{k}" for k in range(30))


def synthetic_alerts(n_noise: int = 400, n_incidents: int = 12, seed: int = 0,
                     score_signal: float = 0.0, confusion: float = 0.3) -> tuple[pd.DataFrame, np.ndarray]:
    """Alerts in time order and their truth (1 = part of a true incident).

    Parameters
    ----------
    n_noise : int
        False alerts.
    n_incidents : int
        True incidents, each a chain of 3 or 4 alerts.
    seed : int
        Random seed.
    score_signal : float
        Added to the detector score of true alerts (0: the score says nothing).
    confusion : float
        Share of the noise alerts whose type is one of the incident steps (and, drawn apart,
        whose component is one of the incidents').

    Returns
    -------
    alerts : pandas.DataFrame
        Columns `time` (seconds), `kind`, `host`, `component`, `score`.
    truth : numpy.ndarray
        int64, one per row.
    """
    rng = np.random.default_rng(seed)
    span = 86_400.0
    steps_pool = sorted({step for scenario in SCENARIOS for step in scenario})
    components = [f"comp{k}" for k in range(12)]
    rows = [{"time": float(t), "kind": str(rng.choice(steps_pool if rng.random() < confusion else NOISE_TYPES)),
             "host": f"host{rng.integers(40)}",
             "component": str(rng.choice(["auth", "net"] if rng.random() < confusion else components)), "truth": 0}
            for t in rng.uniform(0, span, n_noise)]
    for k in range(n_incidents):
        steps = SCENARIOS[k % len(SCENARIOS)]
        start, host = float(rng.uniform(0, span - 600)), f"host{rng.integers(40)}"
        times = start + np.cumsum(rng.uniform(5, 60, len(steps)))
        rows += [{"time": float(t), "kind": step, "host": host, "component": "auth" if step in
                  ("login", "escalate", "exploit", "macro") else "net", "truth": 1} for t, step in zip(times, steps)]
    table = pd.DataFrame(rows).sort_values("time", kind="stable").reset_index(drop=True)
    table["score"] = rng.normal(size=len(table)) + score_signal * table["truth"]
    truth = table.pop("truth").to_numpy(np.int64)
    return table, truth
