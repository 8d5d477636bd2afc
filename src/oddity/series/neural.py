"""Torch plumbing shared by the neural time-series detectors: windows as tensors, a
time-ordered train/validation split, an early-stopping loop, and module weights as named
numpy arrays for `save` / `oddity.load` (safetensors, no pickle)."""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.errors import DataError, ModelFileError
from oddity.series.windows import sliding_windows


def window_split(values: np.ndarray, width: int, validation_fraction: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(training windows, validation windows) as float32 (N, width, C) tensors. The last
    `validation_fraction` of the steps form the validation windows and no training window
    overlaps them, so early stopping sees data the network did not train on."""
    split = len(values) - max(width + 1, round(len(values) * validation_fraction))
    if split < width + 1:
        raise DataError(f"the fit history of {len(values)} steps is too short for windows of "
                        f"{width} steps plus a validation part; pass more data or a smaller window")
    train = sliding_windows(values[:split], width)
    validation = sliding_windows(values[split:], width)
    return (torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(validation, dtype=np.float32)))


def windows_tensor(values: np.ndarray, width: int) -> torch.Tensor:
    """All (T - width + 1, width, C) windows of `values` as a float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(sliding_windows(values, width), dtype=np.float32))


def batches(count: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded random partition of range(count) into index batches of at most `size`."""
    return list(torch.randperm(count, generator=generator).split(size))


def train_with_early_stopping(run_epoch: Callable[[], None], validation_loss: Callable[[], float],
                              modules: Sequence[nn.Module], epochs: int, patience: int,
                              desc: str, verbose: bool) -> list[float]:
    """Call `run_epoch` up to `epochs` times; after each, measure `validation_loss` and stop
    once it has not improved for `patience` epochs. The modules end with the weights of the
    best epoch, in eval mode. Returns the validation loss of every epoch run."""
    best, best_states, stale, history = float("inf"), None, 0, []
    bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=not verbose, leave=False)
    for _ in bar:
        for module in modules:
            module.train()
        run_epoch()
        for module in modules:
            module.eval()
        with torch.no_grad():
            loss = float(validation_loss())
        history.append(loss)
        bar.set_postfix(val=f"{loss:.4f}")
        if best_states is None or loss < best - 1e-6 * abs(best):
            best, stale = loss, 0
            best_states = [copy.deepcopy(module.state_dict()) for module in modules]
        else:
            stale += 1
            if stale >= patience:
                break
    if best_states is not None:
        for module, state in zip(modules, best_states):
            module.load_state_dict(state)
    return history


def module_arrays(prefix: str, module: nn.Module) -> dict[str, np.ndarray]:
    """The module's state dict as `prefix.key` -> numpy array."""
    return {f"{prefix}.{key}": tensor.detach().cpu().numpy()
            for key, tensor in module.state_dict().items()}


def load_module_arrays(prefix: str, module: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Restore what `module_arrays(prefix, module)` saved (strict: every weight must be there)."""
    state = {key[len(prefix) + 1:]: torch.from_numpy(np.array(value))
             for key, value in arrays.items() if key.startswith(prefix + ".")}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"model file has no valid {prefix} weights ({exc}); refit it") from None
    module.eval()
