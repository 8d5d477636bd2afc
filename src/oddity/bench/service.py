"""Service load and crash runs: start `oddity serve` in a child process, drive it with
concurrent loopback clients, kill it, and check the store against what was answered.

Used by `benchmarks/run_service.py` and the crash test. A request counts as answered only
when a `200` came back; the check then asks, for every answered image, that its row exists
with the hash of the bytes sent, and that its image and map files are on disk and match
their hashes (`verify_store`). Rows that were committed but whose answer was lost in the kill
are allowed (the client never learned of them); answered-but-missing rows are not.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import httpx
from PIL import Image

from oddity.serve.files import FileStore
from oddity.serve.settings import ServiceSettings
from oddity.serve.store import InspectionQuery, InspectionStore


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(models: Sequence[str], store_url: str, files: str | os.PathLike, port: int,
                 extra: Sequence[str] = (), log: str | os.PathLike | None = None,
                 timeout_s: float = 180.0) -> subprocess.Popen:
    """Run `oddity serve` on 127.0.0.1:`port` in a child process and wait until it is ready.

    Parameters
    ----------
    models : sequence of str
        Model files or folders to serve.
    store_url : str
        Database URL (`--store`).
    files : str or os.PathLike
        Folder of the file store (`--files`).
    port : int
        Loopback port to bind.
    extra : sequence of str, default ()
        More `oddity serve` options.
    log : str or os.PathLike, optional
        File the server's output is appended to (discarded when None).
    timeout_s : float, default 180.0
        Longest wait for `/v2/health/ready` to answer 200.

    Returns
    -------
    subprocess.Popen
        The running server.

    Raises
    ------
    RuntimeError
        If the server exits or is not ready within `timeout_s` (its log is in the message).
    """
    command = [sys.executable, "-c", "import sys; from oddity.cli import main; sys.exit(main())",
               "serve", *map(str, models), "--store", store_url, "--files", str(files),
               "--port", str(port), *extra]
    output = open(log, "ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oddity serve exited with {process.returncode}"
                               + (f"; log: {Path(log).read_text()[-2000:]}" if log else ""))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise RuntimeError(f"oddity serve not ready after {timeout_s:.0f} s")


def stop_server(process: subprocess.Popen, kill: bool = False) -> None:
    """SIGTERM (graceful) or SIGKILL the server and wait for it.

    Parameters
    ----------
    process : subprocess.Popen
        The server (`start_server`); nothing is sent if it has exited.
    kill : bool, default False
        SIGKILL instead of SIGTERM.

    Raises
    ------
    subprocess.TimeoutExpired
        If it has not exited 60 s later.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    process.wait(timeout=60)


def stored_count(port: int) -> int:
    """Images the server has stored so far, read from its own metrics (0 if it does not answer).

    Parameters
    ----------
    port : int
        The server's loopback port.

    Returns
    -------
    int
        The sum of its `oddity_labels_total` counters.
    """
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("oddity_labels_total{")))


@dataclass(frozen=True)
class Answer:
    """One answered request: the inspection id and the sha256 of the image sent."""

    id: int
    image_sha256: str
    seconds: float


@dataclass
class LoadRun:
    """What a load run saw."""

    answers: list[Answer] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        """Requests sent: answered and failed."""
        return len(self.answers) + sum(self.failures.values())


