"""Robust per-channel standardisation that survives constant and nearly constant channels.

Centre = median, scale = IQR / 1.349 (equals the standard deviation for Gaussian data but
ignores anomalies in the history). Channels whose IQR is zero (long flat stretches, common in
NAB) fall back to the standard deviation, and channels that are constant to scale 1, so no
division by zero can happen.
"""
from __future__ import annotations

import numpy as np

IQR_TO_STD = 1.349


def robust_scaling(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre (C,), scale (C,)) of a (T, C) array; see the module docstring.

    Parameters
    ----------
    values : numpy.ndarray
        (T, C) fit history.

    Returns
    -------
    tuple of numpy.ndarray
        (centre (C,), scale (C,)).
    """
    centre = np.median(values, axis=0)
    q75, q25 = np.percentile(values, [75, 25], axis=0)
    scale = (q75 - q25) / IQR_TO_STD
    tiny = 1e-9 * np.maximum(1.0, np.abs(centre))
    scale = np.where(scale > tiny, scale, values.std(axis=0))
    scale = np.where(scale > tiny, scale, 1.0)
    return centre, scale


def standardise(values: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(values - centre) / scale, channel by channel.

    Parameters
    ----------
    values : numpy.ndarray
        (T, C) series.
    centre, scale : numpy.ndarray
        (C,) from `robust_scaling`.

    Returns
    -------
    numpy.ndarray
        (T, C) standardised values.
    """
    return (values - centre) / scale
