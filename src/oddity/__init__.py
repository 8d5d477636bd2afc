"""oddity: offline, CPU-first anomaly detection with localisation, calibrated thresholds and
explanations.

    import oddity
    detector = oddity.create("patchcore").fit("path/to/mvtec/bottle")
    result = detector.predict(["part1.png", "part2.png"])
    detector.save("bottle.oddity")
    detector = oddity.load("bottle.oddity")
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a small CPU shared with other processes,
# spinning threads made torch up to 40x slower here. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from typing import Any  # noqa: E402

from oddity.core.detector import Detector, load  # noqa: E402
from oddity.core.errors import OddityError  # noqa: E402
from oddity.core.registry import get_detector_class, list_detectors  # noqa: E402

__version__ = "0.1.0"


def create(name: str, **params: Any) -> Detector:
    """A new detector by registry name, e.g. `oddity.create("padim", image_size=224)`; each
    parameter is checked against its type hint first (`oddity.core.params.check_params`)."""
    from oddity.core.params import check_params

    cls = get_detector_class(name)
    return cls(**check_params(cls, params))


__all__ = ["Detector", "OddityError", "create", "list_detectors", "load", "__version__"]
