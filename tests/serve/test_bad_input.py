"""Every kind of bad request (`oddity.bench.service.bad_requests`) gets the right 4xx with a
JSON error, and the service stays healthy after each: it still scores and its store is intact."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from oddity.bench.service import bad_requests, png_bytes, send
from oddity.serve.errors import Refusal
from oddity.serve.schema import inspections
from oddity.serve.settings import ServiceSettings
from oddity.serve.store import InspectionQuery
from oddity.serve.uploads import decode_upload

LIMITS = {"api_key": "key", "max_upload_bytes": 200_000, "max_pixels": 1_000_000, "max_images": 4}
BAD = [bad.what for bad in bad_requests(b"\x89PNG\r\n\x1a\n", "parts", ServiceSettings(**LIMITS))]


@pytest.fixture(scope="module")
def good_png(test_images) -> bytes:
    return test_images["good"]


@pytest.fixture(scope="module")
def bad(good_png) -> dict:
    return {bad.what: bad for bad in bad_requests(good_png, "parts", ServiceSettings(**LIMITS))}


@pytest.mark.parametrize("what", BAD)
def test_bad_request_is_refused_with_a_json_4xx(make_client, good_png, bad, predict, what):
    client, service = make_client(**LIMITS)
    key = {"X-API-Key": "key"}
    assert predict(client, good_png, headers=key).status_code == 200
    answer = send(client, bad[what], "key")
    assert answer.status_code == bad[what].status, answer.text
    error = answer.json()["error"]
    assert error["status"] == bad[what].status and error["message"]
    # still healthy: scores, lists, and every row still there
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert predict(client, good_png, headers=key).status_code == 200
    with service.store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(inspections)).scalar() == 2
    assert service.store.integrity_errors() == []


def test_refused_requests_leave_nothing_in_the_store(make_client, good_png, predict):
    client, service = make_client(max_pixels=1_000_000)
    predict(client, good_png, good_png[:100])
    predict(client, good_png, png_bytes((1100, 1000)))
    rows, _ = service.store.search(InspectionQuery())
    assert rows == [] and not any(p.is_file() for p in service.files.root.rglob("*"))


def test_bomb_never_reaches_the_decoder(good_png):
    with pytest.raises(Refusal, match="pixels") as caught:
        decode_upload("bomb.png", png_bytes((12_000, 12_000), "1"), max_pixels=40_000_000)
    assert caught.value.status == 413
    assert np.asarray(decode_upload("ok.png", good_png, 10_000).pixels).dtype == np.float32
