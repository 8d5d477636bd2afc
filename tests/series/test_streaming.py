"""Streaming: `update` scores rows as they arrive, each step seeing only the past, the same
whatever the block sizes; `oddity predict --follow` streams a file or stdin."""
import io
import sys

import numpy as np
import pandas as pd
import pytest

import oddity
from oddity.cli import main
from oddity.core.errors import DataError


@pytest.mark.parametrize(("name", "params"), [
    ("rolling_zscore", {"window": 16}), ("window_iforest", {"window": 8, "n_estimators": 20}),
    ("cad_ose", {"rest_period": 10}), ("xgb_forecast", {"n_estimators": 20}), ("artime", {})])
def test_update_equals_scoring_the_whole_stream_whatever_the_blocks(name, params, injected,
                                                                     tmp_path):
    history, test, _ = injected
    detector = oddity.create(name, **params).fit(history)
    whole = detector.score(np.concatenate((history, test))).scores[len(history):]
    blocks = [detector.update(test[a:b]) for a, b in ((0, 1), (1, 2), (2, 300), (300, 1000))]
    assert np.array_equal(np.concatenate([b.scores for b in blocks]), whole)  # bit for bit
    flags = np.concatenate([b.labels for b in blocks])
    # The calibrator carried over: the same decisions as one online pass over the test rows.
    single = oddity.create(name, **params).fit(history)
    single.save(tmp_path / "m.oddity")
    one = single.update(test)
    assert np.array_equal(flags, one.labels)
    assert np.array_equal(np.concatenate([b.thresholds for b in blocks]), one.thresholds)
    # A model saved after fitting starts its stream right after the fitted history.
    assert np.array_equal(oddity.load(tmp_path / "m.oddity").update(test).scores, one.scores)


def test_predict_follow_streams_stdin(tmp_path, capsys, monkeypatch, injected):
    history, test, _ = injected
    times = pd.date_range("2024-01-01", periods=2000, freq="1min")
    pd.DataFrame({"time": times[:1000], "cpu": history[:, 0], "mem": history[:, 1]}).to_csv(
        tmp_path / "history.csv", index=False)
    assert main(["fit", "rolling_zscore", "--data", str(tmp_path / "history.csv"), "--set",
                 "window=16", "--out", str(tmp_path / "m.oddity"), "--quiet"]) == 0
    capsys.readouterr()
    lines = pd.DataFrame({"time": times[1000:1300], "cpu": test[:300, 0],
                          "mem": test[:300, 1]}).to_csv(index=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["predict", str(tmp_path / "m.oddity"), "-", "--follow"]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0] == "time,score,threshold,level,anomalous"
    rows = [line.split(",") for line in out[1:301]]
    assert rows[0][0] == str(times[1000]) and len(rows) == 300
    expected = oddity.load(tmp_path / "m.oddity").update(test[:300])
    np.testing.assert_allclose([float(r[1]) for r in rows], expected.scores, rtol=1e-6)
    assert [r[4] == "1" for r in rows] == expected.labels.tolist()
    assert len(out) == 301 and captured.err.startswith("300 steps: ")


def test_predict_follow_reads_a_file_until_idle_and_reports_bad_rows(tmp_path, capsys,
                                                                     injected):
    history, test, _ = injected
    model = oddity.create("rolling_zscore", window=16).fit(history[:, :1])
    model.save(tmp_path / "m.oddity")
    (tmp_path / "live.csv").write_text("step,channel_0\n" + "".join(f"{i},{v}\n" for i, v in
                                                         enumerate(test[:50, 0])))
    assert main(["predict", str(tmp_path / "m.oddity"), str(tmp_path / "live.csv"), "--follow",
                 "--idle", "0.3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 51
    (tmp_path / "bad.csv").write_text("step,channel_0\n1,2.0\n2,oops\n")
    assert main(["predict", str(tmp_path / "m.oddity"), str(tmp_path / "bad.csv"), "--follow",
                 "--idle", "0.3"]) == 2
    assert "bad.csv, line 3: a value of ['channel_0'] is not a number" in capsys.readouterr().err


def calendar_frame(length: int = 1600) -> pd.DataFrame:
    """Two channels with a daily pattern every 17 minutes: a model of it uses the hour."""
    rng = np.random.default_rng(3)
    times = pd.date_range("2024-01-01", periods=length, freq="17min")
    daily = np.sin(2 * np.pi * times.hour / 24)
    return pd.DataFrame({"x": daily + np.sin(np.arange(length) / 9) + 0.05 * rng.normal(size=length),
                         "y": np.cos(np.arange(length) / 7) + 0.05 * rng.normal(size=length)},
                        index=times)


@pytest.mark.parametrize("params", [{}, {"window": 1}, {"targets": ("x",)}])
def test_xgb_forecast_update_uses_each_rows_own_times(params, tmp_path):
    frame = calendar_frame()
    detector = oddity.create("xgb_forecast", n_estimators=30, **params).fit(frame.iloc[:1000],
                                                                           verbose=False)
    assert detector.uses_calendar_
    detector.save(tmp_path / "m.oddity")
    whole = detector.score(frame)
    blocks = [detector.update(frame.iloc[a:b]) for a, b in ((1000, 1001), (1001, 1300),
                                                            (1300, 1600))]
    assert np.array_equal(np.concatenate([b.scores for b in blocks]), whole.scores[1000:])
    assert np.array_equal(np.concatenate([b.channel_scores for b in blocks]),
                          whole.channel_scores[1000:])
    assert blocks[1].index.equals(frame.index[1001:1300])
    loaded = oddity.load(tmp_path / "m.oddity")
    assert np.array_equal(loaded.update(frame.iloc[1000:]).scores, whole.scores[1000:])
    with pytest.raises(DataError, match="DatetimeIndex"):
        loaded.update(frame.to_numpy()[:1])  # rows without times


def test_update_reads_rows_as_the_batch_path_does(injected):
    history, test, _ = injected
    detector = oddity.create("rolling_zscore", window=16).fit(history)
    rows = pd.DataFrame(test[:3], columns=["channel_0", "channel_1"], index=[7, 8, 9])
    assert detector.update(rows).index.tolist() == [7, 8, 9]
    assert detector.update(test[3:5].tolist()).index.tolist() == [0, 1]
    text = rows.astype(str)  # numbers as text are refused, never read as numbers
    with pytest.raises(DataError, match="not numeric"):
        detector.update(text)
    with pytest.warns(UserWarning, match="NaN"):  # a NaN is filled and reported, as by score
        filled = detector.update(np.array([[0.1, np.nan], [0.2, 0.3]]))
    assert np.isfinite(filled.scores).all()
    with pytest.raises(DataError, match="infinite"):
        detector.update(np.array([[0.1, np.inf]]))
    with pytest.raises(DataError, match="1-D"):
        detector.update(np.array(0.5))


def test_update_reads_columns_by_name_after_a_refit(injected):
    history, test, _ = injected
    frame = pd.DataFrame(np.concatenate((history, test)), columns=["cpu", "mem"])
    detector = oddity.create("rolling_zscore", window=16).fit(frame.iloc[:1000])
    detector.update(frame.iloc[1000:1001])
    swapped = frame[["mem", "cpu"]]
    detector.fit(swapped.iloc[:1000])  # the same columns, in the other order
    streamed = detector.update(frame.iloc[1000:1100])  # read by name, not by position
    assert np.array_equal(streamed.scores, detector.score(swapped).scores[1000:1100])
