"""Nothing silently wrong: one test (or a few) per class of defect that hostile inputs used to
hit: outputs over inputs, misread data, tampered models, tracebacks, degenerate data, late
validation, misleading messages, and save debris/permissions."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import oddity
from oddity.cli import main
from oddity.core.errors import ConfigError, DataError, ModelFileError, OutputError
from oddity.core.persistence import atomic_write, load_model, save_model, staged_directory
from oddity.core.registry import get_detector_class
from oddity.series.data import read_series


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code: int, err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}



@pytest.fixture
def series_csv(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=300, freq="1min")
    table = pd.DataFrame({"when": times.strftime("%Y-%m-%d %H:%M"),
                          "cpu": np.sin(np.arange(300) / 7) + 0.1 * rng.normal(size=300)})
    path = tmp_path / "history.csv"
    table.to_csv(path, index=False)
    return path


# --- 1. outputs never overwrite inputs or existing files --------------------------------------
def test_fit_out_onto_a_training_image_or_csv_is_refused(capsys, inspection_set, series_csv, tmp_path):
    before = snapshot(inspection_set)
    image = inspection_set / "train" / "good" / "000.png"
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", image, "--overwrite")
    assert_error(code, err, str(image), "input")
    csv_before = series_csv.read_bytes()
    code, _, err = run(capsys, "fit", "rolling_zscore", "--data", series_csv, "--out", series_csv, "--overwrite")
    assert_error(code, err, "input")
    assert snapshot(inspection_set) == before and series_csv.read_bytes() == csv_before


def test_eval_json_onto_the_model_and_hard_links_are_refused(capsys, model, inspection_set, tmp_path):
    before = model.read_bytes()
    code, _, err = run(capsys, "eval", model, "--data", inspection_set, "--json", model, "--overwrite")
    assert_error(code, err, "input")
    link = tmp_path / "alias.json"
    os.link(model, link)
    code, _, err = run(capsys, "eval", model, "--data", inspection_set, "--json", link, "--overwrite")
    assert_error(code, err, "input")
    assert model.read_bytes() == before


def test_existing_outputs_need_overwrite_and_are_then_replaced_whole(capsys, model, inspection_set, tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = run(capsys, "predict", model, inspection_set / "test", "--out", out, "--quiet")
    assert_error(code, err, str(out), "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    code, _, err = run(capsys, "predict", model, inspection_set / "test", "--out", out, "--quiet", "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["masks", "overlays", "scores.csv"]  # not merged
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder counts as absent
    code, _, err = run(capsys, "predict", model, inspection_set / "test", "--out", empty, "--quiet")
    assert code == 0, err


def test_a_read_only_model_is_never_replaced(capsys, inspection_set, tmp_path):
    path = tmp_path / "m.oddity"
    path.write_bytes(b"precious")
    path.chmod(0o444)
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", path,
                       "--image-size", "64", "--quiet", "--overwrite")
    assert_error(code, err, "read-only")
    assert path.read_bytes() == b"precious"


def test_a_second_run_finishing_onto_a_new_output_errors_and_leaves_the_first(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="another run"):
        from oddity.core.outputs import output_policy

        with output_policy(overwrite=False), staged_directory(out) as stage:
            (stage / "second.txt").write_text("second")
            out.mkdir()  # the first run finished meanwhile
            (out / "first.txt").write_text("first")
    assert sorted(p.name for p in out.iterdir()) == ["first.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_directory(out) as stage:  # the API replaces (whole) by default
        (stage / "third.txt").write_text("third")
    assert sorted(p.name for p in out.iterdir()) == ["third.txt"]


# --- 2. data never silently misread -----------------------------------------------------------
def test_ambiguous_day_first_dates_are_refused_unless_the_order_is_given(tmp_path):
    path = tmp_path / "s.csv"
    days = [f"{d:02d}/01/2024" for d in range(1, 13)]  # reads as 1..12 Jan or as Jan..Dec 1st
    pd.DataFrame({"date": days, "v": np.arange(12.0)}).to_csv(path, index=False)
    with pytest.raises(DataError, match="ambiguous dates"):
        read_series(path)
    frame, _ = read_series(path, dayfirst=True)
    assert (np.diff(frame.index.day) == 1).all() and (frame.index.month == 1).all()
    mixed = [f"{d:02d}/02/2024" for d in range(1, 20)]  # 13/02 only reads day-first
    pd.DataFrame({"date": mixed, "v": np.arange(19.0)}).to_csv(path, index=False)
    frame, report = read_series(path)
    assert (frame.index.month == 2).all() and list(frame.index.day) == list(range(1, 20))
    assert not any("sorted" in note for note in report.notes)


def test_mixed_formats_and_numeric_times_are_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("time,v\n2024-01-01,1\n2024-01-02,2\n01/03/2024,3\n")
    with pytest.raises(DataError, match="row 3"):
        read_series(path)
    path.write_text("t,v\n1700000000,1\n1700000060,2\n")
    with pytest.raises(DataError, match="does not guess their unit"):
        read_series(path, time_column="t")


def test_non_binary_masks_are_refused(tmp_path):
    from oddity.image.data import read_mask

    mask = np.zeros((32, 32), np.uint8)
    mask[4:10, 4:10] = 255
    mask[10, 4:10] = 3  # anti-aliased edge
    Image.fromarray(mask).save(tmp_path / "m.png")
    with pytest.raises(DataError, match="not binary, it holds 3 values"):
        read_mask(tmp_path / "m.png")
    Image.fromarray((mask == 255).astype(np.uint8)).save(tmp_path / "ones.png")  # 0/1 is binary
    assert read_mask(tmp_path / "ones.png").sum() == 36
    assert read_mask(tmp_path / "m.png", threshold=0.5).sum() == 36  # the grey edge is below half
    assert read_mask(tmp_path / "m.png", threshold=0.01).sum() == 42
    np.testing.assert_array_equal(read_mask(tmp_path / "ones.png", threshold=0.9), mask == 255)


def test_exif_orientation_is_applied_to_pixels_and_sizes(tmp_path):
    from oddity.image.data import read_image, read_size

    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:, :8] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise: the band is at the top
    Image.fromarray(pixels).save(tmp_path / "photo.png", exif=exif)
    read = read_image(tmp_path / "photo.png")
    assert read.shape == (64, 32, 3) and read_size(tmp_path / "photo.png") == (64, 32)
    assert read[:8].min() == 1.0 and read[8:].max() == 0.0


def test_set_values_are_parsed_by_type(capsys, inspection_set, tmp_path):
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "m.oddity",
                       "--image-size", "64", "--set", "per_image_contrast=False", "--set", "tile=null", "--quiet")
    assert code == 0, err
    params = oddity.load(tmp_path / "m.oddity").get_params()
    assert params["per_image_contrast"] is False and params["tile"] is None
    with pytest.raises(ConfigError, match="per_image_contrast"):
        oddity.create("test-meandiff", per_image_contrast="False")


def test_eval_notes_anomalous_images_without_masks(capsys, model, inspection_set, tmp_path):
    data = tmp_path / "set"
    shutil.copytree(inspection_set, data)
    masks = sorted((data / "ground_truth").rglob("*_mask.png"))
    masks[0].unlink()
    code, out, err = run(capsys, "eval", model, "--data", data, "--quiet")
    assert code == 0, err
    assert f"note: 1 of {len(masks)} anomalous image(s) have no mask file" in out


# --- 3. tampered or inconsistent models are refused -------------------------------------------
def test_a_flipped_byte_is_caught_by_the_checksum(model, tmp_path):
    data = bytearray(model.read_bytes())
    data[-5] ^= 0x40
    (tmp_path / "bad.oddity").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        oddity.load(tmp_path / "bad.oddity")


@pytest.mark.parametrize("tamper, message", [
    (lambda doc, arrays: doc["thresholds"]["threshold_"].update(value=float("nan")), "not a finite number"),
    (lambda doc, arrays: doc["thresholds"].pop("pixel_threshold_"), "no pixel threshold"),
    (lambda doc, arrays: arrays.update(mean=arrays["mean"][:, :10]), "do not fit its configuration"),
    (lambda doc, arrays: arrays.update(mean=arrays["mean"] * np.nan), "NaN or infinite"),
])
def test_inconsistent_models_with_a_valid_checksum_are_refused(model, tmp_path, tamper, message):
    document, arrays = load_model(model)
    tamper(document, arrays)
    save_model(tmp_path / "bad.oddity", document, arrays)
    with pytest.raises(ModelFileError, match=message):
        oddity.load(tmp_path / "bad.oddity")


def test_removed_border_arrays_are_refused(inspection_set, tmp_path):
    detector = oddity.create("test-meandiff", image_size=64, border_rings=1).fit(inspection_set, verbose=False)
    detector.save(tmp_path / "m.oddity")
    document, arrays = load_model(tmp_path / "m.oddity")
    del arrays["border_mean"], arrays["border_std"]
    save_model(tmp_path / "m.oddity", document, arrays)
    with pytest.raises(ModelFileError, match="border statistics"):
        oddity.load(tmp_path / "m.oddity")


# --- 4. no tracebacks --------------------------------------------------------------------------
def test_decompression_bombs_are_data_errors_and_skip_bad_skips_them(capsys, model, inspection_set, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "good.png").write_bytes((inspection_set / "test" / "good" / "000.png").read_bytes())
    Image.new("1", (20_000, 20_000)).save(folder / "bomb.png")  # 400 Mpx in a small file
    code, _, err = run(capsys, "predict", model, folder, "--out", tmp_path / "out", "--quiet")
    assert_error(code, err, "bomb.png", "--skip-bad")
    code, _, err = run(capsys, "predict", model, folder, "--out", tmp_path / "out", "--quiet", "--skip-bad")
    assert code == 0 and "bomb.png" in err and "Traceback" not in err


def test_wrongly_typed_set_values_are_one_line_errors(capsys, inspection_set, tmp_path):
    for value in ("smoothing_sigma=abc", "seed=1.5", "per_image_contrast=maybe", "smoothing_sigma=nan"):
        code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "m.oddity",
                           "--set", value)
        assert_error(code, err, value.split("=")[0], "must be")


# --- 5. degenerate data ------------------------------------------------------------------------
def test_constant_training_series_is_refused_and_a_constant_channel_warned(tmp_path):
    detector = oddity.create("rolling_zscore", window=8)
    with pytest.raises(DataError, match="every channel is constant"):
        detector.fit(np.full(200, 3.0))
    values = np.stack([np.sin(np.arange(200) / 5), np.full(200, 1.0)], axis=1)
    with pytest.warns(UserWarning, match="1 channel"):
        detector.fit(values)


def test_single_training_image_warns_and_tiny_images_are_refused(capsys, inspection_set, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes((inspection_set / "train" / "good" / "000.png").read_bytes())
    code, out, err = run(capsys, "fit", "test-meandiff", "--data", one, "--out", tmp_path / "m.oddity",
                         "--image-size", "64", "--quiet")
    assert code == 0 and "warning: fitting on a single image" in err
    assert "in-sample: calibrated on the 1 training image themselves" in out
    Image.new("RGB", (1, 1)).save(one / "dot.png")
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", one, "--out", tmp_path / "n.oddity")
    assert_error(code, err, "dot.png", "1x1", "at least 16")
    with pytest.raises(DataError, match="at least 16"):
        oddity.create("test-meandiff").fit(np.zeros((3, 4, 4, 3), np.uint8), verbose=False)


# --- 6. validation before any work --------------------------------------------------------------
def test_bad_arguments_and_unwritable_outputs_fail_before_fitting(capsys, inspection_set, tmp_path, monkeypatch):
    def no_work(self, images):
        raise AssertionError("fit started")

    monkeypatch.setattr(get_detector_class("test-meandiff"), "_fit_images", no_work)
    for option, value, named in (("--target-fpr", "2", "target_fpr"), ("--seed", "-1", "seed")):
        code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "m.oddity",
                           option, value)
        assert_error(code, err, named)
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "file" / "m.oddity")
    assert_error(code, err, "is a file")
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path)
    assert_error(code, err, "is a folder")
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "m.oddity",
                       "--time-column", "t")
    assert_error(code, err, "--time-column", "series")


# --- 7. messages that say what is true -----------------------------------------------------------
def test_padim_with_two_images_says_why_it_needs_three(inspection_set):
    two = sorted((inspection_set / "train" / "good").iterdir())[:2]
    with pytest.raises(DataError, match="give at least three"):
        oddity.create("padim", image_size=64).fit([str(p) for p in two], verbose=False)


def test_eval_accepts_skip_bad_as_its_errors_suggest(capsys, model, inspection_set, tmp_path):
    data = tmp_path / "set"
    (data / "good").mkdir(parents=True)
    (data / "bad").mkdir()
    for source in sorted((inspection_set / "test").rglob("*.png")):
        (data / source.parent.name.replace("good", "good")).mkdir(exist_ok=True)
        target = data / ("good" if source.parent.name == "good" else "bad") / source.name
        target.write_bytes(source.read_bytes())
    (data / "good" / "broken.png").write_bytes(b"not a png")
    code, _, err = run(capsys, "eval", model, "--data", data, "--quiet")
    assert_error(code, err, "broken.png", "--skip-bad")
    code, out, err = run(capsys, "eval", model, "--data", data, "--quiet", "--skip-bad")
    assert code == 0 and "broken.png" in err and "image AUROC" in out


def test_time_column_and_date_order_are_remembered_at_predict(capsys, series_csv, tmp_path):
    table = pd.read_csv(series_csv)
    table["when"] = pd.to_datetime(table["when"]).dt.strftime("%d/%m/%Y %H:%M")
    table.insert(1, "stamp", table["when"])  # a second text column the reader could pick
    table.to_csv(tmp_path / "dm.csv", index=False)
    code, _, err = run(capsys, "fit", "rolling_zscore", "--data", tmp_path / "dm.csv", "--time-column", "when",
                       "--value-columns", "cpu", "--dates", "day-first", "--set", "window=8",
                       "--out", tmp_path / "m.oddity", "--quiet")
    assert code == 0, err
    model = oddity.load(tmp_path / "m.oddity")
    assert (model.time_column_, model.dayfirst_) == ("when", True)
    code, _, err = run(capsys, "predict", tmp_path / "m.oddity", tmp_path / "dm.csv", "--out", tmp_path / "pred")
    assert code == 0, err
    scores = pd.read_csv(tmp_path / "pred" / "scores.csv")
    assert scores.columns[0] == "when" and pd.Timestamp(scores["when"].iloc[0]) == pd.Timestamp("2024-01-01")


# --- 8. no debris, usual permissions ------------------------------------------------------------
def test_stale_temporaries_are_cleaned_and_model_files_follow_the_umask(inspection_set, tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    (tmp_path / f".m.oddity.{dead}.abc123.tmp").write_bytes(b"half a model")
    (tmp_path / f".m.oddity.{dead}.def456.old").mkdir()
    live = tmp_path / f".m.oddity.{os.getpid()}.live00.tmp"
    live.write_bytes(b"a save in progress")
    previous = os.umask(0o022)
    try:
        oddity.create("test-meandiff", image_size=64).fit(inspection_set, verbose=False).save(tmp_path / "m.oddity")
    finally:
        os.umask(previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "m.oddity"])
    assert (tmp_path / "m.oddity").stat().st_mode & 0o777 == 0o644


def test_atomic_write_failure_leaves_nothing(tmp_path):
    def fail(tmp):
        Path(tmp).write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "x.json", fail)
    assert list(tmp_path.iterdir()) == []
