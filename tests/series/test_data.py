"""Readers: CSV and Parquet, the gaps/NaN report, each bad-input error, the NAB layout."""
import numpy as np
import pandas as pd
import pytest

from oddity.core.errors import DataError
from oddity.series.data import read_nab, read_series, split_series


def _table(n=50):
    times = pd.date_range("2024-03-01", periods=n, freq="5min")
    return pd.DataFrame({"timestamp": times, "cpu": np.arange(n, dtype=float),
                         "mem": np.linspace(0, 1, n)})


def test_csv_and_parquet_give_the_same_frame(tmp_path):
    table = _table()
    table.to_csv(tmp_path / "s.csv", index=False)
    table.to_parquet(tmp_path / "s.parquet", index=False)
    from_csv, report = read_series(tmp_path / "s.csv")
    from_parquet, _ = read_series(tmp_path / "s.parquet")
    assert report.time_column == "timestamp" and report.notes == []
    assert report.median_step == pd.Timedelta("5min")
    assert isinstance(from_csv.index, pd.DatetimeIndex) and list(from_csv.columns) == ["cpu", "mem"]
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_freq=False)
    table.set_index("timestamp").to_parquet(tmp_path / "indexed.parquet")
    from_index, _ = read_series(tmp_path / "indexed.parquet")
    pd.testing.assert_frame_equal(from_index, from_csv, check_freq=False)
    only_cpu, _ = read_series(tmp_path / "s.csv", value_columns=["cpu"])
    assert list(only_cpu.columns) == ["cpu"]


def test_time_column_detected_by_content_or_absent(tmp_path):
    table = _table().rename(columns={"timestamp": "when"})
    table["when"] = table["when"].astype(str)
    table.to_csv(tmp_path / "s.csv", index=False)
    frame, report = read_series(tmp_path / "s.csv")
    assert report.time_column == "when" and isinstance(frame.index, pd.DatetimeIndex)
    table.drop(columns="when").to_csv(tmp_path / "n.csv", index=False)
    frame, report = read_series(tmp_path / "n.csv")
    assert report.time_column is None and isinstance(frame.index, pd.RangeIndex)


def test_nan_gaps_order_and_duplicates_are_reported(tmp_path):
    table = _table(60)
    table.loc[[10, 11, 12], "cpu"] = np.nan
    table = table.drop(index=range(30, 45))  # one gap of 16 steps
    table = pd.concat([table.iloc[5:], table.iloc[:5], table.iloc[[0]]])  # unsorted + duplicate
    table.to_csv(tmp_path / "s.csv", index=False)
    frame, report = read_series(tmp_path / "s.csv")
    assert report.filled == {"cpu": 3}
    np.testing.assert_allclose(frame["cpu"].iloc[10:13], [10, 11, 12])  # linear in time
    assert len(report.gaps) == 1 and report.gaps[0][0] == pd.Timestamp("2024-03-01 02:25")
    text = " | ".join(report.notes)
    for expected in ("sorted by time", "1 rows with a repeated timestamp", "3 NaN in column 'cpu'",
                     "1 gaps longer than 5x the median step"):
        assert expected in text
    regular, report = read_series(tmp_path / "s.csv", resample=True)
    assert len(regular) == 60 and (np.diff(regular.index) == np.timedelta64(5, "m")).all()
    np.testing.assert_allclose(regular["cpu"], np.arange(60.0))


@pytest.mark.parametrize(("content", "message"), [
    ("timestamp,value\n2024-01-01,1\nyesterday-ish,2\n2024-01-03,3\n",
     r"s.csv: column 'timestamp', row 2: cannot parse 'yesterday-ish'"),
    ("timestamp,value\n2024-01-01,1\n2024-01-02,high\n2024-01-03,3\n",
     r"s.csv: column 'value' is not numeric \(row 2: 'high'\)"),
    ("timestamp,value\n2024-01-01,1\n", r"s.csv: 1 rows; at least 2 are needed"),
    ("timestamp\n2024-01-01\n2024-01-02\n", r"s.csv: no value column"),
    ("timestamp,value\n2024-01-01,\n2024-01-02,\n", r"s.csv: column 'value' has no numeric value"),
])
def test_bad_input_errors_name_file_and_column(tmp_path, content, message):
    (tmp_path / "s.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        read_series(tmp_path / "s.csv")


def test_missing_columns_and_files(tmp_path):
    _table().to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match="no column 'disk'"):
        read_series(tmp_path / "s.csv", value_columns=["disk"])
    with pytest.raises(DataError, match="no time column 'ts'"):
        read_series(tmp_path / "s.csv", time_column="ts")
    with pytest.raises(DataError, match="no such file"):
        read_series(tmp_path / "absent.csv")


def test_read_nab(nab_root):
    series = read_nab(nab_root)
    assert [s.name for s in series] == ["artificialNoAnomaly/flat.csv", "realTest/s0.csv",
                                        "realTest/s1.csv"]
    s0 = series[1]
    assert s0.group == "realTest" and s0.probationary == 60 and len(s0.history) == 60
    assert s0.labels.sum() == 14 and s0.labels[280 - 5] and not s0.labels[280 - 6]
    assert not series[0].labels.any()


def test_read_nab_errors(tmp_path, nab_root):
    with pytest.raises(DataError, match="not a NAB folder"):
        read_nab(tmp_path / "empty")
    (nab_root / "labels" / "combined_windows.json").write_text("{}")
    with pytest.raises(DataError, match="no entry for artificialNoAnomaly/flat.csv"):
        read_nab(nab_root)


def test_split_series_keeps_time_order():
    frame = pd.DataFrame({"value": np.arange(10.0)})
    head, tail = split_series(frame, 0.15)
    assert list(head["value"]) == [0.0] and list(tail["value"]) == list(np.arange(1.0, 10.0))
