"""oddity: offline, CPU-first anomaly detection for images and time series, with
localisation, calibrated thresholds and explanations.

    import oddity
    detector = oddity.create("patchcore").fit("path/to/mvtec/bottle")
    result = detector.predict(["part1.png", "part2.png"])
    detector.save("bottle.oddity")
    detector = oddity.load("bottle.oddity")

The entry points are `create`, `load` and `list_detectors`; guides, one page per method and
the API reference are in docs/ (`make docs`).
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a small CPU that other processes also use,
# spinning threads made torch up to 40x slower. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from typing import Any  # noqa: E402

from oddity.core.detector import Detector, load  # noqa: E402
from oddity.core.errors import OddityError  # noqa: E402
from oddity.core.registry import get_detector_class, list_detectors  # noqa: E402

__version__ = "0.1.0"


def create(name: str, **params: Any) -> Detector:
    """A new, unfitted detector by its registered name.

    Parameters
    ----------
    name : str
        Registered name of the method (see `list_detectors`), e.g. ``"patchcore"``.
    **params
        Hyper-parameters of that detector, stored as given and checked by `fit`; any not
        given keep their defaults.

    Returns
    -------
    Detector
        The detector, ready for `fit` (or, for a zero-shot method, for `predict`).

    Raises
    ------
    ConfigError
        If no detector is registered under `name` (the message lists the valid names), or a
        parameter is not one of the detector's or does not match its type hint
        (`oddity.core.params.check_params`).

    Examples
    --------
    >>> import oddity
    >>> detector = oddity.create("rolling_zscore", window=32)
    >>> detector.window, detector.is_fitted
    (32, False)
    """
    from oddity.core.params import check_params

    cls = get_detector_class(name)
    detector = cls(**check_params(cls, params))
    detector.validate_params()
    return detector


__all__ = ["Detector", "OddityError", "create", "list_detectors", "load", "__version__"]
