"""`oddity explain`: top SHAP contributors of an xgb_forecast model for a time range."""
import numpy as np
import pandas as pd

from oddity.cli import main


def write_pair(path, length: int = 800) -> None:
    """CSV with a time column, covariate x and y[t] = 2 x[t-2] + noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=length)
    y = np.zeros(length)
    y[2:] = 2 * x[:-2] + 0.1 * rng.normal(size=length - 2)
    times = pd.date_range("2024-01-01", periods=length, freq="h")
    pd.DataFrame({"timestamp": times, "x": x, "y": y}).to_csv(path, index=False)


def test_explain_prints_the_driver_and_plots(tmp_path, capsys):
    data, model, plot = tmp_path / "pair.csv", tmp_path / "m.oddity", tmp_path / "why.png"
    write_pair(data)
    assert main(["fit", "xgb_forecast", "--data", str(data), "--out", str(model), "--quiet",
                 "--set", 'targets=["y"]']) == 0
    capsys.readouterr()
    assert main(["explain", str(model), str(data), "--start", "2024-01-20", "--end",
                 "2024-01-25 12:00", "--top", "3", "--plot", str(plot)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("top 3 contributors to 'y' from 2024-01-20 00:00:00")
    assert lines[2].split()[:2] == ["y", "x[t-2]"]
    assert plot.stat().st_size > 10_000


def test_explain_refuses_models_without_explanations_and_bad_bounds(tmp_path, capsys):
    data, model = tmp_path / "pair.csv", tmp_path / "z.oddity"
    write_pair(data)
    assert main(["fit", "rolling_zscore", "--data", str(data), "--out", str(model), "--quiet"]) == 0
    assert main(["explain", str(model), str(data)]) == 2
    assert "has no SHAP explanations" in capsys.readouterr().err
    xgb_model = tmp_path / "x.oddity"
    assert main(["fit", "xgb_forecast", "--data", str(data), "--out", str(xgb_model), "--quiet"]) == 0
    assert main(["explain", str(xgb_model), str(data), "--start", "yesterday-ish"]) == 2
    assert "--start 'yesterday-ish' is not a timestamp" in capsys.readouterr().err
