"""Dense autoencoder over sliding windows; reconstruction error per time step and per channel.

Borghesi, Bartolini, Lombardi, Milano and Benini, "Anomaly Detection using Autoencoders in High
Performance Computing Systems", AAAI 2019 (IAAI track), https://arxiv.org/abs/1811.05269

What the paper does and what we keep:
- A fully connected autoencoder is trained on normal data only (healthy node states) to
  reproduce its input; an input it reconstructs badly is anomalous. The error is computed per
  input feature, so a user sees which measurements are off.
- The paper's network has one hidden layer larger than its input with an L1 penalty on the
  hidden activations (a sparse, over-complete autoencoder); here `hidden_factor` (default 10)
  sets the hidden width as a multiple of the input size and `l1` the activity penalty.
- Inputs are standardised per channel with statistics of the normal data
  (`oddity.series.scaling`: median / IQR, robust to anomalies in the history).

Deviations, with reasons:
- Input: the paper feeds one time step of a node's many metrics; a generic series may have one
  channel, so the input here is a flattened window of `window` steps of all channels (as the
  design asks). Each step's error is its squared reconstruction error in the window ending at
  it (`causal=False`: the mean over every window covering it), per channel; `channel_scores`
  holds its square root and the step score is the root-mean-square over channels. The first
  steps take their errors from the first window.
- Training: Adam with early stopping on a time-ordered validation tail of the fit history
  (`validation_fraction`, `patience`), so that training stays cheap and stops before the
  network memorises the history.
- Threshold: calibrated on held-out normal steps (`SeriesDetector`), as for every oddity
  detector, instead of the threshold the paper set for its own data.
- Defaults (window 32, 20% validation, batch 64, lr 1e-3, at most 30 epochs, patience 3,
  l1 1e-4) are CPU-small and were not tuned on NAB (docs/methods/window_autoencoder.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from oddity.core.checks import check_positive
from oddity.core.errors import ConfigError
from oddity.core.registry import register
from oddity.core.torch_state import load_module_arrays, module_arrays
from oddity.series.neural import (
    WindowNetworkDetector,
    batches,
    train_with_early_stopping,
)

SCORE_BATCH = 4096  # windows per forward pass when scoring


class SparseAutoencoder(nn.Module):
    """input -> ReLU(hidden) -> input; `forward` also returns the hidden activations so the
    training loss can penalise their L1 norm."""

    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        self.encode = nn.Linear(inputs, hidden)
        self.decode = nn.Linear(hidden, inputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction and code.

        Parameters
        ----------
        x : torch.Tensor
            (B, window * C) flattened windows.

        Returns
        -------
        tuple of torch.Tensor
            (reconstructions, non-negative codes).
        """
        code = torch.relu(self.encode(x))
        return self.decode(code), code


def step_errors(errors: np.ndarray, length: int, causal: bool = False) -> np.ndarray:
    """(length, C) squared error per step: `errors` (N, width, C) holds window i's error at
    steps i .. i + width - 1. With `causal`, a step's error in the window ending at it (the
    first `width - 1` steps take theirs from the first window); otherwise the mean over the
    windows covering the step, summed offset by offset like `window_scores_to_steps`.

    Parameters
    ----------
    errors : numpy.ndarray
        (N, width, C) squared errors of the windows.
    length : int
        Steps of the series (N + width - 1).
    causal : bool, default False
        Take each step's error from the window ending at it.

    Returns
    -------
    numpy.ndarray
        (length, C) errors.
    """
    count, width = errors.shape[:2]
    if causal:
        return np.concatenate((errors[0, :width - 1], errors[:, width - 1]))
    totals = np.zeros((length, errors.shape[2]))
    covers = np.zeros(length)
    for offset in range(width):
        totals[offset:offset + count] += errors[:, offset]
        covers[offset:offset + count] += 1.0
    return totals / covers[:, None]


