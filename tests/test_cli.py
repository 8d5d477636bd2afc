"""The `oddity` command end to end on a tiny synthetic set, with the test-only detector."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import oddity
from oddity.cli import main

COMMANDS = ["fit", "predict", "eval", "zeroshot", "demo", "compare", "list"]
METRIC_KEYS = {"image_auroc", "image_aupr", "image_f1max", "pixel_auroc", "aupro", "aupimo",
               "images_per_second", "test_images", "seconds", "target_fpr", "expected_fpr", "realised_fpr"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]



@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith(f"usage: oddity {command}") and "--quiet" in out


def test_top_level_help_and_usage_errors(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in COMMANDS)
    code, _, err = run(capsys, "fit")
    assert code == 2 and "required" in err


def test_list_names_registered_detectors(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == oddity.list_detectors()
    assert "test-meandiff" in out


def test_fit_prints_time_and_thresholds_and_saves(capsys, inspection_set, tmp_path):
    out_path = tmp_path / "m.oddity"
    code, out, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", out_path,
                         "--image-size", "48", "--seed", "3", "--target-fpr", "0.2",
                         "--set", "smoothing_sigma=1.5", "--set", "calibration_fraction=0.25", "--quiet")
    assert code == 0, err
    assert "fitted test-meandiff on 12 images" in out and " s\n" in out
    assert "image threshold: " in out and "pixel threshold: " in out and "target FPR 0.2" in out
    assert err == ""  # --quiet: no progress bars
    detector = oddity.load(out_path)
    params = detector.get_params()
    assert (params["image_size"], params["seed"], params["smoothing_sigma"], params["calibration_fraction"]) == (48, 3, 1.5, 0.25)
    assert detector.threshold_.n_calibration == 3


def test_fit_shows_progress_unless_quiet(capsys, inspection_set, tmp_path):
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "m.oddity",
                       "--image-size", "48")
    assert code == 0 and "fit test-meandiff" in err and "calibrate" in err


@pytest.mark.parametrize("options, fragments", [
    (["--backbone", "efficientnet_lite0"], ["--backbone", "takes no backbone"]),
    (["--set", "coreset_ratio=0.1"], ["coreset_ratio", "image_size"]),
    (["--set", "nonsense"], ["--set", "key=value"]),
    (["--image-size", "8"], ["image_size"]),
])
def test_fit_rejects_bad_options(capsys, inspection_set, tmp_path, options, fragments):
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "m.oddity", *options)
    assert_error(code, err, *fragments)
    assert not (tmp_path / "m.oddity").exists()


def test_fit_errors_name_the_detector_or_folder(capsys, tmp_path):
    code, _, err = run(capsys, "fit", "no-such-method", "--data", tmp_path, "--out", tmp_path / "m.oddity")
    assert_error(code, err, "no-such-method", "test-meandiff")
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", tmp_path / "missing", "--out", tmp_path / "m.oddity")
    assert_error(code, err, str(tmp_path / "missing"))


def test_predict_writes_scores_overlays_and_masks(capsys, model, inspection_set, tmp_path):
    out = tmp_path / "pred"
    code, stdout, err = run(capsys, "predict", model, inspection_set / "test", "--out", out, "--quiet")
    assert code == 0, err
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "score", "label", "overlay", "mask"]
    assert len(rows) == 10 and "10 images: " in stdout
    assert {r["label"] for r in rows} <= {"anomalous", "normal"}
    threshold = oddity.load(model).threshold_.value
    for row in rows:
        assert (row["label"] == "anomalous") == (float(row["score"]) > threshold)
        assert (out / row["overlay"]).is_file() and (out / row["mask"]).is_file()
        overlay = np.asarray(Image.open(out / row["overlay"]))
        mask = np.asarray(Image.open(out / row["mask"]))
        assert overlay.shape == (64, 64, 3) and mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
    assert {r["overlay"] for r in rows} == {f"overlays/{p.parent.name}__{p.stem}.png"
                                           for p in (inspection_set / "test").rglob("*.png")}
    # Defects are flagged more often than normal images.
    flagged = {r["path"]: r["label"] == "anomalous" for r in rows}
    assert sum(v for k, v in flagged.items() if "/good/" not in k) >= 4


def test_predict_keeps_same_named_files_apart(capsys, model, inspection_set, tmp_path):
    a, b = tmp_path / "in" / "a", tmp_path / "in" / "b"
    a.mkdir(parents=True), b.mkdir(parents=True)
    source = inspection_set / "test" / "good" / "000.png"
    for folder in (a, b):
        (folder / "x.png").write_bytes(source.read_bytes())
    Image.open(source).convert("RGB").save(a / "x.jpg")
    code, _, err = run(capsys, "predict", model, a, b / "x.png", "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    overlays = sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir())
    assert overlays == ["a__x-2.png", "a__x.png", "b__x.png"]
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 3


@pytest.mark.parametrize("where", ["same", "inside"])
def test_predict_refuses_to_write_into_an_input_folder(capsys, model, inspection_set, tmp_path, where):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "x.png").write_bytes((inspection_set / "test" / "good" / "000.png").read_bytes())
    out = folder if where == "same" else folder / "results"
    code, _, err = run(capsys, "predict", model, folder, "--out", out)
    assert_error(code, err, str(out), "input")
    assert sorted(p.name for p in folder.iterdir()) == ["x.png"]


def test_predict_names_a_bad_file_and_skip_bad_skips_it(capsys, model, inspection_set, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "good.png").write_bytes((inspection_set / "test" / "good" / "000.png").read_bytes())
    (folder / "broken.png").write_bytes(b"this is not a png")
    code, _, err = run(capsys, "predict", model, folder, "--out", tmp_path / "out", "--quiet")
    assert_error(code, err, "broken.png", "--skip-bad")
    assert not (tmp_path / "out").exists()
    code, _, err = run(capsys, "predict", model, folder, "--out", tmp_path / "out", "--quiet", "--skip-bad")
    assert code == 0 and err.startswith("warning: ") and "broken.png" in err
    with open(tmp_path / "out" / "scores.csv") as handle:
        assert [r["path"] for r in csv.DictReader(handle)] == [str(folder / "good.png")]


def test_fit_skip_bad_skips_unreadable_training_files_and_counts_only_the_rest(capsys, inspection_set, tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for index, image in enumerate(sorted((inspection_set / "train" / "good").iterdir())[:4]):
        (folder / f"{index}.png").write_bytes(image.read_bytes())
    (folder / "broken.png").write_bytes(b"this is not a png")
    out_path = tmp_path / "m.oddity"
    code, _, err = run(capsys, "fit", "test-meandiff", "--data", folder, "--out", out_path, "--quiet")
    assert_error(code, err, "broken.png")
    assert not out_path.exists()
    code, out, err = run(capsys, "fit", "test-meandiff", "--data", folder, "--out", out_path, "--quiet",
                         "--skip-bad", "--image-size", "64")
    assert code == 0 and "broken.png" in err
    assert "fitted test-meandiff on 4 images" in out and "(1 unreadable file skipped)" in out


def test_missing_model_and_missing_input_are_errors(capsys, model, tmp_path):
    code, _, err = run(capsys, "predict", tmp_path / "none.oddity", model.parent, "--out", tmp_path / "o")
    assert_error(code, err, "none.oddity")
    code, _, err = run(capsys, "predict", model, tmp_path / "nope.png", "--out", tmp_path / "o")
    assert_error(code, err, "nope.png")
    (tmp_path / "fake.oddity").write_text("not a model")
    code, _, err = run(capsys, "eval", tmp_path / "fake.oddity", "--data", tmp_path)
    assert_error(code, err, "fake.oddity")


def test_eval_prints_table_and_writes_json_and_report(capsys, model, inspection_set, tmp_path):
    code, out, err = run(capsys, "eval", model, "--data", inspection_set, "--json", tmp_path / "m.json",
                         "--report", tmp_path / "report", "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == METRIC_KEYS and metrics["test_images"] == 10
    assert "image AUROC" in out and "AUPRO" in out and f"{metrics['image_auroc']:.4f}" in out
    assert "image F1-max" in out and f"{metrics['image_f1max']:.4f}" in out
    # The tiny set cannot reach AUPIMO's FPR range: n/a in the table, null in JSON, a note why.
    assert metrics["aupimo"] is None and "AUPIMO (mean, FPR 1e-5 to 1e-4)" in out
    assert "note: AUPIMO not computed" in out
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Heat maps" in page and "test-meandiff" in page
    for name in ("roc", "pro", "scores"):
        assert f"images/{name}.png" in page and (tmp_path / "report" / "images" / f"{name}.png").is_file()


def test_eval_reads_anti_aliased_masks_only_with_a_mask_threshold(capsys, model, inspection_set, tmp_path):
    import shutil

    data = tmp_path / "grey_masks"
    shutil.copytree(inspection_set, data)
    masks = sorted((data / "ground_truth").rglob("*.png"))
    for path in masks:  # soften one edge pixel per mask, as an anti-aliasing export does
        values = np.asarray(Image.open(path)).copy()
        rows, cols = np.nonzero(values)
        values[rows[0], max(cols[0] - 1, 0)] = 90
        Image.fromarray(values).save(path)
    code, _, err = run(capsys, "eval", model, "--data", data, "--quiet")
    assert_error(code, err, "not binary", "--mask-threshold")
    code, _, err = run(capsys, "eval", model, "--data", data, "--quiet", "--json", tmp_path / "grey.json",
                       "--mask-threshold", "0.5")
    assert code == 0, err
    code, _, err = run(capsys, "eval", model, "--data", inspection_set, "--quiet", "--json", tmp_path / "binary.json")
    assert code == 0, err
    grey, binary = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("grey", "binary"))
    assert grey["pixel_auroc"] == binary["pixel_auroc"] and grey["aupro"] == binary["aupro"]
    code, _, err = run(capsys, "eval", model, "--data", data, "--mask-threshold", "1.5")
    assert code == 2 and "(0, 1]" in err


def test_eval_refuses_report_inside_data(capsys, model, inspection_set):
    code, _, err = run(capsys, "eval", model, "--data", inspection_set, "--report", inspection_set / "report")
    assert_error(code, err, "report")
    assert not (inspection_set / "report").exists()


def test_ctrl_c_exits_130_and_leaves_no_output(capsys, model, inspection_set, tmp_path, monkeypatch):
    from oddity.image.kernel import ImageKernel

    original, countdown = ImageKernel.forward, [1]  # the first batch is interrupted

    def interrupted(self, x):
        countdown[0] -= 1
        if countdown[0] == 0:
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(ImageKernel, "forward", interrupted)
    code, _, err = run(capsys, "predict", model, inspection_set / "test", "--out", tmp_path / "out", "--quiet")
    assert code == 130 and len(err.strip().splitlines()) == 1 and "interrupted" in err
    countdown[0] = 1  # fit scores its held-out images last, after learning
    code, _, _ = run(capsys, "fit", "test-meandiff", "--data", inspection_set, "--out", tmp_path / "m.oddity", "--quiet")
    assert code == 130
    assert list(tmp_path.iterdir()) == []


def test_demo_runs_end_to_end(capsys, tmp_path):
    out = tmp_path / "demo"
    code, stdout, err = run(capsys, "demo", "--out", out, "--detector", "test-meandiff", "--quiet")
    assert code == 0, err
    for path in ("data/train/good", "data/ground_truth", "model.oddity", "predictions/scores.csv",
                 "metrics.json", "report/index.html"):
        assert (out / path).exists(), path
        assert str(out / path.split("/")[0]) in stdout or path.startswith("data/")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == METRIC_KEYS and metrics["aupro"] is not None
    assert "image AUROC" in stdout


needs_patchcore = pytest.mark.skipif("patchcore" not in oddity.list_detectors(), reason="patchcore not available")


@needs_patchcore
def test_demo_with_patchcore_detects_the_synthetic_defects(capsys, tmp_path):
    code, out, err = run(capsys, "demo", "--out", tmp_path / "demo", "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["image_auroc"] > 0.95 and metrics["pixel_auroc"] > 0.95 and metrics["aupro"] > 0.8
    assert "80 left-out images" in out  # each training image scored without its bank rows


@needs_patchcore
def test_patchcore_fit_predict_eval_with_backbone_and_set(capsys, inspection_set, tmp_path):
    model = tmp_path / "pc.oddity"
    code, _, err = run(capsys, "fit", "patchcore", "--data", inspection_set, "--out", model, "--image-size", "64",
                       "--backbone", "efficientnet_lite0", "--set", "coreset_ratio=0.05",
                       "--set", 'layers=["stage3", "stage5"]', "--quiet")
    assert code == 0, err
    params = oddity.load(model).get_params()
    assert params["coreset_ratio"] == 0.05 and list(params["layers"]) == ["stage3", "stage5"]
    code, _, err = run(capsys, "predict", model, inspection_set / "test", "--out", tmp_path / "pred", "--quiet")
    assert code == 0, err
    code, _, err = run(capsys, "eval", model, "--data", inspection_set, "--json", tmp_path / "m.json", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["image_auroc"] > 0.8


def test_console_script_exits_2_with_one_error_line(tmp_path):
    script = Path(sys.executable).with_name("oddity")
    if not script.exists():
        pytest.skip("oddity console script not installed in this environment")
    done = subprocess.run([script, "eval", str(tmp_path / "none.oddity"), "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "none.oddity" in done.stderr
