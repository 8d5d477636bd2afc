"""Pre- and post-processing as data: numpy resizing reproduces torch's, the spec survives the
model JSON, and the pipeline scores batches as it scores single images."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

import oddity
from oddity.image import geometry
from oddity.image.spec import ImageSpec


@pytest.mark.parametrize("source, target", [((90, 90), (25, 25)), ((30, 64), (25, 53)), ((17, 20), (64, 75)),
                                            ((25, 25), (90, 90))])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_reproduces_torch_interpolate(source, target, antialias):
    image = np.random.default_rng(0).random((*source, 3), dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], size=target,
                             mode="bilinear", align_corners=False, antialias=antialias)[0].numpy()
    np.testing.assert_allclose(geometry.resize(image, target, antialias).transpose(2, 0, 1), expected, atol=2e-5)


def test_spec_is_saved_in_the_model_json(inspection_set, tmp_path):
    detector = oddity.create("padim", image_size=64, seed=0, tile=48).fit(inspection_set, verbose=False)
    detector.save(tmp_path / "m.oddity")
    with safe_open(str(tmp_path / "m.oddity"), framework="numpy") as handle:
        document = json.loads(handle.metadata()["oddity"])
    spec = ImageSpec.from_dict(document["state"]["pipeline"])
    assert spec == detector.spec() and spec.tile == 48 and spec.input_shape == detector.input_shape_
    assert document["state"]["calibration_images_"] == detector.calibration_images_


def test_batch_size_does_not_change_scores(inspection_set):
    from oddity.image.data import evaluation_samples

    detector = oddity.create("patchcore", image_size=64, seed=0).fit(inspection_set, verbose=False)
    samples = evaluation_samples(inspection_set)
    one, many = (detector.score(samples, verbose=False, batch_size=size) for size in (1, 8))
    np.testing.assert_allclose(many.scores, one.scores, rtol=1e-5)
    for a, b in zip(many.maps, one.maps):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("patch_hw, input_hw, image_hw, sigma", [((8, 8), (64, 64), (64, 64), 4.0),
                                                                 ((8, 19), (64, 154), (50, 120), 4.0),
                                                                 ((8, 8), (64, 64), (200, 200), 2.5),
                                                                 ((8, 8), (64, 64), (64, 64), 0.0)])
def test_a_map_is_finished_as_upsampling_smoothing_and_resizing_one_after_another(patch_hw, input_hw, image_hw, sigma):
    from scipy.ndimage import gaussian_filter

    patch_map = np.random.default_rng(0).gamma(2.0, 1.0, patch_hw).astype(np.float32)
    upsampled = geometry.resize_map(patch_map, input_hw)
    if sigma:
        upsampled = gaussian_filter(upsampled, sigma=sigma, mode="nearest", truncate=4.0)
    expected = geometry.resize_map(upsampled, image_hw)
    got = geometry.patch_map_to_image(patch_map, input_hw, image_hw, sigma)
    assert got.shape == image_hw and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * float(np.abs(expected).max()))


def test_a_finished_map_does_not_depend_on_the_blas_thread_count():
    from threadpoolctl import threadpool_limits

    patch_map = np.random.default_rng(1).gamma(2.0, 1.0, (32, 32)).astype(np.float32)
    maps = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            maps.append(geometry.patch_map_to_image(patch_map, (256, 256), (512, 512), 4.0))
    assert np.array_equal(maps[0], maps[1])
