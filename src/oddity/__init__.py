"""oddity: offline, CPU-first anomaly detection with localisation, calibrated thresholds and
explanations.

    import oddity
    detector = oddity.create("patchcore").fit("path/to/mvtec/bottle")
    result = detector.predict(["part1.png", "part2.png"])
    detector.save("bottle.oddity")
    detector = oddity.load("bottle.oddity")
"""
from __future__ import annotations

from typing import Any

from oddity.core.detector import Detector, load
from oddity.core.errors import OddityError
from oddity.core.registry import get_detector_class, list_detectors

__version__ = "0.1.0"


def create(name: str, **params: Any) -> Detector:
    """A new detector by registry name, e.g. `oddity.create("padim", image_size=224)`."""
    return get_detector_class(name)(**params)


__all__ = ["Detector", "OddityError", "create", "list_detectors", "load", "__version__"]
