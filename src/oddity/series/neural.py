"""Torch plumbing shared by the neural time-series detectors: a base class for detectors that
train a network on standardised sliding windows (its common hyper-parameters, scaling and
persistence), windows as tensors, a time-ordered train/validation split, an early-stopping
loop. Network weights are saved with `oddity.core.torch_state` (no pickle)."""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.checks import check_fraction, check_positive, check_positive_ints
from oddity.core.errors import ConfigError, DataError
from oddity.series.detector import SeriesDetector
from oddity.series.scaling import robust_scaling, standardise
from oddity.series.windows import sliding_windows


def window_split(values: np.ndarray, width: int, validation_fraction: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(training windows, validation windows) as float32 (N, width, C) tensors. The last
    `validation_fraction` of the steps form the validation windows and no training window
    overlaps them, so early stopping sees data the network did not train on.

    Parameters
    ----------
    values : numpy.ndarray
        (T, C) standardised series.
    width : int
        Window width.
    validation_fraction : float
        Share of the steps, from the end, for validation.

    Returns
    -------
    tuple of torch.Tensor
        (training windows, validation windows).

    Raises
    ------
    DataError
        If the series is too short for a window on either side.
    """
    split = len(values) - max(width + 1, round(len(values) * validation_fraction))
    if split < width + 1:
        raise DataError(f"the fit history of {len(values)} steps is too short for windows of "
                        f"{width} steps plus a validation part; pass more data or a smaller window")
    train = sliding_windows(values[:split], width)
    validation = sliding_windows(values[split:], width)
    return (torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(validation, dtype=np.float32)))


def windows_tensor(values: np.ndarray, width: int) -> torch.Tensor:
    """All (T - width + 1, width, C) windows of `values` as a float32 tensor.

    Parameters
    ----------
    values : numpy.ndarray
        (T, C) series.
    width : int
        Window width.

    Returns
    -------
    torch.Tensor
        (T - width + 1, width, C) windows.
    """
    return torch.from_numpy(np.ascontiguousarray(sliding_windows(values, width), dtype=np.float32))


def batches(count: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded random partition of range(count) into index batches of at most `size`.

    Parameters
    ----------
    count : int
        Number of items.
    size : int
        Most items per batch.
    generator : torch.Generator
        Seeded generator of the shuffle.

    Returns
    -------
    list of torch.Tensor
        Index batches.
    """
    return list(torch.randperm(count, generator=generator).split(size))


def train_with_early_stopping(run_epoch: Callable[[], None], validation_loss: Callable[[], float],
                              modules: Sequence[nn.Module], epochs: int, patience: int,
                              desc: str, verbose: bool) -> list[float]:
    """Call `run_epoch` up to `epochs` times; after each, measure `validation_loss` and stop
    once it has not improved for `patience` epochs. The modules end with the weights of the
    best epoch, in eval mode. Returns the validation loss of every epoch run.

    Parameters
    ----------
    run_epoch : callable
        Trains one epoch.
    validation_loss : callable
        Returns the loss on the validation windows.
    modules : sequence of torch.nn.Module
        The networks trained (restored to their best epoch).
    epochs : int
        Most epochs.
    patience : int
        Epochs without improvement before stopping.
    desc : str
        Label of the progress bar.
    verbose : bool
        Show the progress bar.

    Returns
    -------
    list of float
        The validation loss of every epoch run.
    """
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


class WindowNetworkDetector(SeriesDetector):
    """Base of detectors that train a torch network on sliding windows of the series, after
    robust per-channel standardisation learned on the fit history (`oddity.series.scaling`).
    Holds the training hyper-parameters they share, the scaling and the per-epoch validation
    losses, and saves them; subclasses add their networks."""

    def __init__(self, *, window: int, epochs: int, patience: int, batch_size: int, lr: float,
                 validation_fraction: float, **common: Any):
        super().__init__(**common)
        self.window = window
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.centre_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.losses_: list[float] = []

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_positive_ints(window=self.window, epochs=self.epochs, patience=self.patience,
                            batch_size=self.batch_size)
        check_positive(lr=self.lr)
        check_fraction("validation_fraction", self.validation_fraction)
        if self.window < 2:
            raise ConfigError(f"window must be at least 2 steps, got {self.window}")

    @property
    def min_length(self) -> int:
        return self.window

    def _training_windows(self, values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Learn the scaling from `values`, then (training, validation) windows of the
        standardised series (`window_split`)."""
        self.centre_, self.scale_ = robust_scaling(values)
        return window_split(standardise(values, self.centre_, self.scale_), self.window,
                            self.validation_fraction)

    def _windows(self, values: np.ndarray) -> torch.Tensor:
        """All windows of the standardised series, (T - window + 1, window, C)."""
        assert self.centre_ is not None and self.scale_ is not None
        return windows_tensor(standardise(values, self.centre_, self.scale_), self.window)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.centre_ is not None and self.scale_ is not None
        arrays.update(centre=self.centre_, scale=self.scale_)
        return {**values, "losses_": self.losses_}, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.centre_ = np.asarray(arrays["centre"], dtype=np.float64)
        self.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        self.losses_ = list(values.get("losses_", []))
