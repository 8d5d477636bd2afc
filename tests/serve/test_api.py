"""The service's API on a real (tiny) PatchCore: scoring, storing, listing, reviewing,
recalibrating, metrics and the Open Inference Protocol routes."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from oddity.serve.files import sha256_hex
from oddity.serve.runner import ServeOptions, check_options, is_loopback
from oddity.serve.settings import ServiceSettings
from oddity.core.errors import ConfigError


def test_predict_scores_labels_and_stores_each_image(make_client, test_images, predict):
    client, service = make_client()
    response = predict(client, test_images["good"], test_images["defect"])
    assert response.status_code == 200, response.text
    body = response.json()
    model = service.models["parts"]
    assert body["model"] == {"name": "parts", "version": model.version}
    good, defect = body["results"]
    assert defect["score"] > good["score"]
    for result, data in zip(body["results"], (test_images["good"], test_images["defect"])):
        assert result["threshold"] == pytest.approx(model.threshold)
        assert result["threshold_source"] == "model"
        assert result["label"] == ("anomalous" if result["score"] > model.threshold else "normal")
        heat = Image.open(io.BytesIO(base64.b64decode(result["map_png_base64"])))
        assert heat.size == (result["width"], result["height"]) == (64, 64)
        row = service.store.get(result["id"])
        assert row["image_sha256"] == sha256_hex(data) and service.files.get(row["image_sha256"]) == data
        assert service.files.has(row["map_sha256"]) and row["score"] == result["score"]
    assert defect["label"] == "anomalous"


def test_threshold_override_is_applied_and_recorded(make_client, test_images, predict):
    client, service = make_client()
    result = predict(client, test_images["defect"], threshold="1e9").json()["results"][0]
    assert result["label"] == "normal" and result["threshold"] == 1e9
    assert result["threshold_source"] == "request"
    assert service.store.get(result["id"])["threshold_source"] == "request"


def test_listing_filters_and_pages_with_a_cursor(make_client, test_images, predict):
    client, _ = make_client()
    ids = [predict(client, test_images[kind]).json()["results"][0]["id"]
           for kind in ("good", "defect", "good", "defect", "good")]
    seen, cursor = [], None
    while True:
        page = client.get("/v1/inspections", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [item["id"] for item in page["inspections"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    anomalous = client.get("/v1/inspections", params={"label": "anomalous", "model": "parts"}).json()
    assert {i["id"] for i in anomalous["inspections"]} >= {ids[1], ids[3]}
    assert all(i["label"] == "anomalous" for i in anomalous["inspections"])
    assert client.get("/v1/inspections", params={"model": "other"}).json()["inspections"] == []
    assert client.get("/v1/inspections", params={"until": "2000-01-01T00:00:00Z"}).json()["inspections"] == []
    assert len(client.get("/v1/inspections", params={"since": "2000-01-01T00:00:00+02:00"}).json()["inspections"]) == 5


def test_one_inspection_comes_with_its_image_and_map(client, test_images, predict):
    inspection_id = predict(client, test_images["defect"]).json()["results"][0]["id"]
    document = client.get(f"/v1/inspections/{inspection_id}").json()
    assert base64.b64decode(document["image"]["base64"]) == test_images["defect"]
    assert document["image"]["media_type"] == "image/png" and document["verdict"] is None
    assert client.get(f"/v1/inspections/{inspection_id}/image").content == test_images["defect"]
    assert client.get(f"/v1/inspections/{inspection_id}/map").content.startswith(b"\x89PNG")
    assert client.get("/v1/inspections/999999").status_code == 404


def test_verdicts_are_recorded_and_filterable(client, test_images, predict):
    first, second = (r["id"] for r in predict(client, test_images["defect"], test_images["good"]).json()["results"])
    answer = client.post(f"/v1/inspections/{first}/verdict",
                         json={"verdict": "false_alarm", "who": "ana", "note": "dust"})
    assert answer.status_code == 200
    assert answer.json()["verdict"]["verdict"] == "false_alarm" and answer.json()["verdict"]["who"] == "ana"
    listed = client.get("/v1/inspections", params={"verdict": "false_alarm"}).json()["inspections"]
    assert [i["id"] for i in listed] == [first]
    unreviewed = client.get("/v1/inspections", params={"verdict": "none"}).json()["inspections"]
    assert [i["id"] for i in unreviewed] == [second]
    assert client.post(f"/v1/inspections/{first}/verdict", json={"verdict": "maybe", "who": "ana"}).status_code == 422
    assert client.post("/v1/inspections/424242/verdict", json={"verdict": "unsure", "who": "a"}).status_code == 404


def test_recalibration_proposes_then_applies_with_who_and_why(make_client, test_images, predict):
    client, service = make_client()
    model = service.models["parts"]
    before = model.threshold
    defect = predict(client, test_images["defect"]).json()["results"][0]
    predict(client, test_images["good"])
    client.post(f"/v1/inspections/{defect['id']}/verdict", json={"verdict": "false_alarm", "who": "ana"})
    url = "/v1/models/parts/threshold:recalibrate"
    proposal = client.post(url, json={"target_fpr": 0.2})
    assert proposal.status_code == 200, proposal.text
    proposed = proposal.json()["proposed"]
    assert proposal.json()["applied"] is False and model.threshold == before
    assert proposed["n_false_alarms"] == 1 and proposed["value"] >= defect["score"]
    assert proposed["false_alarms_still_flagged"] == 0
    assert client.post(url, json={"apply": True}).status_code == 422
    applied = client.post(url, json={"target_fpr": 0.2, "apply": True, "who": "ana", "why": "dust on lens"})
    assert applied.json()["applied"] is True and model.threshold == proposed["value"]
    history = client.get("/v1/models/parts").json()["threshold_history"]
    assert [(h["who"], h["why"], h["old_value"], h["new_value"]) for h in history] == [
        ("ana", "dust on lens", before, proposed["value"])]
    # a restarted service over the same store keeps the applied threshold
    _, restarted = make_client()
    assert restarted.models["parts"].threshold == proposed["value"]


def test_recalibration_without_evidence_is_a_conflict(client):
    answer = client.post("/v1/models/parts/threshold:recalibrate", json={})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "no_evidence"


def test_metrics_count_requests_labels_and_latency(client, test_images, predict):
    predict(client, test_images["good"], test_images["defect"])
    text = client.get("/metrics").text
    assert 'oddity_requests_total{route="/v1/models/{name}:predict",status="200"} 1.0' in text
    assert 'oddity_labels_total{label="anomalous",model="parts"} 1.0' in text
    assert 'oddity_inference_seconds_count{model="parts"} 2.0' in text
    assert "oddity_in_progress 0.0" in text


def test_model_page_and_list(client, test_images, predict):
    predict(client, test_images["defect"])
    page = client.get("/v1/models/parts").json()
    assert page["detector"] == "patchcore" and page["counts"]["inspections"] == 1
    assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["parts"]


def test_open_inference_protocol_routes(client, test_images, predict):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/parts").json()
    assert meta["name"] == "parts" and meta["platform"] == "oddity-patchcore"
    pixels = np.asarray(Image.open(io.BytesIO(test_images["defect"])).convert("RGB"))
    body = {"id": "cam-7", "inputs": [{"name": "images", "shape": [1, *pixels.shape], "datatype": "UINT8",
                                       "data": pixels.ravel().tolist()}]}
    answer = client.post("/v2/models/parts/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    rest = predict(client, test_images["defect"]).json()["results"][0]
    assert outputs["score"]["data"][0] == pytest.approx(rest["score"], rel=1e-6)
    assert outputs["anomaly_map"]["shape"] == [1, 64, 64]
    assert outputs["label"]["data"] == [True]
    stored = client.get(f"/v1/inspections/{outputs['inspection_id']['data'][0]}").json()
    assert stored["filename"] == "cam-7[0]"


def test_api_key_guards_everything_but_health_and_ui(make_client, test_images, predict):
    client, _ = make_client(api_key="s3cret")
    assert predict(client, test_images["good"]).status_code == 401
    assert predict(client, test_images["good"], headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.get("/metrics").status_code == 401
    assert client.get("/v1/inspections").json()["error"]["code"] == "missing_api_key"
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/ui/").status_code == 200
    assert predict(client, test_images["good"], headers={"X-API-Key": "s3cret"}).status_code == 200


def test_a_full_queue_answers_503_with_retry_after(make_client, test_images, predict):
    client, service = make_client(batch=1, queue=0)
    with service.admission:
        answer = predict(client, test_images["good"])
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "busy"
    assert predict(client, test_images["good"]).status_code == 200


def test_a_non_loopback_bind_needs_a_key():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    with pytest.raises(ConfigError, match="needs an API key"):
        check_options(ServeOptions(models=["m.oddity"], host="0.0.0.0"))
    check_options(ServeOptions(models=["m.oddity"], host="0.0.0.0", settings=ServiceSettings(api_key="k")))
