"""TensorFlow "SAME" convolution without a padded copy equals the explicitly padded one."""
import math

import pytest
import torch
import torch.nn.functional as F

from oddity.backbones.efficientnet_lite import Conv2dSame


def explicitly_padded(conv: Conv2dSame, x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's rule written out: pad (extra pixel bottom/right), then a plain conv."""
    pads = []
    for size, kernel, stride in zip(x.shape[-2:], conv.kernel_size, conv.stride):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, None, conv.stride, 0, 1,
                    conv.groups)


@pytest.mark.parametrize(("kernel", "stride", "groups"), [(3, 2, 1), (3, 2, 6), (5, 2, 6), (3, 1, 6),
                                                          (4, 1, 1)])
@pytest.mark.parametrize("size", [(16, 16), (17, 17), (16, 19), (21, 10)])
def test_same_padding_without_a_padded_copy_gives_the_padded_result(kernel, stride, groups, size):
    torch.manual_seed(0)
    conv = Conv2dSame(6, 6, kernel, stride, groups).requires_grad_(False)
    x = torch.randn(2, 6, *size)
    expected = explicitly_padded(conv, x)
    out = conv(x)
    assert out.shape == expected.shape == (2, 6, math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_a_traced_convolution_pads_explicitly_with_constant_sizes():
    conv = Conv2dSame(4, 4, 3, 2, 4).requires_grad_(False)
    x = torch.randn(1, 4, 16, 16)
    traced = torch.jit.trace(conv, x)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "aten::pad" in kinds or "aten::constant_pad_nd" in kinds
    torch.testing.assert_close(traced(x), conv(x), rtol=1e-5, atol=1e-5)
