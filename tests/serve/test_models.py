"""Micro-batching, export folders, series models and evaluation reports in the service."""
from __future__ import annotations

import asyncio
import io
import shutil
import threading

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import oddity
from oddity.core.errors import ConfigError
from oddity.export.onnx import export_onnx
from oddity.serve.adapter import load_models, model_files
from oddity.serve.app import create_app
from oddity.serve.batching import MicroBatcher
from oddity.serve.files import FileStore
from oddity.serve.service import InspectionService
from oddity.serve.settings import ServiceSettings
from oddity.serve.store import InspectionQuery, InspectionStore
from oddity.serve.uploads import decode_upload


def test_the_batcher_gathers_waiting_jobs_into_one_call():
    release, calls = threading.Event(), []

    def score(items):
        calls.append(list(items))
        release.wait(10)
        return [item * 10 for item in items]

    batcher = MicroBatcher(score, lambda jobs, parts: [sum(p) for p in parts], max_batch=4, max_wait_s=0.0)
    first = batcher.submit([1])
    while not calls:  # the first job is being scored; the next ones queue behind it
        threading.Event().wait(0.01)
    waiting = [batcher.submit([2, 3]), batcher.submit([4]), batcher.submit([5, 6])]
    release.set()
    assert first.result(10) == 10
    assert [f.result(10) for f in waiting] == [50, 40, 110]
    assert calls == [[1], [2, 3, 4], [5, 6]]  # [5, 6] would pass max_batch: it starts the next batch
    batcher.close()


def test_a_failed_batch_fails_its_requests_only():
    def score(items):
        if "bad" in items:
            raise ValueError("cannot score")
        return items

    batcher = MicroBatcher(score, lambda jobs, parts: parts, max_batch=8, max_wait_s=0.0)
    with pytest.raises(ValueError, match="cannot score"):
        batcher.submit(["bad"]).result(10)
    assert batcher.submit(["good"]).result(10) == ["good"]
    batcher.close()


def open_service(models, tmp_path, **settings) -> InspectionService:
    return InspectionService(load_models([str(m) for m in models]),
                             InspectionStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}"),
                             FileStore(tmp_path / "files"), ServiceSettings(**settings))


def test_concurrent_requests_are_scored_in_batches_like_predict(model_file, inspection_set, tmp_path):
    from oddity.image.data import evaluation_samples

    samples = evaluation_samples(inspection_set)
    uploads = [decode_upload(s.path.name, s.path.read_bytes(), 10**6) for s in samples]
    service = open_service([model_file], tmp_path, batch=8, batch_wait_ms=500)
    model = service.models["parts"]

    async def run():
        return await asyncio.gather(*(service.inspect(model, [u], None) for u in uploads))

    answers = [a[0] for a in asyncio.run(run())]
    batches = service.batchers["parts"].batches
    rows = service.store.search(InspectionQuery(limit=100))[0]
    service.close()
    assert batches < len(uploads)
    expected = oddity.load(model_file).predict([s.path for s in samples], verbose=False).scores
    np.testing.assert_allclose([a.row["score"] for a in answers], expected, rtol=1e-5, atol=1e-6)
    assert sorted(r["id"] for r in rows) == sorted(a.row["id"] for a in answers)
    assert all(service.files.has(r["image_sha256"]) and service.files.has(r["map_sha256"]) for r in rows)


@pytest.fixture(scope="module")
def export_folder(inspection_set, tmp_path_factory):
    """`parts-onnx/`, the export of a PatchCore saved beside it as `fresh.oddity` (calibrated
    at fit: an export records the threshold's target rate)."""
    root = tmp_path_factory.mktemp("exports")
    detector = oddity.create("patchcore", image_size=64, seed=0).fit(inspection_set, verbose=False)
    detector.save(root / "fresh.oddity")
    export_onnx(detector, root / "parts-onnx", verbose=False)
    return root / "parts-onnx"


def test_an_export_folder_is_served_with_onnxruntime(export_folder, test_images, tmp_path):
    service = open_service([export_folder, export_folder.parent / "fresh.oddity"], tmp_path)
    with TestClient(create_app(service)) as client:
        described = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert described["parts-onnx"]["engine"] == "onnxruntime"
        assert described["fresh"]["engine"] == "oddity"
        scores = {}
        for name in ("fresh", "parts-onnx"):
            answer = client.post(f"/v1/models/{name}:predict", files={"images": ("a.png", test_images["defect"])})
            assert answer.status_code == 200, answer.text
            result = answer.json()["results"][0]
            assert result["map_png_base64"] and result["threshold"] == described[name]["threshold"]
            scores[name] = result["score"]
    service.close()
    assert scores["parts-onnx"] == pytest.approx(scores["fresh"], rel=1e-4)


def test_a_folder_of_models_takes_model_files_and_export_folders(export_folder, model_file, tmp_path):
    shutil.copy(model_file, tmp_path / "a.oddity")
    shutil.copytree(export_folder, tmp_path / "b")
    (tmp_path / "notes").mkdir()
    assert [p.name for p in model_files([str(tmp_path)])] == ["a.oddity", "b"]
    with pytest.raises(ConfigError, match="no .oddity model file and no export folder"):
        model_files([str(tmp_path / "notes")])


