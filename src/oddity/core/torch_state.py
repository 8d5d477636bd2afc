"""Torch modules to and from the named numpy arrays that a model file stores (see
`oddity.core.persistence`), for detectors that train networks; and the float mode they train in."""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
from torch import nn

from oddity.core.errors import ConfigError, ModelFileError


def module_arrays(modules: dict[str, nn.Module]) -> dict[str, np.ndarray]:
    """Every tensor of each module's state dict as an array named `<prefix>.<key>`.

    Parameters
    ----------
    modules : dict of str to torch.nn.Module
        The networks by prefix.

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays for `Detector.save`.
    """
    return {f"{prefix}.{key}": tensor.detach().cpu().numpy()
            for prefix, module in modules.items() for key, tensor in module.state_dict().items()}


def load_module_arrays(modules: dict[str, nn.Module], arrays: dict[str, np.ndarray], settings: str) -> None:
    """Fill each module (strictly) from the arrays under its prefix and put it in eval mode.

    Parameters
    ----------
    modules : dict of str to torch.nn.Module
        Freshly built networks by prefix, shaped by the detector's parameters.
    arrays : dict of str to numpy.ndarray
        The arrays of a model file (see `module_arrays`).
    settings : str
        The parameters that shape the networks, named in the error.

    Raises
    ------
    ModelFileError
        If a tensor is missing or misshapen: the file does not fit these `settings`.
    """
    for prefix, module in modules.items():
        state = {key[len(prefix) + 1:]: torch.from_numpy(np.array(value))
                 for key, value in arrays.items() if key.startswith(prefix + ".")}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"model file's {prefix} network does not fit {settings} "
                                 f"({str(exc).splitlines()[0]}); refit it") from None
        module.eval()


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero inside the block (restored afterwards). On x86 CPUs,
    arithmetic on subnormals is tens of times slower; weights and gradients drift into that
    range late in a long training run (EfficientAD's student slowed about 7x without this; see
    docs/methods/efficientad.md).

    Yields
    ------
    None
        Inside the block.
    """
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)  # torch's default; it has no getter to restore from


def average_start(steps: int, average_from: float | None) -> int | None:
    """The first step whose weights enter a uniform weight average (stochastic weight
    averaging, Izmailov et al. UAI 2018), or None for the last weights. `average_from` is a
    fraction of the schedule in [0, 1); anything else is a ConfigError.

    Parameters
    ----------
    steps : int
        Training steps.
    average_from : float or None
        Fraction of the schedule where averaging starts.

    Returns
    -------
    int or None
        The first averaged step (0-based), or None.

    Raises
    ------
    ConfigError
        If `average_from` is not None or a fraction in [0, 1).
    """
    if average_from is None:
        return None
    if isinstance(average_from, bool) or not isinstance(average_from, (int, float)) or not 0 <= average_from < 1:
        raise ConfigError(f"average_from must be a fraction of the steps in [0, 1) (or None for the "
                          f"last weights), got {average_from!r}")
    return int(steps * average_from)
