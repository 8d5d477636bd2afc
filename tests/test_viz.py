"""Heat-map overlays, outlines and PNG writing."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from oddity.viz import (centre_range, centred_range, colorize, outline, overlay, save_png, shrink_mask, side_by_side,
                        thumbnail)


def test_colorize_stretches_the_range_over_the_colormap():
    turbo = matplotlib.colormaps["turbo"]
    colours = colorize(np.array([[-5.0, 0.0, 1.0, 9.0]]), (0.0, 1.0))
    assert np.allclose(colours[0, 0], turbo(0.0)[:3]) and np.allclose(colours[0, 1], turbo(0.0)[:3])
    assert np.allclose(colours[0, 2], turbo(1.0)[:3]) and np.allclose(colours[0, 3], turbo(1.0)[:3])


def test_overlay_blends_with_alpha():
    image = np.full((4, 4, 3), 0.2, np.float32)
    heat = overlay(image, np.zeros((4, 4)), (0.0, 1.0), alpha=0.25)
    assert np.allclose(heat, 0.75 * 0.2 + 0.25 * colorize(np.zeros((4, 4)), (0.0, 1.0)))


def test_centred_range_puts_the_threshold_in_the_middle():
    maps = [np.array([[1.0, 2.0]]), np.array([[3.0, 10.0]])]
    low, high = centred_range(maps, 4.0)
    assert (low, high) == (1.0, 7.0)
    assert centred_range(maps, float("nan")) == (1.0, 10.0)
    assert centred_range(maps, 0.5) == (1.0, 10.0)  # threshold below every value


def test_centre_range_needs_no_maps():
    """A model's calibration range (`map_range_`) colours any map alone, as the maps' own would."""
    assert centre_range(1.0, 10.0, 4.0) == (1.0, 7.0)
    assert centre_range(1.0, 10.0, 0.5) == (1.0, 10.0)
    assert centre_range(2.0, 2.0, float("nan")) == (2.0, 3.0)  # a flat range still has a width


def test_outline_surrounds_the_mask_and_leaves_it_visible():
    image = np.zeros((20, 20, 3), np.float32)
    mask = np.zeros((20, 20), bool)
    mask[8:12, 8:12] = True
    drawn = outline(image, mask, (1.0, 0.0, 0.0))
    red = drawn[:, :, 0] == 1.0
    assert not red[mask].any()
    assert red[7, 8:12].all() and red[12, 8:12].all() and red[8:12, 7].all() and red[8:12, 12].all()
    assert not red[:5].any()
    assert image.max() == 0  # the input is not modified


def test_side_by_side_and_thumbnail():
    a, b = np.zeros((10, 6, 3), np.float32), np.ones((10, 8, 3), np.float32)
    assert side_by_side(a, b, gap=2).shape == (10, 16, 3)
    assert thumbnail(np.zeros((100, 50, 3), np.float32), 40).shape == (40, 20, 3)
    assert thumbnail(a, 40) is a


@pytest.mark.parametrize("shape", [(6, 5, 3), (6, 5)])
def test_save_png_round_trips_and_leaves_no_temporary_file(tmp_path, shape):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    save_png(tmp_path / "sub" / "x.png", image)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]
    read = np.asarray(Image.open(tmp_path / "sub" / "x.png"), np.float32) / 255
    assert np.abs(read - image).max() <= 0.5 / 255 + 1e-6


def test_save_png_with_a_palette_keeps_few_colours_close_to_the_image(tmp_path):
    rng = np.random.default_rng(0)
    image = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], 32, axis=0) * [1.0, 0.5, 0.2]
    image = np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1).astype(np.float32)
    save_png(tmp_path / "p.png", image, colours=16)
    with Image.open(tmp_path / "p.png") as saved:
        assert saved.mode == "P" and len(saved.getcolors()) <= 16
        read = np.asarray(saved.convert("RGB"), np.float32) / 255
    assert read.shape == image.shape and np.abs(read - image).mean() < 0.03
    with pytest.raises(ValueError, match="colours"):
        save_png(tmp_path / "q.png", image, colours=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_shrink_mask_keeps_thin_defects():
    mask = np.zeros((90, 90), bool)
    mask[40, 10:80] = True  # a 1-pixel scratch
    small = shrink_mask(mask, (30, 30))
    assert small.shape == (30, 30) and small[13, 4:26].all() and small.sum() == small[13].sum()
    assert np.array_equal(shrink_mask(mask, (90, 90)), mask)
