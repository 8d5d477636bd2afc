"""The FastAPI application: routes over `InspectionService` (see docs/service.md).

Routes
- `POST /v1/models/{name}:predict`: multipart field `images` (repeatable), optional form field
  `threshold` (recorded as a per-request override); per image: id, score, label, threshold,
  model name and version, latency, anomaly-map PNG (base64).
- `GET /v1/models`, `GET /v1/models/{name}`: served models, counts, threshold history;
  `GET /v1/models/{name}/report/`: the model's `oddity eval --report` page, if found at start.
- A series model's `:predict` takes a CSV body (`text/csv`) and answers per-row scores,
  thresholds, labels and the anomalous ranges (not stored).
- `POST /v1/models/{name}/threshold:recalibrate`: propose (and with `apply`, set) a threshold.
- `GET /v1/inspections` (filters `model`, `label`, `verdict`, `since`, `until`, `limit`,
  `cursor`), `GET /v1/inspections/{id}` (image and map in base64), `.../image`, `.../map`,
  `POST /v1/inspections/{id}/verdict`.
- Open Inference Protocol (KServe v2): `GET /v2`, `/v2/health/live`, `/v2/health/ready`,
  `/v2/models/{name}`, `/v2/models/{name}/ready`, `POST /v2/models/{name}/infer` (an image
  tensor, or a series tensor [T, C] for a series model).
- `GET /metrics` (Prometheus), `GET /ui/` (browser UI), `GET /docs` (OpenAPI page).
Every refusal is a JSON `{"error": {"status", "code", "message"}}` with a 4xx status (503 when
busy). Requests never name files: stored files are reached through an inspection's id.
"""
from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

import oddity
from oddity.serve.adapter import MODEL_NAME
from oddity.serve.errors import Refusal
from oddity.serve.limits import ApiKeyGate, BodyLimit, Scope, Receive, Send, ASGIApp
from oddity.serve.service import InspectionService, b64, parse_threshold
from oddity.serve.store import InspectionQuery
from oddity.serve.uploads import Upload, check_pixels, decode_upload, encode_png

MAX_ID = 2**62
InspectionId = Annotated[int, Path(ge=1, le=MAX_ID, description="inspection id")]
UI_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
            "app.css": "text/css; charset=utf-8"}
UI_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
             "connect-src 'self'; frame-ancestors 'none'")
REPORT_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
SERIES_TYPES = ("text/csv", "application/csv", "text/plain")
STATUS_CODES = {400: "bad_request", 401: "unauthorised", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_type",
                422: "invalid_request"}


class VerdictBody(BaseModel):
    """An operator's verdict on an inspection."""

    model_config = ConfigDict(extra="forbid")
    verdict: Literal["confirmed_defect", "false_alarm", "unsure"]
    who: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=2000)


class RecalibrateBody(BaseModel):
    """A request for a threshold proposal; `apply` puts it in force (needs `who` and `why`)."""

    model_config = ConfigDict(extra="forbid")
    target_fpr: float | None = Field(None, gt=0.0, lt=1.0)
    apply: bool = False
    who: str | None = Field(None, max_length=128)
    why: str | None = Field(None, max_length=2000)


def refusal_response(refusal: Refusal) -> JSONResponse:
    """The HTTP answer of a refusal.

    Parameters
    ----------
    refusal : Refusal
        Status, JSON body and extra headers of the answer.

    Returns
    -------
    fastapi.responses.JSONResponse
    """
    return JSONResponse(refusal.body(), status_code=refusal.status, headers=refusal.headers)


