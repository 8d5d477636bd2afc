"""The scoring graph of an image detector: one `torch.nn.Module` per fitted model.

A detector's scorer maps a batch of model inputs (N, 3, H, W), RGB in [0, 1], to image scores
(N,) and patch maps (N, h, w), with everything learned held as buffers or sub-modules. The
`ImageKernel` around it adds what every detector shares: border standardisation of the maps
(ring statistics as buffers, `oddity.image.border`), after which the image score is the largest
standardised patch score. The same module runs in process (`run_kernel`), is exported to ONNX
(`oddity.export`) and is what a Dask worker runs. Pre- and post-processing are not in the graph:
they are data (`oddity.image.spec`), applied by the shared pipeline (`oddity.image.pipeline`).
A detector whose image-level scores are not a flat maximum of its map keeps its own score
(image-level detectors return (N, 1, 1) maps holding the score).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from oddity.image.border import BorderStandardiser


def ring_standardise(maps: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(N, h, w) maps in standard deviations above the normal mean of each cell's ring (its
    distance in cells to the nearest border, capped at len(mean) - 1).

    Parameters
    ----------
    maps : torch.Tensor
        (N, h, w) patch maps.
    mean, std : torch.Tensor
        (rings + 1,) normal statistics per ring.

    Returns
    -------
    torch.Tensor
        (N, h, w) standardised maps.
    """
    height, width = maps.shape[-2:]
    rows = torch.arange(height, device=maps.device)
    cols = torch.arange(width, device=maps.device)
    rows = torch.minimum(rows, height - 1 - rows)[:, None]
    cols = torch.minimum(cols, width - 1 - cols)[None, :]
    index = torch.clamp(torch.minimum(rows, cols), max=len(mean) - 1)
    return (maps - mean[index]) / std[index]


class ImageKernel(nn.Module):
    """A detector's scorer plus border standardisation: (N, 3, H, W) -> (scores, maps)."""

    def __init__(self, scorer: nn.Module, border: BorderStandardiser | None = None):
        super().__init__()
        self.scorer = scorer
        self.standardised = border is not None
        if border is not None:
            self.register_buffer("border_mean", torch.as_tensor(border.mean, dtype=torch.float32))
            self.register_buffer("border_std", torch.as_tensor(border.std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a batch.

        Parameters
        ----------
        x : torch.Tensor
            (N, 3, h, w) model inputs, RGB in [0, 1].

        Returns
        -------
        tuple of torch.Tensor
            (scores (N,), maps (N, h', w')).
        """
        scores, maps = self.scorer(x)
        if self.standardised:
            maps = ring_standardise(maps, self.border_mean, self.border_std)
            scores = maps.flatten(1).amax(dim=1)
        return scores, maps.float()


def run_kernel(kernel: nn.Module) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The kernel as a pipeline engine: numpy batch in, numpy (scores, maps) out.

    Each call is computed on the calling thread alone (see `oddity.image.pipeline`): torch's
    thread count is set to 1 for the call and set back afterwards; OpenMP and MKL keep that
    setting per thread, so other threads, and the caller's, keep theirs.

    Parameters
    ----------
    kernel : torch.nn.Module
        A scoring graph (`ImageDetector.kernel`).

    Returns
    -------
    callable
        Takes an (N, 3, h, w) float32 array, returns (scores (N,), maps (N, h', w')).
    """
    kernel.eval()
    restore = torch.get_num_threads()  # the creating thread's setting, put back after each call

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                scores, maps = kernel(torch.from_numpy(batch))
        finally:
            torch.set_num_threads(restore)
        return scores.numpy(), maps.numpy()

    return run
