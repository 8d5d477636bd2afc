"""A generated session log parsed into sequences, shared by the detector and CLI tests."""
from __future__ import annotations

import pytest

from oddity.logs.grouping import Grouping
from oddity.logs.parser import TemplateParser
from oddity.logs.parsing import LogSource, mine, sequences_of
from oddity.logs.synth import FORMAT, SESSION, write_session_log


@pytest.fixture(scope="session")
def session_log(tmp_path_factory):
    """(path, labels): 400 synthetic sessions, 10% anomalous."""
    path = tmp_path_factory.mktemp("logs") / "blocks.log"
    labels = write_session_log(path, 400, anomaly_rate=0.1, seed=1)
    return path, labels


@pytest.fixture(scope="session")
def session_sequences(session_log):
    """(train, test) sequences of the generated log: first 250 sessions, the rest."""
    path, labels = session_log
    source, parser = LogSource(format=FORMAT), TemplateParser()
    mine(path, source, parser)
    sequences, _ = sequences_of(path, source, parser, Grouping("session", session=SESSION), labels)
    return sequences.subset(range(250)), sequences.subset(range(250, len(sequences)))