class Observed:
    """ASGI middleware: request metrics and security headers on every answer."""

    def __init__(self, app: ASGIApp, service: InspectionService):
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        ui = scope.get("path", "").startswith("/ui/")

        async def observed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"cache-control", b"no-store"))
                if ui:
                    headers.append((b"content-security-policy", UI_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        metrics = self.service.metrics
        start = anyio.current_time()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            metrics.requests.labels(name, str(status["code"])).inc()
            metrics.request_seconds.labels(name).observe(anyio.current_time() - start)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _tensor_uploads(body: dict[str, Any], max_pixels: int, max_images: int) -> tuple[list[Upload], str]:
    """Images from a KServe v2 infer request: one input of shape [N, H, W, 3], [H, W, 3] or
    [N, H, W], datatype UINT8 (0-255) or FP32 (0-1)."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise Refusal(422, "bad_tensor", "inputs: expected exactly one input tensor (the images)")
    tensor = inputs[0]
    shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
    if (not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape)
            or len(shape) not in (3, 4)):
        raise Refusal(422, "bad_tensor", f"inputs[0].shape: expected [N, H, W, 3], [H, W, 3] or "
                      f"[N, H, W] with positive sizes, got {str(shape)[:80]}")
    if len(shape) == 3 and shape[2] != 3:
        shape = [*shape, 1]
    if len(shape) == 3:
        shape = [1, *shape]
    count, height, width, channels = shape
    if channels not in (1, 3):
        raise Refusal(422, "bad_tensor", f"inputs[0].shape: last axis must be 3 (RGB) or absent (grey), got {channels}")
    if count > max_images:
        raise Refusal(413, "too_many_images", f"inputs[0]: {count} images, at most {max_images} per request")
    check_pixels("inputs[0]", width, height, max_pixels)
    kinds = {"UINT8": np.uint8, "FP32": np.float32}
    if datatype not in kinds:
        raise Refusal(422, "bad_tensor", f"inputs[0].datatype: expected UINT8 or FP32, got {str(datatype)[:20]!r}")
    try:
        array = np.asarray(data, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise Refusal(422, "bad_tensor", "inputs[0].data: expected numbers") from None
    if array.size != count * height * width * channels:
        raise Refusal(422, "bad_tensor", f"inputs[0].data: {array.size} values for shape {shape}")
    limit = 255.0 if datatype == "UINT8" else 1.0
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > limit:
        raise Refusal(422, "bad_tensor", f"inputs[0].data: {datatype} values must lie in [0, {limit:g}]")
    if datatype == "UINT8" and not np.all(array == np.round(array)):
        raise Refusal(422, "bad_tensor", "inputs[0].data: UINT8 values must be whole numbers")
    pixels = (array / limit).astype(np.float32).reshape(count, height, width, channels)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=3)
    name = str(body.get("id") or "tensor")[:200]
    uploads = [Upload(name=f"{name}[{i}]", data=encode_png(np.round(p * 255).astype(np.uint8)),
                      media_type="image/png", pixels=p) for i, p in enumerate(pixels)]
    return uploads, name


def create_app(service: InspectionService) -> FastAPI:
    """The application serving `service`.

    Parameters
    ----------
    service : InspectionService

    Returns
    -------
    FastAPI
    """
    settings = service.settings
    app = FastAPI(title="oddity inspection service", version=oddity.__version__,
                  description="Score images with oddity models, keep a durable record, review it.")
    app.state.service = service
    ui_files = {name: (resources.files("oddity.serve").joinpath("ui", name).read_bytes(), kind)
                for name, kind in UI_FILES.items()}

    @app.exception_handler(Refusal)
    async def on_refusal(request: Request, exc: Refusal) -> JSONResponse:
        return refusal_response(exc)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "http_error")
        return refusal_response(Refusal(exc.status_code, code, str(exc.detail), dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())[1:]) or "body", e.get("msg"))
                    for e in exc.errors()]
        return refusal_response(Refusal(422, "invalid_request", "; ".join(problems)[:1000]))

    # --- v1: scoring -------------------------------------------------------------------
    @app.post("/v1/models/{name}:predict", tags=["inspect"])
    async def predict(name: str, request: Request) -> JSONResponse:
        """Score images (multipart field `images`, repeatable; optional `threshold`), or, for a
        series model, a CSV body (`text/csv`; optional query parameter `threshold`)."""
        model = service.model(name)
        kind = request.headers.get("content-type", "")
        if model.kind == "series":
            if not kind.startswith(SERIES_TYPES):
                raise Refusal(415, "unsupported_type", f"model {model.name!r} scores series: send a CSV "
                              f"body with content type text/csv (got content type {kind[:60]!r})")
            override = parse_threshold(request.query_params.get("threshold"))
            with service.admission:
                body = await request.body()
                if not body.strip():
                    raise Refusal(422, "empty_body", "body: empty; send the series as CSV rows under a header")
                frame = await anyio.to_thread.run_sync(model.read_csv, body)
                answer = await anyio.to_thread.run_sync(service.predict_series, model, frame, override)
            return JSONResponse(answer)
        if not kind.startswith("multipart/form-data"):
            raise Refusal(415, "unsupported_type", "send the images as multipart/form-data in the "
                          f"field 'images' (got content type {kind[:60]!r})")
        with service.admission:
            async with request.form(max_files=settings.max_images, max_fields=4) as form:
                unknown = sorted(set(form.keys()) - {"images", "threshold"})
                if unknown:
                    raise Refusal(422, "unknown_field", f"unknown form field(s) {', '.join(map(repr, unknown))[:200]}; "
                                  "send 'images' (files) and optionally 'threshold'")
                threshold = form.get("threshold")
                if threshold is not None and not isinstance(threshold, str):
                    raise Refusal(422, "bad_threshold", "threshold: must be a form value, not a file")
                override = parse_threshold(threshold)
                parts = form.getlist("images")
                if not parts:
                    raise Refusal(422, "no_images", "no images: send one or more files in the field 'images'")
                if not all(isinstance(p, UploadFile) for p in parts):
                    raise Refusal(422, "no_images", "images: every 'images' part must be a file")
                named = [((p.filename or f"image-{i}")[:255], await p.read()) for i, p in enumerate(parts)]
            uploads = [await anyio.to_thread.run_sync(decode_upload, n, d, settings.max_pixels)
                       for n, d in named]
            results = await service.inspect(model, uploads, override)
        return JSONResponse({
            "model": {"name": model.name, "version": model.version},
            "results": [{"id": r.row["id"], "filename": r.row["filename"], "score": r.row["score"],
                         "label": "anomalous" if r.row["anomalous"] else "normal",
                         "threshold": r.row["threshold"], "threshold_source": r.row["threshold_source"],
                         "pixel_threshold": r.row["pixel_threshold"], "latency_ms": r.row["latency_ms"],
                         "width": r.row["width"], "height": r.row["height"],
                         "model": {"name": model.name, "version": model.version},
                         "map_png_base64": b64(r.map_png)} for r in results]})

    # --- v1: models ----------------------------------------------------------------------
    @app.get("/v1/models", tags=["models"])
    async def models() -> dict[str, Any]:
        """The served models."""
        return {"models": [m.describe() for m in service.models.values()]}

    @app.get("/v1/models/{name}", tags=["models"])
    async def model_page(name: str) -> dict[str, Any]:
        """A model: description, counts of inspections and verdicts, threshold history."""
        return await anyio.to_thread.run_sync(service.model_page, service.model(name))

    @app.get("/v1/models/{name}/report", include_in_schema=False)
    async def report_index(name: str) -> RedirectResponse:
        service.model(name)
        return RedirectResponse(f"/v1/models/{name}/report/")

    @app.get("/v1/models/{name}/report/{file:path}", tags=["models"])
    async def report(name: str, file: str) -> Response:
        """The model's `oddity eval --report` page (`report/`) and its images, when a report
        folder was found beside the model at start (see docs/service.md)."""
        model = service.model(name)
        if not model.report:
            raise Refusal(404, "no_report", f"model {model.name!r} has no evaluation report (put the "
                          "folder written by `oddity eval --report` beside the model; see docs/service.md)")
        path = model.report.get(file or "index.html")
        if path is None:
            raise Refusal(404, "not_found", f"the report of {model.name!r} has no file {file[:80]!r}")
        data = await anyio.to_thread.run_sync(path.read_bytes)
        kind = "text/html; charset=utf-8" if path.suffix == ".html" else "image/png"
        return Response(data, media_type=kind, headers={"content-security-policy": REPORT_POLICY})

    @app.post("/v1/models/{name}/threshold:recalibrate", tags=["models"])
    async def recalibrate(name: str, body: RecalibrateBody) -> dict[str, Any]:
        """Propose a threshold from the reviewed inspections; `apply` puts it in force."""
        model = service.model(name)
        return await anyio.to_thread.run_sync(service.recalibrate, model, body.target_fpr,
                                              body.apply, body.who, body.why)

    # --- v1: inspections -----------------------------------------------------------------
    @app.get("/v1/inspections", tags=["inspections"])
    async def inspections(
        model: str | None = Query(None, max_length=128),
        label: Literal["anomalous", "normal"] | None = None,
        verdict: Literal["confirmed_defect", "false_alarm", "unsure", "none"] | None = None,
        since: dt.datetime | None = None, until: dt.datetime | None = None,
        limit: int = Query(50, ge=1, le=500), cursor: int | None = Query(None, ge=1, le=MAX_ID),
    ) -> dict[str, Any]:
        """Inspections, newest first, filtered; `next_cursor` continues the listing."""
        if model is not None and not MODEL_NAME.fullmatch(model):
            raise Refusal(422, "bad_model_name", "model: names hold letters, digits, '.', '_' and '-' only")
        query = InspectionQuery(model=model, anomalous=None if label is None else label == "anomalous",
                                verdict=verdict, since=_utc(since), until=_utc(until), limit=limit,
                                cursor=cursor)
        return await anyio.to_thread.run_sync(service.search, query)

    @app.get("/v1/inspections/{inspection_id}", tags=["inspections"])
    async def inspection(inspection_id: InspectionId) -> dict[str, Any]:
        """One inspection with its image and anomaly map (base64)."""
        return await anyio.to_thread.run_sync(service.inspection, inspection_id)

    @app.get("/v1/inspections/{inspection_id}/image", tags=["inspections"])
    async def inspection_image(inspection_id: InspectionId) -> Response:
        """The inspected image as uploaded."""
        row = await anyio.to_thread.run_sync(service.row, inspection_id)
        data = await anyio.to_thread.run_sync(service.files.get, row["image_sha256"])
        return Response(data, media_type=row["image_type"])

    @app.get("/v1/inspections/{inspection_id}/map", tags=["inspections"])
    async def inspection_map(inspection_id: InspectionId) -> Response:
        """The anomaly map as a coloured PNG."""
        row = await anyio.to_thread.run_sync(service.row, inspection_id)
        if row["map_sha256"] is None:
            raise Refusal(404, "no_map", f"inspection {inspection_id}: the model gives no anomaly map")
        data = await anyio.to_thread.run_sync(service.files.get, row["map_sha256"])
        return Response(data, media_type="image/png")

    @app.post("/v1/inspections/{inspection_id}/verdict", tags=["inspections"])
    async def verdict(inspection_id: InspectionId, body: VerdictBody) -> dict[str, Any]:
        """Record an operator's verdict (`confirmed_defect`, `false_alarm` or `unsure`)."""
        return await anyio.to_thread.run_sync(service.set_verdict, inspection_id, body.verdict,
                                              body.who.strip(), body.note)

    # --- v2: Open Inference Protocol -----------------------------------------------------
    @app.get("/v2", tags=["v2"])
    async def server_metadata() -> dict[str, Any]:
        return {"name": "oddity", "version": oddity.__version__, "extensions": []}

    @app.get("/v2/health/live", tags=["v2"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"])
    async def ready() -> dict[str, bool]:
        return {"ready": bool(service.models)}

    @app.get("/v2/models/{name}", tags=["v2"])
    async def model_metadata(name: str) -> dict[str, Any]:
        model = service.model(name)
        if model.kind == "series":
            return {"name": model.name, "versions": [model.version], "platform": f"oddity-{model.detector_name}",
                    "inputs": [{"name": "series", "datatype": "FP64", "shape": [-1, len(model.detector.columns_)]}],
                    "outputs": [{"name": n, "datatype": t, "shape": [-1]}
                                for n, t in (("score", "FP64"), ("label", "BOOL"), ("threshold", "FP64"))]}
        outputs = [{"name": "score", "datatype": "FP64", "shape": [-1]},
                   {"name": "label", "datatype": "BOOL", "shape": [-1]},
                   {"name": "threshold", "datatype": "FP64", "shape": [-1]},
                   {"name": "inspection_id", "datatype": "INT64", "shape": [-1]}]
        if model.localises:
            outputs.append({"name": "anomaly_map", "datatype": "FP32", "shape": [-1, -1, -1]})
        return {"name": model.name, "versions": [model.version], "platform": f"oddity-{model.detector_name}",
                "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}],
                "outputs": outputs}

    @app.get("/v2/models/{name}/ready", tags=["v2"])
    async def model_ready(name: str) -> dict[str, Any]:
        return {"name": service.model(name).name, "ready": True}

    @app.post("/v2/models/{name}/infer", tags=["v2"])
    async def infer(name: str, request: Request) -> dict[str, Any]:
        """KServe v2 inference: one tensor of images in; scores, labels, maps out. For a series
        model, one tensor [T] or [T, C] in; per-step scores, labels, thresholds out, the
        anomalous ranges in `parameters`. `parameters.threshold` overrides the threshold for
        this request (recorded for images)."""
        model = service.model(name)
        with service.admission:
            try:
                body = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise Refusal(422, "bad_json", "the body is not JSON (an Open Inference Protocol request)") from None
            if not isinstance(body, dict):
                raise Refusal(422, "bad_json", "the body must be a JSON object with 'inputs'")
            parameters = body.get("parameters") or {}
            override = parse_threshold(parameters.get("threshold") if isinstance(parameters, dict) else None)
            if model.kind == "series":
                frame = await anyio.to_thread.run_sync(model.read_tensor, body)
                answer = await anyio.to_thread.run_sync(service.predict_series, model, frame, override)
                steps = answer["steps"]
                return {"model_name": model.name, "model_version": model.version,
                        "id": str(body.get("id") or "series")[:200],
                        "parameters": {"ranges": answer["ranges"], "threshold_source": answer["threshold_source"]},
                        "outputs": [{"name": "score", "datatype": "FP64", "shape": [steps], "data": answer["scores"]},
                                    {"name": "label", "datatype": "BOOL", "shape": [steps], "data": answer["labels"]},
                                    {"name": "threshold", "datatype": "FP64", "shape": [steps],
                                     "data": answer["thresholds"]}]}
            uploads, request_id = await anyio.to_thread.run_sync(
                _tensor_uploads, body, settings.max_pixels, settings.max_images)
            results = await service.inspect(model, uploads, override)
        count = len(results)
        outputs = [
            {"name": "score", "datatype": "FP64", "shape": [count], "data": [r.row["score"] for r in results]},
            {"name": "label", "datatype": "BOOL", "shape": [count],
             "data": [bool(r.row["anomalous"]) for r in results]},
            {"name": "threshold", "datatype": "FP64", "shape": [count], "data": [r.row["threshold"] for r in results]},
            {"name": "inspection_id", "datatype": "INT64", "shape": [count], "data": [r.row["id"] for r in results]},
        ]
        if results and results[0].scored.map is not None:
            maps = np.stack([r.scored.map for r in results]).astype(np.float32)
            outputs.append({"name": "anomaly_map", "datatype": "FP32", "shape": list(maps.shape),
                            "data": maps.ravel().tolist()})
        return {"model_name": model.name, "model_version": model.version, "id": request_id, "outputs": outputs}

    # --- metrics and UI ------------------------------------------------------------------
    @app.get("/metrics", tags=["service"])
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/", include_in_schema=False)
    async def ui_index() -> Response:
        data, kind = ui_files["index.html"]
        return Response(data, media_type=kind)

    @app.get("/ui/{asset}", include_in_schema=False)
    async def ui_asset(asset: str) -> Response:
        if asset not in ui_files:
            raise Refusal(404, "not_found", f"no UI file {asset[:60]!r}")
        data, kind = ui_files[asset]
        return Response(data, media_type=kind)

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(ApiKeyGate, api_key=settings.api_key)
    app.add_middleware(Observed, service=service)
    return app

