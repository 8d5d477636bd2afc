"""Kill -9 the server in the middle of a load run, restart it: every answered request has
its row and intact files, every stored row has its files, and the store opens cleanly."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from oddity.bench.service import crash_run, free_port, start_server, verify_store


def _images(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def test_kill_9_during_load_loses_no_answered_inspection(model_file, make_client, predict, tmp_path):
    # the store make_client opens by default, so the restart below finds it
    url = f"sqlite:///{tmp_path / 'store' / 'inspections.sqlite'}"
    files, log = tmp_path / "store" / "files", tmp_path / "log"
    port = free_port()
    server = start_server([model_file], url, files, port, log=log)
    run = crash_run(server, port, "parts", _images(400), clients=8, kill_after=25)
    assert len(run.answers) >= 20, run.failures  # answers lag the stored count a little
    check = verify_store(url, files, run.answers)
    assert check.ok, check
    assert check.rows >= len(run.answers)
    # the store opens cleanly and a restarted service goes on where it stopped
    client, service = make_client()
    answer = predict(client, _images(1)[0])
    assert answer.status_code == 200 and answer.json()["results"][0]["id"] > max(a.id for a in run.answers)
    assert service.store.integrity_errors() == []

