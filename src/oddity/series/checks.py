"""Constructor-argument checks shared by the series detectors (ConfigError naming the argument)."""
from __future__ import annotations

from oddity.core.errors import ConfigError


def check_positive_ints(**values: object) -> None:
    """Each keyword must be an int >= 1 (not a bool)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def check_positive(**values: float) -> None:
    """Each keyword must be a number > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")


def check_fraction(name: str, value: float) -> None:
    """`value` must lie strictly between 0 and 1."""
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must lie in (0, 1), got {value}")
