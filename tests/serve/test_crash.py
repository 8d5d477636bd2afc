"""Kill -9 the server in the middle of a load run, restart it: every answered request has
its row and intact files, every stored row has its files, and the store opens cleanly."""
from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image

from oddity.bench.service import free_port, load_run, start_server, stop_server, verify_store


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
    stop = threading.Event()
    result: dict = {}
    loader = threading.Thread(target=lambda: result.update(run=load_run(port, "parts", _images(400), 8, stop=stop)))
    try:
        loader.start()
        while loader.is_alive() and len(result.get("run", ())) == 0:
            loader.join(0.05)
            if server.poll() is not None:
                break
            # kill once the clients are well under way
            if _answered(port) >= 25:
                break
        stop_server(server, kill=True)
    finally:
        stop.set()
        loader.join(60)
        if server.poll() is None:
            server.kill()
    run = result["run"]
    assert len(run.answers) >= 25, run.failures
    check = verify_store(url, files, run.answers)
    assert check.ok, check
    assert check.rows >= len(run.answers)
    # the store opens cleanly and a restarted service goes on where it stopped
    client, service = make_client()
    answer = predict(client, _images(1)[0])
    assert answer.status_code == 200 and answer.json()["results"][0]["id"] > max(a.id for a in run.answers)
    assert service.store.integrity_errors() == []


def _answered(port: int) -> int:
    """Images stored so far, from the server's own metrics."""
    import httpx

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("oddity_labels_total{")))
