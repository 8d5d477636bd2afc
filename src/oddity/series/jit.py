"""Loops compiled by numba for the per-step work of streaming detectors.

numba is imported on first use, so that importing the detectors (which `oddity.create` does
for every modality) stays quick; the machine code is cached on disk, so a later process
loads it instead of compiling again.
"""
from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from oddity.core.errors import ConfigError

COMPILED: dict[Callable[..., Any], Callable[..., Any]] = {}


def compiled(function: Callable[..., Any],
             signatures: Callable[[ModuleType], list[Any]]) -> Callable[..., Any]:
    """`function` compiled by numba (nopython, no GIL held) for the given signatures, once
    per process.

    Parameters
    ----------
    function : callable
        A plain-Python function numba can compile; it stays callable as it is (the reference
        the compiled one is tested against).
    signatures : callable
        Given the numba module, the list of signatures to compile.

    Returns
    -------
    callable
        The compiled function.

    Raises
    ------
    ConfigError
        When numba is not installed (it comes with the series extra).
    """
    if function not in COMPILED:
        try:
            import numba
        except ModuleNotFoundError:
            raise ConfigError(f"{function.__module__} needs numba, which is not installed: "
                              "pip install 'oddity[series]'") from None

        try:
            COMPILED[function] = numba.njit(signatures(numba), cache=True, nogil=True)(function)
        except RuntimeError:  # no writable cache directory: compile in every process
            COMPILED[function] = numba.njit(signatures(numba), nogil=True)(function)
    return COMPILED[function]
