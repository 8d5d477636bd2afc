"""The float mode networks train in: subnormals flushed inside the block only."""
import torch

from oddity.core.torch_state import flushed_denormals


def test_flushed_denormals_zeroes_subnormals_inside_the_block_and_restores_afterwards():
    subnormal = torch.tensor([1e-40], dtype=torch.float32)
    assert subnormal.item() != 0.0
    with flushed_denormals():
        assert (subnormal * 1.0).item() == 0.0
    assert (subnormal * 1.0).item() != 0.0