@register("window_autoencoder")
class WindowAutoencoder(WindowNetworkDetector):
    """Sparse over-complete dense autoencoder of standardised sliding windows.

    Parameters
    ----------
    window : int, default 32
        Window length in steps.
    hidden_factor : float, default 10.0
        Hidden width as a multiple of the input size (window x channels).
    l1 : float, default 1e-4
        L1 penalty on the hidden activations.
    epochs : int
        Most training epochs (early stopping on the validation tail).
    patience : int
        Epochs without improvement before stopping.
    batch_size : int
        Windows per batch.
    lr : float
        Adam learning rate.
    validation_fraction : float, default 0.2
        Share of the fit history, from its end, used for early stopping.
    **common
        Parameters shared by every series detector (`SeriesDetector`).

    Attributes
    ----------
    network_ : torch.nn.Module
        The trained autoencoder.
    losses_ : list of float
        Validation loss per epoch.

    See Also
    --------
    docs/methods/window_autoencoder.md : paper, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import oddity
    >>> rng, steps = np.random.default_rng(0), np.arange(600)
    >>> data = pd.DataFrame({"cpu": np.sin(steps / 10) + 0.05 * rng.normal(size=600),
    ...                      "mem": np.cos(steps / 10) + 0.05 * rng.normal(size=600)},
    ...                     index=pd.date_range("2024-01-01", periods=600, freq="min"))
    >>> detector = oddity.create("window_autoencoder", window=16, epochs=8).fit(data.iloc[:400], verbose=False)
    >>> test = data.iloc[400:].copy()
    >>> test.iloc[100, 0] += 3.0                               # a spike on cpu
    >>> result = detector.predict(test)
    >>> bool(result.labels[100]), detector.threshold_.method
    (True, 'conformal')
    """

    def __init__(self, *, window: int = 32, hidden_factor: float = 10.0, l1: float = 1e-4,
                 epochs: int = 30, patience: int = 3, batch_size: int = 64, lr: float = 1e-3,
                 validation_fraction: float = 0.2, **common: Any):
        super().__init__(window=window, epochs=epochs, patience=patience, batch_size=batch_size,
                         lr=lr, validation_fraction=validation_fraction, **common)
        self.hidden_factor = hidden_factor
        self.l1 = l1
        self.network_: SparseAutoencoder | None = None

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_positive(hidden_factor=self.hidden_factor)
        if self.l1 < 0:
            raise ConfigError(f"l1 must be non-negative, got {self.l1}")

    def _network(self, channels: int) -> SparseAutoencoder:
        inputs = self.window * channels
        return SparseAutoencoder(inputs, max(1, round(self.hidden_factor * inputs)))

    def _fit_series(self, values: np.ndarray, verbose: bool) -> None:
        train, validation = self._training_windows(values)
        train, validation = train.flatten(1), validation.flatten(1)
        torch.manual_seed(self.seed)
        network = self._network(values.shape[1])
        optimiser = torch.optim.Adam(network.parameters(), lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)

        def loss_of(x: torch.Tensor) -> torch.Tensor:
            reconstruction, code = network(x)
            return ((reconstruction - x) ** 2).mean() + self.l1 * code.abs().mean()

        def run_epoch() -> None:
            for rows in batches(len(train), self.batch_size, generator):
                optimiser.zero_grad()
                loss_of(train[rows]).backward()
                optimiser.step()

        def validation_loss() -> float:
            return float(((network(validation)[0] - validation) ** 2).mean())

        self.losses_ = train_with_early_stopping(run_epoch, validation_loss, [network],
                                                 self.epochs, self.patience,
                                                 "train window_autoencoder", verbose)
        self.network_ = network

    def _score_series(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.network_ is not None
        windows = self._windows(values)
        errors = np.empty(tuple(windows.shape), dtype=np.float64)
        with torch.no_grad():
            for first in range(0, len(windows), SCORE_BATCH):
                x = windows[first:first + SCORE_BATCH]
                reconstruction = self.network_(x.flatten(1))[0].view_as(x)
                errors[first:first + len(x)] = ((reconstruction - x) ** 2).numpy()
        per_step = step_errors(errors, len(values), self.causal)
        return np.sqrt(per_step.mean(axis=1)), np.sqrt(per_step)

    # --- persistence ---------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.network_ is not None
        arrays.update(module_arrays({"network": self.network_}))
        return values, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        assert self.centre_ is not None
        self.network_ = self._network(len(self.centre_))
        load_module_arrays({"network": self.network_}, arrays,
                           f"window={self.window}, hidden_factor={self.hidden_factor}")
