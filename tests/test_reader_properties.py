"""Property tests of the readers: whatever bytes, tables, images or masks they are given, they
either read them correctly (round-trip) or raise a DataError, never another exception."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from oddity.core.errors import DataError
from oddity.image.data import MIN_SIDE, as_rgb_float, read_image, read_mask
from oddity.series.data import read_series

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def read_or_data_error(read, *args, **kwargs):
    """read(*args) or None when it raised a DataError; any other exception fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read(*args, **kwargs)
    except DataError:
        return None


# --- series -------------------------------------------------------------------------------
cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
                  st.text(max_size=8), st.sampled_from(["", "nan", "NA", "2024-01-01", "01/02/2024",
                                                        "13/01/2024", "1e309", "True", "-", ","]))


@SETTINGS
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".parquet", ".txt"]))
def test_arbitrary_bytes_read_as_a_series_or_fail_with_a_data_error(tmp_path, raw, suffix):
    path = tmp_path / f"s{suffix}"
    path.write_bytes(raw)
    result = read_or_data_error(read_series, path)
    if result is not None:
        frame, _ = result
        assert len(frame) >= 2 and np.isfinite(frame.to_numpy()).all()


@SETTINGS
@given(rows=st.lists(st.lists(cells, min_size=2, max_size=2), min_size=0, max_size=12),
       header=st.sampled_from([["time", "v"], ["a", "b"], ["date", "date"], ["v", "time"]]))
def test_arbitrary_tables_read_as_a_series_or_fail_with_a_data_error(tmp_path, rows, header):
    path = tmp_path / "s.csv"
    pd.DataFrame(rows, columns=header).to_csv(path, index=False)
    result = read_or_data_error(read_series, path)
    if result is not None:
        frame, report = result
        assert frame.dtypes.map(lambda d: d == np.float64).all() and np.isfinite(frame.to_numpy()).all()
        if isinstance(frame.index, pd.DatetimeIndex):
            assert frame.index.is_monotonic_increasing and frame.index.is_unique


@SETTINGS
@given(values=arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 3)),
                     elements=st.floats(-1e9, 1e9, allow_nan=False)),
       start=st.datetimes(min_value=pd.Timestamp("1990-01-01").to_pydatetime(),
                          max_value=pd.Timestamp("2090-01-01").to_pydatetime()),
       step=st.integers(1, 10**6), fmt=st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]),
       parquet=st.booleans())
def test_clean_series_round_trip(tmp_path, values, start, step, fmt, parquet):
    times = pd.date_range(pd.Timestamp(start).floor("s"), periods=len(values), freq=f"{step}s")
    table = pd.DataFrame(values, columns=[f"c{i}" for i in range(values.shape[1])])
    table.insert(0, "time", times if parquet else times.strftime(fmt))
    path = tmp_path / ("s.parquet" if parquet else "s.csv")
    table.to_parquet(path) if parquet else table.to_csv(path, index=False, float_format="%.17g")
    frame, report = read_series(path)
    assert report.time_column == "time" and list(frame.columns) == list(table.columns[1:])
    np.testing.assert_array_equal(frame.index, times)
    np.testing.assert_array_equal(frame.to_numpy(), values)


# --- images -------------------------------------------------------------------------------
@SETTINGS
@given(raw=st.binary(max_size=400), suffix=st.sampled_from([".png", ".jpg", ".bmp", ".tif"]))
def test_arbitrary_bytes_read_as_an_image_or_fail_with_a_data_error(tmp_path, raw, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(raw)
    pixels = read_or_data_error(read_image, path)
    if pixels is not None:
        assert pixels.dtype == np.float32 and pixels.ndim == 3 and pixels.shape[2] == 3
        assert pixels.min() >= 0 and pixels.max() <= 1


def _header_of_valid_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@SETTINGS
@given(width=st.integers(1, 64), height=st.integers(1, 64), cut=st.integers(0, 200))
def test_truncated_images_fail_with_a_data_error(tmp_path, width, height, cut):
    raw = _header_of_valid_png(width, height)
    path = tmp_path / "x.png"
    path.write_bytes(raw[: max(0, len(raw) - cut)])
    pixels = read_or_data_error(read_image, path)
    if pixels is not None:
        assert pixels.shape == (height, width, 3) and min(height, width) >= MIN_SIDE


image_modes = st.sampled_from([("L", np.uint8, 1), ("RGB", np.uint8, 3), ("RGBA", np.uint8, 4),
                               ("I;16", np.uint16, 1)])


@SETTINGS
@given(mode=image_modes, height=st.integers(1, 48), width=st.integers(1, 48), seed=st.integers(0, 2**16),
       suffix=st.sampled_from([".png", ".tif", ".bmp"]))
def test_lossless_images_round_trip(tmp_path, mode, height, width, seed, suffix):
    name, dtype, channels = mode
    assume(not (suffix == ".bmp" and name == "I;16"))
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(pixels).save(path)
    read = read_or_data_error(read_image, path)
    if min(height, width) < MIN_SIDE:
        assert read is None
        return
    scale = float(np.iinfo(dtype).max)
    expected = pixels.astype(np.float32) / scale
    expected = np.repeat(expected[:, :, None], 3, axis=2) if channels == 1 else expected[:, :, :3]
    np.testing.assert_allclose(read, expected, atol=1e-6)


@SETTINGS
@given(array=arrays(st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int64, np.bool_]),
                    st.lists(st.integers(0, 20), min_size=1, max_size=4).map(tuple)))
def test_arrays_given_to_the_api_convert_or_fail_with_a_data_error(array):
    pixels = read_or_data_error(as_rgb_float, array)
    if pixels is not None:
        assert pixels.dtype == np.float32 and pixels.shape == (*array.shape[:2], 3)
        assert np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1


# --- masks --------------------------------------------------------------------------------
@SETTINGS
@given(mask=arrays(np.bool_, st.tuples(st.integers(1, 32), st.integers(1, 32))),
       level=st.integers(1, 255))
def test_binary_masks_round_trip(tmp_path, mask, level):
    Image.fromarray(mask.astype(np.uint8) * np.uint8(level)).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", mask.shape), mask)


@SETTINGS
@given(values=arrays(np.uint8, st.tuples(st.integers(1, 32), st.integers(1, 32))),
       expected=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_any_mask_reads_as_binary_or_fails_with_a_data_error(tmp_path, values, expected):
    Image.fromarray(values).save(tmp_path / "m.png")
    mask = read_or_data_error(read_mask, tmp_path / "m.png", expected)
    levels = np.unique(values)
    binary = len(levels) == 1 or (len(levels) == 2 and levels[0] == 0)
    if mask is None:
        assert not binary or values.shape != expected
    else:
        assert binary and values.shape == expected
        np.testing.assert_array_equal(mask, values > 0)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_mask_that_is_not_an_image_is_a_data_error(tmp_path, suffix):
    (tmp_path / f"m{suffix}").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DataError):
        read_mask(tmp_path / f"m{suffix}")