def test_a_series_model_scores_a_csv_body(series_model, series_csv, tmp_path):
    service = open_service([series_model], tmp_path)
    with TestClient(create_app(service)) as client:
        assert client.get("/v1/models/oven").json()["kind"] == "series"
        answer = client.post("/v1/models/oven:predict", content=series_csv(),
                             headers={"content-type": "text/csv"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["steps"] == 300 and len(body["scores"]) == len(body["labels"]) == 300
        assert body["index"][0] == "2026-01-01T00:00:00"
        assert any(r["start"] <= "2026-01-01T02:30:00" <= r["end"] for r in body["ranges"])
        assert all(body["labels"][150:153])
        strict = client.post("/v1/models/oven:predict?threshold=1e9", content=series_csv(),
                             headers={"content-type": "text/csv"}).json()
        assert strict["threshold_source"] == "request" and strict["ranges"] == [] and not any(strict["labels"])
        wrong_column = pd.DataFrame({"pressure": np.ones(100)}).to_csv(index=False).encode()
        refused = client.post("/v1/models/oven:predict", content=wrong_column, headers={"content-type": "text/csv"})
        assert refused.status_code == 422 and "temperature" in refused.json()["error"]["message"]
        assert client.post("/v1/models/oven:predict", files={"images": ("a.png", b"x")}).status_code == 415
        assert client.post("/v1/models/oven:predict", content=b"", headers={"content-type": "text/csv"}).status_code == 422
        assert client.post("/v2/models/oven/infer", json={"inputs": []}).status_code == 422
    service.close()


def test_a_series_model_answers_the_open_inference_protocol(series_model, tmp_path):
    service = open_service([series_model], tmp_path)
    values = np.sin(np.arange(300) / 10)
    values[150:153] += 6.0
    with TestClient(create_app(service)) as client:
        assert client.get("/v2/models/oven").json()["inputs"][0]["shape"] == [-1, 1]
        tensor = {"name": "series", "datatype": "FP64", "shape": [300, 1], "data": values.tolist()}
        answer = client.post("/v2/models/oven/infer", json={"id": "line-3", "inputs": [tensor]})
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        assert outputs["score"]["shape"] == [300] and all(outputs["label"]["data"][150:153])
        assert any(r["start"] <= 150 <= r["end"] for r in answer.json()["parameters"]["ranges"])
        for bad in ({**tensor, "shape": [150, 2]}, {**tensor, "datatype": "UINT8"},
                    {**tensor, "data": values.tolist()[:-1]}, {**tensor, "shape": [1, 1], "data": [0.0]}):
            assert client.post("/v2/models/oven/infer", json={"inputs": [bad]}).status_code == 422
    service.close()


def test_the_evaluation_report_beside_a_model_is_served_and_nothing_else(model_file, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(model_file, models / "parts.oddity")
    (models / "secret.txt").write_text("not served")
    report = models / "parts.report"
    (report / "images").mkdir(parents=True)
    (report / "index.html").write_text("<html><body><img src='images/roc.png'></body></html>")
    (report / "images" / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (report / "images" / "leak.png").symlink_to(models / "secret.txt")
    service = open_service([models / "parts.oddity"], tmp_path)
    with TestClient(create_app(service)) as client:
        assert client.get("/v1/models/parts").json()["report"] is True
        page = client.get("/v1/models/parts/report/")
        assert page.status_code == 200 and "roc.png" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert client.get("/v1/models/parts/report/images/roc.png").headers["content-type"] == "image/png"
        for bad in ("../secret.txt", "..%2Fsecret.txt", "images/../../secret.txt", "index.htm",
                    "%2e%2e/parts.oddity", "images/leak.png"):
            assert client.get(f"/v1/models/parts/report/{bad}").status_code == 404, bad
    service.close()


def test_the_map_png_is_a_palette_image_with_the_colours_of_colorize():
    from PIL import Image

    from oddity.serve.adapter import Scored, map_png
    from oddity.viz import centred_range, colorize, to_uint8

    score_map = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    png = Image.open(io.BytesIO(map_png(Scored(1.0, score_map, 0.4, 0.0))))
    assert png.mode == "P" and png.size == (30, 40)
    expected = to_uint8(colorize(score_map, centred_range([score_map], 0.4)))
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), expected)


def test_a_job_cancelled_while_waiting_is_dropped():
    release, calls = threading.Event(), []

    def score(items):
        calls.append(list(items))
        release.wait(10)
        return items

    batcher = MicroBatcher(score, lambda jobs, parts: parts, max_batch=8, max_wait_s=0.0)
    first = batcher.submit(["a"])
    while not calls:
        threading.Event().wait(0.01)
    dropped, kept = batcher.submit(["b"]), batcher.submit(["c"])
    assert dropped.cancel() and not first.cancel()  # a job being scored cannot be cancelled
    release.set()
    assert first.result(10) == ["a"] and kept.result(10) == ["c"]
    assert calls == [["a"], ["c"]]
    batcher.close()
