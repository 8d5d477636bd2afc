"""`oddity fit/predict/eval` with series detectors, on generated files and a tiny NAB folder."""
import json

import numpy as np
import pandas as pd
from PIL import Image

import oddity
from oddity.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_predict_writes_scores_ranges_and_plot(tmp_path, capsys, injected):
    history, test, labels = injected
    times = pd.date_range("2024-01-01", periods=1000, freq="1min")
    for name, values in (("history", history), ("test", test)):
        table = pd.DataFrame({"time": times, "cpu": values[:, 0], "mem": values[:, 1],
                              "host": "a"})
        table.loc[5, "cpu"] = np.nan
        table.to_csv(tmp_path / f"{name}.csv", index=False)
    code, out, err = run(capsys, "fit", "window_iforest", "--data", tmp_path / "history.csv",
                         "--value-columns", "cpu", "mem", "--set", "window=8", "--seed", 1,
                         "--out", tmp_path / "m.oddity", "--quiet")
    assert code == 0, err
    assert "1 NaN in column 'cpu'" in out and "threshold:" in out
    model = oddity.load(tmp_path / "m.oddity")
    assert model.columns_ == ["cpu", "mem"] and model.window == 8 and model.seed == 1
    code, out, err = run(capsys, "predict", tmp_path / "m.oddity", tmp_path / "test.csv",
                         "--out", tmp_path / "pred")
    assert code == 0, err
    scores = pd.read_csv(tmp_path / "pred" / "scores.csv", parse_dates=["time"])
    assert list(scores.columns) == ["time", "cpu", "mem", "score", "threshold", "level",
                                    "anomalous"]
    assert (scores["anomalous"] == (scores["score"] > scores["threshold"])).all()
    assert scores["anomalous"][labels].mean() >= 0.5 and scores["anomalous"][~labels].mean() < 0.05
    ranges = pd.read_csv(tmp_path / "pred" / "ranges.csv", parse_dates=["start", "end"])
    assert ranges["steps"].sum() == scores["anomalous"].sum()
    assert ((ranges["start"] >= times[200]) & (ranges["start"] <= times[203])).any()
    with Image.open(tmp_path / "pred" / "plot.png") as plot:
        assert plot.width > 500


def test_eval_on_nab_folder(tmp_path, capsys, nab_root):
    model = tmp_path / "m.oddity"
    # These series are too short (60-step histories) for online calibration to settle.
    assert run(capsys, "fit", "rolling_zscore", "--data", nab_root / "data/realTest/s0.csv",
               "--set", "window=16", "--set", "calibration=fixed", "--out", model,
               "--quiet")[0] == 0
    code, out, err = run(capsys, "eval", model, "--data", nab_root, "--json", tmp_path / "m.json",
                         "--quiet")
    assert code == 0, err
    assert "realTest" in out and "artificialNoAnomaly" in out
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["params"]["window"] == 16
    real = result["groups"]["realTest"]
    # the 4 spike steps of each 14-step window stand out; a point detector leaves the rest
    # of the window at normal scores, hence the modest AUROC but a found event
    assert real["series"] == 2 and real["point_auroc"] > 0.6 and real["event_f1"] >= 0.5
    assert real["pa_f1"] > 0.6 and real["fpr"] < 0.1 and real["vus_pr"] > real["point_aupr"]
    assert 0 < real["range_f1"] <= 1
    assert result["groups"]["artificialNoAnomaly"]["pate"] is None
    assert "NAB's protocol" in out and "at the calibrated threshold" in out and "realised FPR" in out
    assert set(result["nab"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert all(score <= 100 for score in result["nab"].values())


def test_series_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("timestamp,value\n2024-01-01,1\n2024-01-02,x\n")
    code, _, err = run(capsys, "fit", "rolling_zscore", "--data", tmp_path / "bad.csv",
                       "--out", tmp_path / "m.oddity")
    assert code == 2 and err.startswith("error: ") and "column 'value' is not numeric" in err
    (tmp_path / "short.csv").write_text("value\n" + "1\n" * 10)
    code, _, err = run(capsys, "fit", "rolling_zscore", "--data", tmp_path / "short.csv",
                       "--out", tmp_path / "m.oddity")
    assert code == 2 and "short.csv: 10 steps, shorter than the 65 steps" in err
    code, _, err = run(capsys, "fit", "rolling_zscore", "--data", tmp_path / "bad.csv",
                       "--image-size", 64, "--out", tmp_path / "m.oddity")
    assert code == 2 and "no parameter 'image_size'" in err
