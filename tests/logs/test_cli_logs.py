"""The logs side of the `oddity` command, end to end on a generated log."""
from __future__ import annotations

import csv

import pandas as pd

from oddity.cli import main
from oddity.logs.synth import FORMAT, write_session_log


def test_parse_writes_templates_and_line_ids(session_log, tmp_path, capsys):
    path, _ = session_log
    out, lines = tmp_path / "templates.csv", tmp_path / "lines.csv"
    assert main(["parse", str(path), "--format", FORMAT, "--out", str(out), "--lines", str(lines), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6  # five normal events and the exception
    assert any(r["template"] == "Receiving block <BLK> src: /<ADDR> dest: /<ADDR>" for r in rows)
    assert sum(int(r["lines"]) for r in rows) == sum(1 for _ in path.open())
    assert len(pd.read_csv(lines)) == sum(int(r["lines"]) for r in rows)
    assert "lines/s" in capsys.readouterr().out


def test_fit_predict_eval_on_a_session_log(session_log, tmp_path, capsys):
    path, labels = session_log
    model, out = tmp_path / "m.oddity", tmp_path / "pred"
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("BlockId,Label\n" + "".join(f"{k},{'Anomaly' if v else 'Normal'}\n"
                                                      for k, v in labels.items()))
    assert main(["fit", "pca_logs", "--data", str(path), "--format", FORMAT, "--session", r"blk_-?\d+",
                 "--labels", str(labels_csv), "--out", str(model), "--quiet"]) == 0
    new = tmp_path / "new.log"
    new_labels = write_session_log(new, 60, anomaly_rate=0.2, seed=5)
    with new.open("a") as handle:  # a message never seen at fit time
        handle.write("081109 235959 1 ERROR dfs.DataNode: Disk quota exceeded for blk_77\n")
    new_labels["blk_77"] = 1
    assert main(["predict", str(model), str(new), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "sequences.csv")
    assert len(frame) == 61 and {"id", "score", "anomalous"} <= set(frame.columns)
    flagged = set(frame.loc[frame["anomalous"], "id"])
    assert flagged and sum(new_labels[i] for i in flagged) / len(flagged) > 0.8
    templates = pd.read_csv(out / "templates.csv")
    assert not templates.loc[templates["template"] == "<unseen>", "in_model"].any()
    assert (out / "timeline.png").stat().st_size > 0
    assert "1 lines matched no template of the model (1 new templates)" in capsys.readouterr().out
    assert frame.set_index("id").loc["blk_77", "anomalous"]
    new_labels_csv = tmp_path / "new_labels.csv"
    new_labels_csv.write_text("BlockId,Label\n" + "".join(f"{k},{v}\n" for k, v in new_labels.items()))
    assert main(["eval", str(model), "--data", str(new), "--labels", str(new_labels_csv),
                 "--json", str(tmp_path / "m.json"), "--quiet"]) == 0
    assert "auroc" in capsys.readouterr().out


def test_cli_errors_are_one_line(session_log, tmp_path, capsys):
    path, _ = session_log
    assert main(["parse", str(path), "--format", r"\[<Time>\] <Content>", "--out", str(tmp_path / "t.csv"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fits none of the lines; line 1 is" in err
    assert main(["fit", "deeplog", "--data", str(path), "--format", FORMAT, "--session", "nomatch_\\d+",
                 "--out", str(tmp_path / "m.oddity"), "--quiet"]) == 2
    assert "names no session in any line" in capsys.readouterr().err
    assert main(["fit", "deeplog", "--data", str(path), "--format", FORMAT,
                 "--out", str(tmp_path / "m.oddity"), "--quiet"]) == 2
    assert "--session REGEX" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "m.oddity").exists()
