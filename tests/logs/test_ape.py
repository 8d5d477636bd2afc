"""APE on generated categorical events: users keep to their own hosts and processes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import oddity
from oddity.core.errors import DataError
from oddity.logs.data import read_event_table
from oddity.metrics.classification import image_auroc


def _events(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 12, n)
    return pd.DataFrame({"user": [f"u{u}" for u in user],
                         "host": [f"h{u % 4}{rng.integers(2)}" for u in user],
                         "process": [f"p{u % 3}" for u in user]})


def test_ape_flags_unusual_entity_combinations_and_explains_them(tmp_path):
    detector = oddity.create("ape", epochs=8, seed=0).fit(_events(800, 0), verbose=False)
    test = _events(200, 1)
    odd = test.index[::10]
    test.loc[odd, "host"] = [f"h{(int(u[1:]) % 4 + 2) % 4}0" for u in test.loc[odd, "user"]]
    labels = np.isin(test.index, odd)
    prediction = detector.predict(test)
    assert image_auroc(labels, prediction.scores) > 0.9
    assert prediction.labels[labels].mean() > 0.5 and prediction.labels[~labels].mean() < 0.1
    worst = detector.explain(test.loc[odd[:1]], top=1)[0][0]
    assert "host" in (worst[0], worst[2])
    path = tmp_path / "ape.oddity"
    detector.save(path)
    np.testing.assert_allclose(oddity.load(path).score(test), prediction.scores, rtol=1e-6)


def test_event_table_reader_and_errors(tmp_path):
    path = tmp_path / "events.csv"
    _events(60, 2).to_csv(path, index=False)
    table = read_event_table(path, columns=["user", "host"])
    assert list(table.columns) == ["user", "host"] and len(table) == 60
    with pytest.raises(DataError, match="no column"):
        read_event_table(path, columns=["port"])
    with pytest.raises(DataError, match="at least two entity columns"):
        oddity.create("ape").fit(table[["user"]])
    detector = oddity.create("ape", epochs=1).fit(table, verbose=False)
    with pytest.raises(DataError, match="lack the entity columns"):
        detector.score(table[["user"]])


def test_ape_from_the_command_line(tmp_path, capsys):
    from oddity.cli import main

    train, new = tmp_path / "train.csv", tmp_path / "new.csv"
    _events(600, 0).assign(tag="-").to_csv(train, index=False)
    _events(30, 1).to_csv(new, index=False)
    assert main(["fit", "ape", "--data", str(train), "--label-field", "tag", "--set", "epochs=3",
                 "--out", str(tmp_path / "ape.oddity"), "--quiet"]) == 0
    assert main(["predict", str(tmp_path / "ape.oddity"), str(new), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "out" / "events.csv")
    assert len(frame) == 30 and {"score", "anomalous", "least_compatible"} <= set(frame.columns)
    assert "fitted ape on 600 events (user, host, process)" in capsys.readouterr().out
    labelled = _events(100, 3)
    labelled.loc[::10, "host"] = "h99"
    labelled.assign(tag=["alert" if k % 10 == 0 else "-" for k in range(100)]).to_csv(new, index=False)
    assert main(["eval", str(tmp_path / "ape.oddity"), "--data", str(new), "--label-field", "tag", "--quiet"]) == 0
    assert "auroc" in capsys.readouterr().out
