"""Hyper-parameter checks shared by the detectors of every modality (ConfigError naming the parameter)."""
from __future__ import annotations

from oddity.core.errors import ConfigError


def check_positive_ints(**values: object) -> None:
    """Each keyword must be an int >= 1 (not a bool).

    Parameters
    ----------
    **values
        Parameter name to value.

    Raises
    ------
    ConfigError
        Naming the first that is not a positive integer.
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def check_positive(**values: float) -> None:
    """Each keyword must be a number > 0.

    Parameters
    ----------
    **values
        Parameter name to value.

    Raises
    ------
    ConfigError
        Naming the first that is not positive.
    """
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")


def check_fraction(name: str, value: float) -> None:
    """`value` must lie strictly between 0 and 1.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : float
        Its value.

    Raises
    ------
    ConfigError
        If `value` is not in (0, 1).
    """
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must lie in (0, 1), got {value}")


def check_calibration(target_fpr: float, calibration_fraction: float) -> None:
    """The calibration parameters every detector shares.

    Parameters
    ----------
    target_fpr : float
        Must lie in (0, 1).
    calibration_fraction : float
        Must lie in [0, 1).

    Raises
    ------
    ConfigError
        Naming the parameter out of range.
    """
    if not 0.0 < target_fpr < 1.0:
        raise ConfigError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    if not 0.0 <= calibration_fraction < 1.0:
        raise ConfigError(f"calibration_fraction must lie in [0, 1), got {calibration_fraction}")


def check_seed(seed: int) -> None:
    """`seed` must be a non-negative whole number.

    Parameters
    ----------
    seed : int
        The seed.

    Raises
    ------
    ConfigError
        If it is negative.
    """
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative whole number, got {seed}")