def load_run(port: int, model: str, images: Sequence[bytes], clients: int, *,
             stop: threading.Event | None = None, api_key: str | None = None,
             timeout_s: float = 120.0) -> LoadRun:
    """Post each image once (one image per request) from concurrent clients on loopback.

    Stop early when `stop` is set. Each request that was not answered 200 counts
    under its status or the exception's class name.

    Parameters
    ----------
    port : int
        The server's loopback port.
    model : str
        Name of the served image model.
    images : sequence of bytes
        Image files to post, each once.
    clients : int
        Concurrent clients.
    stop : threading.Event, optional
        Set to stop the clients before their next request.
    api_key : str, optional
        Sent as `X-API-Key`.
    timeout_s : float, default 120.0
        Timeout of each request.

    Returns
    -------
    LoadRun
        The answers, failures by outcome and wall time.
    """
    run = LoadRun()
    lock = threading.Lock()
    queue: Iterator[tuple[int, bytes]] = iter(enumerate(images))
    url = f"http://127.0.0.1:{port}/v1/models/{model}:predict"
    headers = {"X-API-Key": api_key} if api_key else {}

    def client() -> None:
        with httpx.Client(timeout=timeout_s, headers=headers) as session:
            while not (stop is not None and stop.is_set()):
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                index, data = item
                start = time.perf_counter()
                try:
                    response = session.post(url, files=[("images", (f"{index}.png", data, "image/png"))])
                    outcome = str(response.status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                seconds = time.perf_counter() - start
                with lock:
                    if outcome == "200":
                        result = response.json()["results"][0]
                        run.answers.append(Answer(result["id"], hashlib.sha256(data).hexdigest(), seconds))
                    else:
                        run.failures[outcome] = run.failures.get(outcome, 0) + 1

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    run.wall_s = time.perf_counter() - start
    return run


def crash_run(process: subprocess.Popen, port: int, model: str, images: Sequence[bytes], clients: int,
              kill_after: int) -> LoadRun:
    """A load run during which the server is killed with SIGKILL; what the clients saw.

    The kill comes once the server has stored `kill_after` images (or when the load ends first).

    Parameters
    ----------
    process : subprocess.Popen
        The server (`start_server`).
    port : int
        Its loopback port.
    model : str
        Name of the served image model.
    images : sequence of bytes
        Image files to post, each once.
    clients : int
        Concurrent clients.
    kill_after : int
        Stored images (`stored_count`) at which the server is killed.

    Returns
    -------
    LoadRun
    """
    stop = threading.Event()
    result: dict[str, LoadRun] = {}
    loader = threading.Thread(target=lambda: result.update(run=load_run(port, model, images, clients, stop=stop)))
    loader.start()
    try:
        while loader.is_alive() and process.poll() is None and stored_count(port) < kill_after:
            time.sleep(0.1)
        stop_server(process, kill=True)
    finally:
        stop.set()
        loader.join()
        if process.poll() is None:
            process.kill()
    return result["run"]


@dataclass(frozen=True)
class StoreCheck:
    """The store checked against the answers: all lists empty means nothing was lost."""

    rows: int
    missing_rows: list[int]
    wrong_rows: list[int]
    bad_files: list[int]
    integrity_errors: list[str]

    @property
    def ok(self) -> bool:
        """Whether nothing was lost or damaged."""
        return not (self.missing_rows or self.wrong_rows or self.bad_files or self.integrity_errors)


def verify_store(store_url: str, files: str | os.PathLike, answers: Sequence[Answer]) -> StoreCheck:
    """Check every answered inspection and every stored row (see module docstring).

    Parameters
    ----------
    store_url : str
        Database URL of the killed server's store.
    files : str or os.PathLike
        Folder of its file store.
    answers : sequence of Answer
        What the clients were answered.

    Returns
    -------
    StoreCheck

    Raises
    ------
    ConfigError
        If the database cannot be opened.
    """
    store, file_store = InspectionStore.open(store_url), FileStore(files)
    try:
        rows, cursor = [], None
        while True:
            page, cursor = store.search(InspectionQuery(limit=500, cursor=cursor))
            rows += page
            if cursor is None:
                break
        by_id = {row["id"]: row for row in rows}
        missing = [a.id for a in answers if a.id not in by_id]
        wrong = [a.id for a in answers if a.id in by_id and by_id[a.id]["image_sha256"] != a.image_sha256]
        bad_files = [row["id"] for row in rows
                     if not file_store.has(row["image_sha256"])
                     or (row["map_sha256"] is not None and not file_store.has(row["map_sha256"]))]
        return StoreCheck(len(rows), missing, wrong, bad_files, store.integrity_errors())
    finally:
        store.close()


def png_bytes(size: tuple[int, int], mode: str = "RGB") -> bytes:
    """A blank PNG of `size`; mode "1" makes huge images in a few kilobytes.

    Parameters
    ----------
    size : tuple of (int, int)
        Width and height.
    mode : str, default "RGB"
        PIL image mode.

    Returns
    -------
    bytes
        The PNG file.
    """
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class BadRequest:
    """A request the service must refuse: what it is, keyword arguments of
    `httpx.Client.request` (a header set to None is left out), and the expected status."""

    what: str
    request: dict
    status: int


def bad_requests(good: bytes, model: str, settings: ServiceSettings) -> list[BadRequest]:
    """The bad-input list for a service with these limits and an API key set.

    `good` is a valid image of `model`, for requests that are bad for another reason.

    Parameters
    ----------
    good : bytes
        A valid image file for `model`.
    model : str
        Name of the served image model.
    settings : ServiceSettings
        The service's limits (upload size, pixels, images per request).

    Returns
    -------
    list of BadRequest
        Each with the status the service must answer.
    """
    predict = f"/v1/models/{model}:predict"
    infer = f"/v2/models/{model}/infer"

    def files(name: str, content: bytes, **extra) -> dict:
        return {"method": "POST", "url": predict, "files": [("images", (name, content, "image/png"))], **extra}

    def tensor(data: list, **extra) -> dict:
        return {"method": "POST", "url": infer, "json": {"inputs": [{"name": "images", "shape": [2, 2, 3],
                                                                      "datatype": "UINT8", "data": data}], **extra}}

    side = math.isqrt(settings.max_pixels) + 1
    listing = "/v1/inspections"
    cases = [
        ("corrupt image", files("x.png", good[: len(good) // 2]), 422),
        ("png signature, garbage after", files("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100), 422),
        ("text named .png", files("x.png", b"hello, I am text"), 415),
        ("html sent as image/png", files("evil.png", b"<html><script>alert(1)</script>"), 415),
        ("empty file", files("x.png", b""), 422),
        ("oversize body", files("big.png", good + b"\x00" * settings.max_upload_bytes), 413),
        ("decompression bomb", files("bomb.png", png_bytes((max(side, 12_000),) * 2, "1")), 413),
        ("too many pixels", files("wide.png", png_bytes((side, side), "1")), 413),
        ("too many images", {"method": "POST", "url": predict, "files": [
            ("images", (f"{i}.png", good, "image/png")) for i in range(settings.max_images + 1)]}, 400),
        ("no images", {"method": "POST", "url": predict, "data": {"threshold": "1"}}, 415),
        ("json instead of multipart", {"method": "POST", "url": predict, "json": {"images": []}}, 415),
        ("unknown form field", files("x.png", good, data={"path": "/etc/passwd"}), 422),
        ("path in a UI file name", {"method": "GET", "url": "/ui/..%2f..%2fetc%2fpasswd"}, 404),
        ("missing key", files("x.png", good, headers={"X-API-Key": None}), 401),
        ("wrong key", files("x.png", good, headers={"X-API-Key": "nope"}), 403),
        ("unknown model", {"method": "POST", "url": "/v1/models/nope:predict",
                           "files": [("images", ("x.png", good, "image/png"))]}, 404),
        ("unknown model, v2", {"method": "GET", "url": "/v2/models/nope"}, 404),
        ("bad threshold: text", files("x.png", good, data={"threshold": "high"}), 422),
        ("bad threshold: nan", files("x.png", good, data={"threshold": "nan"}), 422),
        ("bad threshold: inf", files("x.png", good, data={"threshold": "-inf"}), 422),
        ("bad threshold, v2", tensor([0] * 12, parameters={"threshold": "x"}), 422),
        ("bad tensor shape", tensor([0] * 5), 422),
        ("tensor out of range", tensor([300] * 12), 422),
        ("infer body not json", {"method": "POST", "url": infer, "content": b"\x00{"}, 422),
        ("bad target fpr", {"method": "POST", "url": f"/v1/models/{model}/threshold:recalibrate",
                            "json": {"target_fpr": 2}}, 422),
        ("sql in a verdict", {"method": "POST", "url": "/v1/inspections/1/verdict",
                              "json": {"verdict": "false_alarm'; DROP TABLE inspections;--", "who": "x"}}, 422),
        ("sql in an inspection id", {"method": "GET", "url": "/v1/inspections/1%20OR%201=1"}, 422),
        ("negative inspection id", {"method": "GET", "url": "/v1/inspections/-1"}, 422),
        ("sql in the model filter", {"method": "GET", "url": listing, "params": {"model": "x' OR '1'='1"}}, 422),
        ("sql in the label filter", {"method": "GET", "url": listing,
                                     "params": {"label": "anomalous' OR 1=1 --"}}, 422),
        ("sql in the verdict filter", {"method": "GET", "url": listing,
                                       "params": {"verdict": "none; DROP TABLE inspections"}}, 422),
        ("sql in the since filter", {"method": "GET", "url": listing,
                                     "params": {"since": "2020-01-01'; DELETE FROM inspections;--"}}, 422),
        ("sql in the cursor", {"method": "GET", "url": listing, "params": {"cursor": "1 OR 1=1"}}, 422),
        ("limit too large", {"method": "GET", "url": listing, "params": {"limit": 100000}}, 422),
        ("unknown route", {"method": "GET", "url": "/v1/files/etc/passwd"}, 404),
        ("wrong method", {"method": "DELETE", "url": listing}, 405),
    ]
    return [BadRequest(what, request, status) for what, request, status in cases]


def send(client: httpx.Client, bad: BadRequest, api_key: str) -> httpx.Response:
    """Send a bad request with the API key unless the request overrides the header.

    Parameters
    ----------
    client : httpx.Client
        Client with the server's base URL.
    bad : BadRequest
        The request; a header it sets to None is left out.
    api_key : str
        The service's key.

    Returns
    -------
    httpx.Response
    """
    request = dict(bad.request)
    headers = {k: v for k, v in {"X-API-Key": api_key, **request.pop("headers", {})}.items() if v is not None}
    return client.request(**request, headers=headers)
