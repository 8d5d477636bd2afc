"""Every kind of bad request gets the right 4xx with a JSON error, and the service stays
healthy after all of them: it still scores and its store is intact."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sqlalchemy import func, select

from oddity.serve.schema import inspections
from oddity.serve.store import InspectionQuery


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def _bad_requests(good: bytes) -> list[tuple[str, dict, int]]:
    """(what, request keywords for TestClient.request, expected status)."""
    files = lambda name, data, kind="image/png": {"files": [("images", (name, data, kind))]}  # noqa: E731
    predict = ("POST", "/v1/models/parts:predict")
    bomb = _png((12_000, 12_000), "1")  # 144 megapixels in a few kilobytes
    return [
        ("corrupt image", {"method": predict[0], "url": predict[1], **files("x.png", good[: len(good) // 2])}, 422),
        ("png signature, garbage after", {"method": predict[0], "url": predict[1],
                                           **files("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)}, 422),
        ("text named .png", {"method": predict[0], "url": predict[1], **files("x.png", b"hello, I am text")}, 415),
        ("html sent as image/png", {"method": predict[0], "url": predict[1],
                                    **files("evil.png", b"<html><script>alert(1)</script>")}, 415),
        ("empty file", {"method": predict[0], "url": predict[1], **files("x.png", b"")}, 422),
        ("oversize body", {"method": predict[0], "url": predict[1], **files("big.png", good + b"\x00" * 300_000)}, 413),
        ("decompression bomb", {"method": predict[0], "url": predict[1], **files("bomb.png", bomb)}, 413),
        ("too many pixels", {"method": predict[0], "url": predict[1], **files("wide.png", _png((1100, 1000)))}, 413),
        ("too many images", {"method": predict[0], "url": predict[1],
                             "files": [("images", (f"{i}.png", good, "image/png")) for i in range(5)]}, 400),
        ("no images", {"method": predict[0], "url": predict[1], "data": {"threshold": "1"}}, 415),
        ("json instead of multipart", {"method": predict[0], "url": predict[1], "json": {"images": []}}, 415),
        ("unknown form field", {"method": predict[0], "url": predict[1], "data": {"path": "/etc/passwd"},
                                **files("x.png", good)}, 422),
        ("path traversal as file name is only a name", {"method": "GET", "url": "/ui/..%2f..%2fetc%2fpasswd"}, 404),
        ("missing key", {"method": predict[0], "url": predict[1], "headers": {"X-API-Key": None},
                         **files("x.png", good)}, 401),
        ("wrong key", {"method": predict[0], "url": predict[1], "headers": {"X-API-Key": "nope"},
                       **files("x.png", good)}, 403),
        ("unknown model", {"method": "POST", "url": "/v1/models/nope:predict", **files("x.png", good)}, 404),
        ("unknown model, v2", {"method": "GET", "url": "/v2/models/nope"}, 404),
        ("bad threshold: text", {"method": predict[0], "url": predict[1], "data": {"threshold": "high"},
                                 **files("x.png", good)}, 422),
        ("bad threshold: nan", {"method": predict[0], "url": predict[1], "data": {"threshold": "nan"},
                                **files("x.png", good)}, 422),
        ("bad threshold: inf", {"method": predict[0], "url": predict[1], "data": {"threshold": "-inf"},
                                **files("x.png", good)}, 422),
        ("bad threshold, v2", {"method": "POST", "url": "/v2/models/parts/infer",
                               "json": {"inputs": [{"name": "i", "shape": [2, 2, 3], "datatype": "UINT8",
                                                    "data": [0] * 12}], "parameters": {"threshold": "x"}}}, 422),
        ("bad tensor shape", {"method": "POST", "url": "/v2/models/parts/infer",
                              "json": {"inputs": [{"name": "i", "shape": [2, 2, 3], "datatype": "UINT8",
                                                   "data": [0] * 5}]}}, 422),
        ("tensor out of range", {"method": "POST", "url": "/v2/models/parts/infer",
                                 "json": {"inputs": [{"name": "i", "shape": [2, 2, 3], "datatype": "UINT8",
                                                      "data": [300] * 12}]}}, 422),
        ("infer body not json", {"method": "POST", "url": "/v2/models/parts/infer", "content": b"\x00{"}, 422),
        ("bad target fpr", {"method": "POST", "url": "/v1/models/parts/threshold:recalibrate",
                            "json": {"target_fpr": 2}}, 422),
        ("verdict with sql", {"method": "POST", "url": "/v1/inspections/1/verdict",
                              "json": {"verdict": "false_alarm'; DROP TABLE inspections;--", "who": "x"}}, 422),
        ("inspection id with sql", {"method": "GET", "url": "/v1/inspections/1%20OR%201=1"}, 422),
        ("negative inspection id", {"method": "GET", "url": "/v1/inspections/-1"}, 422),
        ("sql in model filter", {"method": "GET", "url": "/v1/inspections",
                                 "params": {"model": "parts' OR '1'='1"}}, 422),
        ("sql in label filter", {"method": "GET", "url": "/v1/inspections",
                                 "params": {"label": "anomalous' OR 1=1 --"}}, 422),
        ("sql in verdict filter", {"method": "GET", "url": "/v1/inspections",
                                   "params": {"verdict": "none; DROP TABLE inspections"}}, 422),
        ("sql in since filter", {"method": "GET", "url": "/v1/inspections",
                                 "params": {"since": "2020-01-01'; DELETE FROM inspections;--"}}, 422),
        ("sql in cursor", {"method": "GET", "url": "/v1/inspections", "params": {"cursor": "1 OR 1=1"}}, 422),
        ("limit too large", {"method": "GET", "url": "/v1/inspections", "params": {"limit": 100000}}, 422),
        ("unknown route", {"method": "GET", "url": "/v1/files/etc/passwd"}, 404),
        ("wrong method", {"method": "DELETE", "url": "/v1/inspections"}, 405),
    ]


BAD = [what for what, _, _ in _bad_requests(b"\x89PNG\r\n\x1a\n")]


@pytest.fixture(scope="module")
def good_png(test_images) -> bytes:
    return test_images["good"]


@pytest.fixture(scope="module")
def bad_requests(good_png) -> dict[str, tuple[dict, int]]:
    return {what: (request, status) for what, request, status in _bad_requests(good_png)}


@pytest.mark.parametrize("what", BAD)
def test_bad_request_is_refused_with_a_json_4xx(make_client, good_png, bad_requests, predict, what):
    client, service = make_client(api_key="key", max_upload_bytes=200_000, max_pixels=1_000_000, max_images=4)
    key = {"X-API-Key": "key"}
    assert predict(client, good_png, headers=key).status_code == 200
    request, expected = dict(bad_requests[what][0]), bad_requests[what][1]
    headers = {k: v for k, v in {**key, **request.pop("headers", {})}.items() if v is not None}
    answer = client.request(**request, headers=headers)
    assert answer.status_code == expected, answer.text
    error = answer.json()["error"]
    assert error["status"] == expected and error["message"]
    # still healthy: scores, lists, and every row still there
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert predict(client, good_png, headers=key).status_code == 200
    with service.store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(inspections)).scalar() == 2
    assert service.store.integrity_errors() == []


def test_refused_requests_leave_nothing_in_the_store(make_client, good_png, predict):
    client, service = make_client(max_pixels=1_000_000)
    predict(client, good_png, good_png[:100])
    predict(client, good_png, _png((1100, 1000)))
    rows, _ = service.store.search(InspectionQuery())
    assert rows == [] and not any(p.is_file() for p in service.files.root.rglob("*"))


def test_bomb_never_reaches_the_decoder(good_png):
    from oddity.serve.errors import Refusal
    from oddity.serve.uploads import decode_upload

    with pytest.raises(Refusal, match="pixels") as caught:
        decode_upload("bomb.png", _png((12_000, 12_000), "1"), max_pixels=40_000_000)
    assert caught.value.status == 413
    assert np.asarray(decode_upload("ok.png", good_png, 10_000).pixels).dtype == np.float32
