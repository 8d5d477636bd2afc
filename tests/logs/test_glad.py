"""GLAD on a generated log of events with field values: unusual event/field pairings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import oddity
from oddity.core.errors import ConfigError
from oddity.logs.detectors.glad import extract_fields
from oddity.logs.grouping import Grouping
from oddity.logs.parser import TemplateParser
from oddity.logs.parsing import LogSource, mine, sequences_of
from oddity.logs.synth import FIELD_FORMAT, FORMAT, SESSION, write_field_log
from oddity.metrics.classification import image_auroc

FAST = {"epochs": 6, "dim": 16, "end_event": False}  # windows cut from a stream


@pytest.fixture(scope="module")
def field_windows(tmp_path_factory):
    """(path, train, test): windows of 10 lines of a generated field log, lines labelled."""
    path = tmp_path_factory.mktemp("glad") / "fields.log"
    write_field_log(path, 3000, anomaly_rate=0.01, seed=3)
    source, parser = LogSource(format=FIELD_FORMAT, label_field="Label"), TemplateParser()
    mine(path, source, parser)
    sequences, _ = sequences_of(path, source, parser, Grouping("count", size=10), contents=True)
    return path, sequences.subset(range(200)), sequences.subset(range(200, len(sequences)))


def test_fields_are_typed_and_numbers_left_out():
    fields = extract_fields("wrote archive /var/backup/db.tar size=512 from 10.0.0.1 user=root at 12:00:01")
    assert fields == [("user", "root"), ("PATH", "/var/backup/db.tar"), ("ADDR", "10.0.0.1")]
    assert extract_fields("a b c d", max_fields=2) == []


def test_unusual_field_event_pairing_scores_above_normal_windows(field_windows, tmp_path):
    _, train, test = field_windows
    assert train.contents is not None and test.labels.sum() >= 3
    detector = oddity.create("glad", **FAST).fit(train, verbose=False)
    prediction = detector.predict(test)
    odd = test.labels.astype(bool)
    assert image_auroc(odd, prediction.scores) > 0.95
    assert prediction.scores[odd].min() > np.median(prediction.scores[~odd])
    assert prediction.labels[odd].mean() > 0.5 and prediction.labels[~odd].mean() < 0.1
    worst = int(np.argmax(prediction.scores))
    cron = "cron: ran job" in prediction.explanations[worst] and "/var/backup" in prediction.explanations[worst]
    backup = "wrote archive" in prediction.explanations[worst] and "/usr/bin" in prediction.explanations[worst]
    assert cron or backup
    path = tmp_path / "glad.oddity"
    detector.save(path)
    loaded = oddity.load(path)
    np.testing.assert_array_equal(loaded.score(test).scores, detector.score(test).scores)
    assert loaded.predict(test).explanations == prediction.explanations


def test_sessions_cut_short_or_failing_score_above_normal_ones(session_log):
    path, labels = session_log
    source, parser = LogSource(format=FORMAT), TemplateParser()
    mine(path, source, parser)
    sequences, _ = sequences_of(path, source, parser, Grouping("session", session=SESSION), labels, contents=True)
    train, test = sequences.subset(range(250)), sequences.subset(range(250, len(sequences)))
    detector = oddity.create("glad", epochs=6, dim=16).fit(train, verbose=False)  # END edges on
    # block ids occur in one session each: they share the "unseen" node and flag nothing
    assert detector.field_values_[detector.field_types_.index("BLK")] == ["<unseen>"]
    assert image_auroc(test.labels, detector.score(test).scores) > 0.95


def test_without_contents_only_template_edges_are_scored(field_windows):
    _, train, test = field_windows
    plain = train.subset(range(len(train)))
    plain.contents = None
    detector = oddity.create("glad", epochs=1, dim=16).fit(plain, verbose=False)  # with END edges
    assert detector.field_types_ == [] and len(detector.score(test).scores) == len(test)


@pytest.mark.parametrize("params", [{"folds": 1}, {"dim": 30, "heads": 4}, {"epochs": 0},
                                    {"unknown_noise": 1.5}, {"lr": -1.0}, {"top_edges": 2.5}])
def test_bad_parameters_are_refused(field_windows, params):
    _, train, _ = field_windows
    with pytest.raises(ConfigError):
        oddity.create("glad", **params).fit(train, verbose=False)


def test_glad_from_the_command_line(field_windows, tmp_path, capsys):
    from oddity.cli import main

    path, _, _ = field_windows
    model, out = tmp_path / "glad.oddity", tmp_path / "out"
    assert main(["fit", "glad", "--data", str(path), "--format", FIELD_FORMAT, "--label-field", "Label",
                 "--window", "10", "--set", "epochs=2", "--set", "dim=16", "--set", "end_event=false", "--out", str(model), "--quiet"]) == 0
    assert main(["predict", str(model), str(path), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "sequences.csv")
    assert len(frame) == 300 and frame["explanation"].str.contains(" -> ").all()
    assert main(["eval", str(model), "--data", str(path), "--format", FIELD_FORMAT, "--label-field", "Label",
                 "--window", "10", "--quiet"]) == 0
    assert "auroc" in capsys.readouterr().out
