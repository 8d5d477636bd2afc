"""HypAD: hyperbolic geometry helpers, detection of injected anomalies, persistence."""
import numpy as np
import torch

import oddity
from oddity.metrics.series import point_auroc
from oddity.series.detectors.hypad import expmap0, poincare_distance

SMALL = {"window": 16, "epochs": 4}


def test_expmap_and_poincare_distance():
    v = torch.tensor([[3.0, 4.0], [0.0, 0.0], [100.0, 0.0]])
    points = expmap0(v)
    assert torch.allclose(points[0].norm(), torch.tanh(torch.tensor(5.0)))
    assert (points.norm(dim=1) < 1).all()
    origin, point = torch.zeros(1, 2), torch.tensor([[0.5, 0.0]])
    # distance from the origin to radius r is 2 artanh(r)
    assert torch.allclose(poincare_distance(origin, point), 2 * torch.atanh(torch.tensor([0.5])),
                          atol=1e-4)
    assert poincare_distance(point, point).item() < 1e-2


def test_detects_injected_anomalies_deterministically_and_round_trips(injected, tmp_path):
    history, test, labels = injected
    detector = oddity.create("hypad", **SMALL).fit(history, verbose=False)
    result = detector.predict(test)
    assert point_auroc(labels, result.scores) > 0.9
    assert len(detector.losses_) <= SMALL["epochs"]
    again = oddity.create("hypad", **SMALL).fit(history, verbose=False)
    np.testing.assert_array_equal(again.score(test).scores, result.scores)  # same seed
    detector.save(tmp_path / "hypad.oddity")
    loaded = oddity.load(tmp_path / "hypad.oddity")
    np.testing.assert_array_equal(loaded.score(test).scores, result.scores)
