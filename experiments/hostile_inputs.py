"""Feed oddity hostile inputs through the CLI and the Python API and tabulate what happens.

Each case builds its input in a scratch folder, runs one command or call, and records the
outcome: the exit status and first line of the message (CLI), the exception or result (API),
whether anything escaped as a traceback, and whether any input file changed. The table (Markdown)
is printed and is the one on docs/robustness.md. Run from the repository root:

    PYTHONPATH=src python experiments/hostile_inputs.py > /tmp/hostile.md
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

import oddity
from oddity.cli import main
from oddity.core.errors import OddityError
from oddity.core.outputs import output_policy
from oddity.core.persistence import checksum, load_model, save_model, staged_directory
from oddity.image.synth import make_inspection_set

WORK = Path(tempfile.mkdtemp(prefix="oddity-hostile-"))
SET = make_inspection_set(WORK / "set", n_train=12, n_test_good=4, n_test_defect=2, size=64, seed=1,
                          texture="stripes")
GOOD = sorted((SET / "train" / "good").iterdir())
MODEL = WORK / "model.oddity"
FIT = ["--image-size", "64", "--set", "coreset_ratio=0.1", "--quiet"]


@dataclass
class Case:
    area: str
    hostile: str
    run: Callable[[], str]
    expect: str  # "error", "warning" or "ok"


CASES: list[Case] = []


def case(area: str, hostile: str, expect: str):
    def add(run: Callable[[], str]) -> Callable[[], str]:
        CASES.append(Case(area, hostile, run, expect))
        return run
    return add


def fresh(name: str) -> Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def folder_with(name: str, *extra: tuple[str, bytes | Callable[[Path], None]], n_good: int = 4) -> Path:
    folder = fresh(name)
    for source in GOOD[:n_good]:
        shutil.copy(source, folder / source.name)
    for filename, content in extra:
        if callable(content):
            content(folder / filename)
        else:
            (folder / filename).write_bytes(content)
    return folder


def new_out(suffix: str = "") -> Path:
    """A path no case has used yet (so each case meets its own hostile input first)."""
    new_out.count = getattr(new_out, "count", 0) + 1
    return WORK / "outputs" / f"out{new_out.count}{suffix}"


def put(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


def cli(*argv) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except BaseException as exc:  # noqa: BLE001 - recorded as a traceback
            return f"TRACEBACK {type(exc).__name__}: {exc}"
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if code == 0:
        notes = [line.strip() for line in out.getvalue().splitlines()
                 if "note:" in line and "AUPIMO not computed" not in line]  # the tiny set's, not the input's
        warned = [line for line in lines if line.startswith("warning:")]
        said = (warned or notes or [""])[0]
        return f"exit 0{'; ' + said if said else ''}"
    return f"exit {code}; {lines[0] if lines else '(no message)'}"


def api(call: Callable[[], object]) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except OddityError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - recorded as a traceback
            return f"TRACEBACK {type(exc).__name__}: {exc}"
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return "ok" + (f"; warning: {said[0]}" if said else f" ({result})" if isinstance(result, str) else "")


def write_table(name: str, **columns) -> Path:
    path = WORK / name
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def hours(n: int) -> list[str]:
    return list(pd.date_range("2024-01-01", periods=n, freq="h").astype(str))


def write_series(name: str, times, values, time_name: str = "time", **extra) -> Path:
    table = pd.DataFrame({time_name: times, "v": values, **extra})
    path = WORK / name
    table.to_csv(path, index=False)
    return path


RNG = np.random.default_rng(0)
T = 300
HISTORY = write_series("history.csv", pd.date_range("2024-01-01", periods=T, freq="1min").strftime("%Y-%m-%d %H:%M"),
                       np.sin(np.arange(T) / 7) + 0.1 * RNG.normal(size=T))
SERIES_MODEL = WORK / "series.oddity"


def read(path: Path) -> str:
    from oddity.series.data import read_series

    frame, report = read_series(path)
    return f"{len(frame)} rows, index {frame.index[0]} .. {frame.index[-1]}" + (
        f"; note: {report.notes[0]}" if report.notes else "")


# --- image folders and MVTec layout -----------------------------------------------------------
def exif_turned() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


def bomb(path: Path) -> None:
    Image.new("1", (20_000, 20_000)).save(path)


for label, name, content in [
    ("an empty (0-byte) PNG", "empty.png", b""),
    ("a text file named .png", "text.png", b"just some text"),
    ("a truncated PNG (first 100 bytes)", "cut.png", GOOD[0].read_bytes()[:100]),
    ("a 1x1 image", "dot.png", lambda p: Image.new("RGB", (1, 1)).save(p)),
    ("a 8x300 strip", "strip.png", lambda p: Image.new("RGB", (300, 8)).save(p)),
    ("a 20000x20000 decompression bomb (50 kB file)", "bomb.png", bomb),
    ("a 10000x9000 image (90 Mpx, just over the limit)", "huge.png", lambda p: Image.new("1", (10_000, 9_000)).save(p)),
]:
    case("image folder", f"fit on a folder holding {label}", "error")(
        lambda name=name, content=content: cli("fit", "patchcore", "--data", folder_with("bad", (name, content)),
                                               "--out", new_out(".oddity"), *FIT))
case("image folder", "the bomb folder again with --skip-bad", "warning")(
    lambda: cli("fit", "patchcore", "--data", folder_with("bad", ("bomb.png", bomb)), "--out", new_out(".oddity"),
                "--skip-bad", "--overwrite", *FIT))
for label, maker in [
    ("16-bit grey PNGs", lambda p: Image.fromarray((np.asarray(Image.open(GOOD[0]).convert("L"), np.uint16) * 257)).save(p)),
    ("an RGBA PNG with transparency", lambda p: Image.open(GOOD[0]).convert("RGBA").save(p)),
    ("a palette PNG with a transparent colour", lambda p: Image.open(GOOD[0]).convert("P").save(p, transparency=0)),
    ("a CMYK JPEG", lambda p: Image.open(GOOD[0]).convert("CMYK").save(p)),
    ("an upper-case .PNG extension", lambda p: shutil.copy(GOOD[1], p)),
    ("images of different sizes (64 and 96 px)", lambda p: Image.open(GOOD[0]).resize((96, 80)).save(p)),
    ("a photo with an EXIF orientation tag (read as displayed)", lambda p: Image.open(GOOD[0]).save(p, exif=exif_turned())),
]:
    suffix = ".jpg" if "JPEG" in label else ".PNG" if "upper" in label else ".png"
    case("image folder", f"fit on normal images plus {label}", "ok")(
        lambda maker=maker, suffix=suffix: cli("fit", "patchcore", "--data", folder_with("mixed", ("extra" + suffix, maker)),
                                               "--out", new_out(".oddity"), "--overwrite", *FIT))
case("image folder", "fit on an empty folder", "error")(
    lambda: cli("fit", "patchcore", "--data", fresh("none"), "--out", new_out(".oddity"), *FIT))
case("image folder", "fit on a folder of CSV files only", "error")(
    lambda: cli("fit", "patchcore", "--data", folder_with("csvs", ("a.csv", b"1,2"), n_good=0), "--out", new_out(".oddity"), *FIT))
case("image folder", "fit on a folder that does not exist", "error")(
    lambda: cli("fit", "patchcore", "--data", WORK / "missing", "--out", new_out(".oddity"), *FIT))
case("image folder", "fit on a single image", "warning")(
    lambda: cli("fit", "patchcore", "--data", folder_with("one", n_good=1), "--out", new_out(".oddity"), "--overwrite", *FIT))
case("image folder", "PaDiM fit on two images (one is held out)", "error")(
    lambda: cli("fit", "padim", "--data", folder_with("two", n_good=2), "--out", new_out(".oddity"), "--overwrite", *FIT[:2], "--quiet"))


def mvtec_copy(name: str) -> Path:
    target = WORK / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(SET, target)
    return target


def masks(root: Path) -> list[Path]:
    return sorted((root / "ground_truth").rglob("*_mask.png"))


def edit_mask(root: Path, change: Callable[[np.ndarray], np.ndarray], fmt: str = "PNG") -> Path:
    path = masks(root)[0]
    Image.fromarray(change(np.asarray(Image.open(path).convert("L")))).save(path, format=fmt)
    return root


def anti_aliased(mask: np.ndarray) -> np.ndarray:
    mask = mask.copy()
    mask[:, :3] = np.array([1, 2, 3], np.uint8)
    return mask


case("MVTec / eval", "eval where one anomalous image has no mask file", "warning")(
    lambda: cli("eval", MODEL, "--data", (lambda r: (masks(r)[0].unlink(), r)[1])(mvtec_copy("nomask")), "--quiet"))
case("MVTec / eval", "a mask with values 0-3 and 255 (anti-aliased edge)", "error")(
    lambda: cli("eval", MODEL, "--data", edit_mask(mvtec_copy("aa"), anti_aliased), "--quiet"))
case("MVTec / eval", "a mask saved as JPEG under the .png name", "error")(
    lambda: cli("eval", MODEL, "--data", edit_mask(mvtec_copy("jpgmask"), lambda m: m, "JPEG"), "--quiet"))
case("MVTec / eval", "a mask of the wrong size", "error")(
    lambda: cli("eval", MODEL, "--data", edit_mask(mvtec_copy("size"), lambda m: m[:32]), "--quiet"))
case("MVTec / eval", "a mask of 0 and 1 instead of 0 and 255", "ok")(
    lambda: cli("eval", MODEL, "--data", edit_mask(mvtec_copy("ones"), lambda m: (m > 0).astype(np.uint8)), "--quiet"))
case("MVTec / eval", "an anomalous image with an all-zero mask", "warning")(
    lambda: cli("eval", MODEL, "--data", edit_mask(mvtec_copy("zero"), lambda m: m * 0), "--quiet"))
case("MVTec / eval", "eval on a folder without good/", "error")(
    lambda: cli("eval", MODEL, "--data", folder_with("flat"), "--quiet"))
case("MVTec / eval", "eval where every test image is normal", "error")(
    lambda: cli("eval", MODEL, "--data", (lambda r: ([shutil.rmtree(d) for d in (r / "test").iterdir() if d.name != "good"], r)[1])(mvtec_copy("allgood")), "--quiet"))
case("MVTec / eval", "eval with a corrupt test image", "error")(
    lambda: cli("eval", MODEL, "--data", (lambda r: ((r / "test" / "good" / "000.png").write_bytes(b"junk"), r)[1])(mvtec_copy("junk")), "--quiet"))
case("MVTec / eval", "the same with --skip-bad (the error suggests it)", "warning")(
    lambda: cli("eval", MODEL, "--data", WORK / "junk", "--quiet", "--skip-bad"))

# --- arrays given to the Python API ----------------------------------------------------------
def predict_arrays(array) -> Callable[[], object]:
    return lambda: oddity.load(MODEL).predict(array, verbose=False) and None


for label, array in [
    ("float images holding NaN", np.full((2, 64, 64, 3), np.nan, np.float32)),
    ("float images with values up to 255", np.full((2, 64, 64, 3), 200.0, np.float32)),
    ("int64 pixels", np.zeros((2, 64, 64, 3), np.int64)),
    ("bool pixels", np.zeros((2, 64, 64, 3), bool)),
    ("a (2, 64, 64, 5) array", np.zeros((2, 64, 64, 5), np.uint8)),
    ("4x4 images", np.zeros((2, 4, 4, 3), np.uint8)),
    ("an empty list", []),
    ("a path and an array mixed", [str(GOOD[0]), np.zeros((64, 64, 3), np.uint8)]),
]:
    case("arrays (API)", f"predict on {label}", "error")(lambda array=array: api(predict_arrays(array)))
case("arrays (API)", "predict on uint16 images", "ok")(
    lambda: api(predict_arrays(np.full((2, 64, 64, 3), 30000, np.uint16))))
case("arrays (API)", "a torch tensor (N, 1, H, W)", "error")(
    lambda: api(predict_arrays(__import__("torch").zeros(2, 1, 64, 64))))

# --- CSV / Parquet series --------------------------------------------------------------------
DAYS = [f"{d:02d}/01/2024" for d in range(1, 13)]
for label, make, expect in [
    ("dates 01/01/2024 .. 12/01/2024 (day-first or month-first both sorted)",
     lambda: write_series("amb.csv", DAYS, np.arange(12.0)), "error"),
    ("day-first dates with days above 12 (01/02 .. 19/02)",
     lambda: write_series("dm.csv", [f"{d:02d}/02/2024" for d in range(1, 20)], np.arange(19.0)), "ok"),
    ("ISO dates with one row in dd/mm/yyyy", lambda: write_series("mixed.csv", ["2024-01-01", "2024-01-02", "03/01/2024"], [1.0, 2, 3]), "error"),
    ("ISO dates with and without times", lambda: write_series("iso.csv", ["2024-01-01", "2024-01-01 12:00", "2024-01-02"], [1.0, 2, 3]), "ok"),
    ("rows out of time order", lambda: write_series("unsorted.csv", ["2024-01-03", "2024-01-01", "2024-01-02", "2024-01-04"], [1.0, 2, 3, 4]), "warning"),
    ("a repeated timestamp", lambda: write_series("dup.csv", ["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"], [1.0, 2, 3, 4]), "warning"),
    ("a NaN value", lambda: write_series("nan.csv", ["2024-01-01", "2024-01-02", "2024-01-03"], [1.0, np.nan, 3]), "warning"),
    ("an infinite value", lambda: write_series("inf.csv", ["2024-01-01", "2024-01-02", "2024-01-03"], [1.0, np.inf, 3]), "error"),
    ("a text value in a number column", lambda: write_series("text.csv", ["2024-01-01", "2024-01-02", "2024-01-03"], ["1", "high", "3"]), "error"),
    ("a missing timestamp", lambda: write_series("notime.csv", ["2024-01-01", None, "2024-01-03"], [1.0, 2, 3]), "error"),
    ("an unparseable timestamp", lambda: write_series("badtime.csv", ["2024-01-01", "yesterday", "2024-01-03"], [1.0, 2, 3]), "error"),
    ("UTC offsets that change (daylight saving)", lambda: write_series("dst.csv", ["2024-03-31T01:00+01:00", "2024-03-31T03:00+02:00", "2024-03-31T04:00+02:00"], [1.0, 2, 3]), "warning"),
    ("a UTC offset beside times without one", lambda: write_series("naive.csv", ["2024-03-31T01:00+01:00", "2024-03-31T02:00", "2024-03-31T03:00"], [1.0, 2, 3]), "error"),
    ("an empty file", lambda: put(WORK / "empty.csv", ""), "error"),
    ("a header only", lambda: put(WORK / "header.csv", "time,v\n"), "error"),
    ("a single row", lambda: write_series("one.csv", ["2024-01-01"], [1.0]), "error"),
    ("semicolon-separated columns", lambda: put(WORK / "semi.csv", "time;v\n2024-01-01;1\n2024-01-02;2\n"), "error"),
    ("a Parquet file renamed .csv", lambda: (pd.DataFrame({"v": [1.0, 2.0]}).to_parquet(WORK / "pq.csv"), WORK / "pq.csv")[1], "error"),
    ("a .xlsx file", lambda: put(WORK / "s.xlsx", b"PK\x03\x04"), "error"),
]:
    case("CSV/Parquet series", f"read {label}", expect)(lambda make=make: api(lambda: read(make())))
case("CSV/Parquet series", "fit --time-column on a numeric (epoch) column", "error")(
    lambda: cli("fit", "rolling_zscore", "--data", write_series("epoch.csv", np.arange(100) * 60 + 1_700_000_000, np.sin(np.arange(100.0))),
                "--time-column", "time", "--out", new_out(".oddity"), "--quiet"))
case("CSV/Parquet series", "fit on a constant series", "error")(
    lambda: cli("fit", "rolling_zscore", "--data", write_series("flat.csv", pd.date_range("2024-01-01", periods=200, freq="h").astype(str), np.full(200, 3.0)),
                "--set", "window=8", "--out", new_out(".oddity"), "--quiet"))
case("CSV/Parquet series", "fit on a series with one constant channel", "warning")(
    lambda: cli("fit", "rolling_zscore", "--data", write_series("onef.csv", pd.date_range("2024-01-01", periods=200, freq="h").astype(str), np.sin(np.arange(200.0)), w=np.ones(200)),
                "--set", "window=8", "--out", new_out(".oddity"), "--quiet", "--overwrite"))
case("CSV/Parquet series", "fit --time-column naming no column", "error")(
    lambda: cli("fit", "rolling_zscore", "--data", HISTORY, "--time-column", "stamp", "--out", new_out(".oddity"), "--quiet"))
case("CSV/Parquet series", "fit --value-columns naming no column", "error")(
    lambda: cli("fit", "rolling_zscore", "--data", HISTORY, "--value-columns", "cpu", "--out", new_out(".oddity"), "--quiet"))
case("CSV/Parquet series", "predict a file that lacks the fitted column", "error")(
    lambda: cli("predict", SERIES_MODEL, write_table("other.csv", time=hours(50), w=np.arange(50.0)),
                "--out", new_out(), "--quiet"))


def remembered_time_column() -> str:
    data = write_table("when.csv", when=pd.date_range("2024-01-01", periods=100, freq="h").strftime("%d/%m/%Y %H:%M"),
                       stamp="x", v=np.sin(np.arange(100.0)))
    model, out = new_out(".oddity"), new_out()
    cli("fit", "rolling_zscore", "--data", data, "--time-column", "when", "--dates", "day-first",
        "--value-columns", "v", "--set", "window=8", "--out", model, "--quiet")
    cli("predict", model, data, "--out", out, "--quiet")
    return "scores.csv starts " + (out / "scores.csv").read_text().splitlines()[1][:16]


case("CSV/Parquet series", "predict with a model fitted with --time-column when --dates day-first", "ok")(
    remembered_time_column)


# --- model files -----------------------------------------------------------------------------
def tampered(name: str, edit: Callable[[dict, dict], None]) -> Path:
    document, arrays = load_model(MODEL)
    edit(document, arrays)
    save_model(WORK / name, document, arrays)
    return WORK / name


def flipped() -> Path:
    data = bytearray(MODEL.read_bytes())
    data[len(data) // 2] ^= 0x10
    (WORK / "flip.oddity").write_bytes(bytes(data))
    return WORK / "flip.oddity"


def version_99() -> Path:
    from safetensors.numpy import save_file

    document, arrays = load_model(MODEL)
    text = json.dumps({**document, "format_version": 99})
    save_file(arrays, str(WORK / "v99.oddity"), metadata={"oddity": text, "oddity_sha256": checksum(text, arrays)})
    return WORK / "v99.oddity"


def drop_border(document: dict, arrays: dict) -> None:
    arrays.pop("border_mean"), arrays.pop("border_std")


for label, make in [
    ("one flipped byte in the weights", flipped),
    ("a truncated model file", lambda: put(WORK / "cut.oddity", MODEL.read_bytes()[:500])),
    ("a pickle renamed .oddity", lambda: put(WORK / "p.oddity", __import__("pickle").dumps({"a": 1}))),
    ("an empty file", lambda: put(WORK / "e.oddity", b"")),
    ("a folder named .oddity", lambda: fresh("d.oddity")),
    ("a NaN image threshold (checksum redone)", lambda: tampered("nan.oddity", lambda d, a: d["thresholds"]["threshold_"].update(value=float("nan")))),
    ("the border arrays removed (checksum redone)", lambda: tampered("border.oddity", drop_border)),
    ("a memory bank of the wrong width (checksum redone)", lambda: tampered("width.oddity", lambda d, a: a.update(memory_bank=a["memory_bank"][:, :7].copy()))),
    ("an infinite value in the memory bank (checksum redone)", lambda: tampered("inf.oddity", lambda d, a: a["memory_bank"].__setitem__((0, 0), np.inf))),
    ("an unknown detector name (checksum redone)", lambda: tampered("name.oddity", lambda d, a: d.update(detector="nonesuch"))),
    ("format version 99 (checksum redone)", version_99),
    ("a parameter of the wrong type (checksum redone)", lambda: tampered("param.oddity", lambda d, a: d["params"].update(image_size="big"))),
]:
    case("model file", f"predict with {label}", "error")(
        lambda make=make: cli("predict", make(), SET / "test" / "good", "--out", new_out(), "--quiet"))
case("model file", "predict with an image model on a CSV file", "error")(
    lambda: cli("predict", MODEL, HISTORY, "--out", new_out(), "--quiet"))
case("model file", "predict with a series model on an image folder", "error")(
    lambda: cli("predict", SERIES_MODEL, SET / "test" / "good", "--out", new_out(), "--quiet"))

# --- CLI options and outputs ------------------------------------------------------------------
for label, options in [
    ("--target-fpr 2", ["--target-fpr", "2"]),
    ("--target-fpr 0", ["--target-fpr", "0"]),
    ("--image-size 8", ["--image-size", "8"]),
    ("--tile 8", ["--tile", "8"]),
    ("--set coreset_ratio=abc", ["--set", "coreset_ratio=abc"]),
    ("--set coreset_ratio=nan", ["--set", "coreset_ratio=nan"]),
    ("--set seed=1.5", ["--set", "seed=1.5"]),
    ("--set per_image_contrast=maybe", ["--set", "per_image_contrast=maybe"]),
    ("--set nonsense=1", ["--set", "nonsense=1"]),
    ("--set without '='", ["--set", "coreset_ratio"]),
    ("--seed abc", ["--seed", "abc"]),
    ("--seed -1", ["--seed", "-1"]),
    ("--time-column with an image detector", ["--time-column", "t"]),
    ("--augment flips without --shots", ["--augment", "flips"]),
]:
    case("CLI options", f"fit {label} (fails before any image is read)", "error")(
        lambda options=options: cli("fit", "patchcore", "--data", SET, "--out", new_out(".oddity"), "--quiet", *options))
case("CLI options", "fit --set per_image_contrast=False", "ok")(
    lambda: (cli("fit", "patchcore", "--data", folder_with("pic"), "--out", WORK / "pic.oddity", "--set", "per_image_contrast=False", *FIT),
             f"stored per_image_contrast={oddity.load(WORK / 'pic.oddity').per_image_contrast!r}")[1])


def predict_into(out: Path, *extra) -> str:
    return cli("predict", MODEL, SET / "test" / "good", "--out", out, "--quiet", *extra)


for label, run, expect in [
    ("fit --out onto a training image (with --overwrite)", lambda: cli("fit", "patchcore", "--data", SET, "--out", GOOD[0], "--overwrite", *FIT), "error"),
    ("fit --out onto the training CSV (with --overwrite)", lambda: cli("fit", "rolling_zscore", "--data", HISTORY, "--out", HISTORY, "--overwrite", "--quiet"), "error"),
    ("fit --out through a symbolic link to a training image", lambda: (os.symlink(GOOD[1], WORK / "link.oddity") if not (WORK / "link.oddity").is_symlink() else None,
                                                                       cli("fit", "patchcore", "--data", SET, "--out", WORK / "link.oddity", "--overwrite", *FIT))[1], "error"),
    ("eval --json onto the model file", lambda: cli("eval", MODEL, "--data", SET, "--json", MODEL, "--overwrite", "--quiet"), "error"),
    ("eval --json onto a hard link of the model", lambda: (os.link(MODEL, WORK / "hard.json") if not (WORK / "hard.json").exists() else None,
                                                           cli("eval", MODEL, "--data", SET, "--json", WORK / "hard.json", "--overwrite", "--quiet"))[1], "error"),
    ("eval --json inside its own --report folder", lambda: cli("eval", MODEL, "--data", SET, "--json", WORK / "rep" / "m.json", "--report", WORK / "rep", "--quiet"), "error"),
    ("predict --out the input folder", lambda: predict_into(SET / "test" / "good"), "error"),
    ("predict --out a folder inside the input", lambda: predict_into(SET / "test" / "good" / "out"), "error"),
    ("predict --out a folder above the input", lambda: predict_into(SET / "test"), "error"),
    ("predict --out an existing folder holding the user's files", lambda: (folder_with("userdir"), predict_into(WORK / "userdir"))[1], "error"),
    ("the same with --overwrite (replaced whole, not merged)", lambda: (predict_into(WORK / "userdir", "--overwrite"),
                                                                       "now holds " + ", ".join(sorted(p.name for p in (WORK / "userdir").iterdir())))[1], "ok"),
    ("fit --out onto an existing model without --overwrite", lambda: cli("fit", "patchcore", "--data", SET, "--out", MODEL, *FIT), "error"),
    ("fit --out onto a read-only model with --overwrite", lambda: ((WORK / "ro.oddity").write_bytes(b"x") if not (WORK / "ro.oddity").exists() else None,
                                                                   (WORK / "ro.oddity").chmod(0o444), cli("fit", "patchcore", "--data", SET, "--out", WORK / "ro.oddity", "--overwrite", *FIT))[2], "error"),
    ("fit --out under a path whose parent is a file", lambda: cli("fit", "patchcore", "--data", SET, "--out", HISTORY / "m.oddity", *FIT), "error"),
    ("fit --out an existing folder", lambda: cli("fit", "patchcore", "--data", SET, "--out", fresh("adir"), "--overwrite", *FIT), "error"),
    ("compare --min-inliers -5", lambda: cli("compare", GOOD[0], GOOD[1], "--out", new_out(), "--min-inliers", "-5"), "error"),
    ("compare --out onto the reference image", lambda: cli("compare", GOOD[0], GOOD[1], "--out", GOOD[0], "--overwrite"), "error"),
    ("explain --plot onto the data file", lambda: cli("explain", SERIES_MODEL, HISTORY, "--plot", HISTORY, "--overwrite"), "error"),
    ("demo --out a folder holding the user's files", lambda: cli("demo", "--out", folder_with("demodir"), "--quiet"), "error"),
]:
    case("outputs", label, expect)(run)


def race() -> str:
    out = WORK / "race"
    shutil.rmtree(out, ignore_errors=True)
    try:
        with output_policy(overwrite=False), staged_directory(out) as stage:
            (stage / "second.txt").write_text("second")
            out.mkdir()
            (out / "first.txt").write_text("first")
    except OddityError as exc:
        return f"OutputError: {exc}; {out.name} holds {sorted(p.name for p in out.iterdir())}"
    return "ok"


def stale() -> str:
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    target = fresh("stale")
    (target / f".m.oddity.{dead}.k9xq1z.tmp").write_bytes(b"half a model")
    old = os.umask(0o022)
    try:
        cli("fit", "patchcore", "--data", folder_with("st"), "--out", target / "m.oddity", *FIT)
    finally:
        os.umask(old)
    mode = oct((target / "m.oddity").stat().st_mode & 0o777)
    return f"ok; folder now holds {sorted(p.name for p in target.iterdir())}, model mode {mode}"


case("outputs", "a second predict finishing into the --out the first one just created", "error")(race)
case("outputs", "a temporary file left by a run killed with SIGKILL; model mode under umask 022", "ok")(stale)


def main_() -> None:
    oddity.create("patchcore", image_size=64, coreset_ratio=0.1).fit(SET, verbose=False).save(MODEL)
    assert cli("fit", "rolling_zscore", "--data", HISTORY, "--set", "window=8", "--out", SERIES_MODEL, "--quiet").startswith("exit 0")
    protected = [p for p in (*SET.rglob("*"), MODEL, HISTORY, SERIES_MODEL) if p.is_file()]
    print("| # | reader | hostile input | outcome | verdict |")
    print("|---|---|---|---|---|")
    for number, item in enumerate(CASES, 1):
        before = {p: p.read_bytes() for p in protected}
        outcome = item.run()
        changed = [p.name for p in protected if not p.exists() or p.read_bytes() != before[p]]
        if "TRACEBACK" in outcome:
            verdict = "TRACEBACK"
        elif changed:
            verdict = f"LOSS ({', '.join(changed)})"
        else:
            failed = outcome.startswith("exit 1") or outcome.startswith("exit 2") or (
                "Error:" in outcome.split(";")[0])
            warned = "warning" in outcome or "note:" in outcome
            kind = "error" if failed else "warning" if warned else "ok"
            verdict = {"error": "refused", "warning": "warned", "ok": "read correctly"}[kind]
            if kind != item.expect:
                verdict += f" (expected {item.expect})"
        text = outcome.replace(str(WORK), "…").replace("|", "\\|").replace("\n", " ")
        text = text.replace("[", "\\[")  # "[-h] [--quiet]" would read as a Markdown reference
        text = text if len(text) <= 260 else text[:257] + "..."
        print(f"| {number} | {item.area} | {item.hostile} | {text} | {verdict} |", flush=True)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main_()
