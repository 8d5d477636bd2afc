"""What the routes do, without HTTP: score uploads, store them durably, review, recalibrate.

`InspectionService.inspect` is the path of every scored image: admission (bounded), then the
model's micro-batcher (`oddity.serve.batching`): the images of the requests waiting for a
model (up to `ServiceSettings.batch`) are scored in one call, then the batch is recorded at
once: map PNGs encoded, images and maps written to the content-addressed file store (flushed
to disk), then all rows inserted in one committed transaction. Only then are the batch's
requests answered, so an answered inspection is on disk with its files; a crash before the
commit leaves at most unreferenced files, never a row without its files.
"""
from __future__ import annotations

import asyncio
import base64
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from oddity.serve.adapter import Scored, ServedModel, map_png
from oddity.serve.batching import Job, MicroBatcher
from oddity.serve.errors import Refusal
from oddity.serve.files import FileStore
from oddity.serve.limits import Admission
from oddity.serve.settings import ServiceSettings
from oddity.serve.metrics import ServiceMetrics
from oddity.serve.review import Proposal, propose_threshold
from oddity.serve.store import InspectionQuery, InspectionStore, utc_now
from oddity.serve.uploads import Upload

if TYPE_CHECKING:
    from oddity.serve.series import ServedSeries


@dataclass(frozen=True)
class Inspected:
    """One stored inspection: its row (id included), the raw scoring result and the map PNG."""

    row: dict[str, Any]
    scored: Scored
    map_png: bytes | None


def parse_threshold(text: str | float | None) -> float | None:
    """A per-request threshold override: None, or a finite number.

    Parameters
    ----------
    text : str, float or None
        The request's threshold field; None or ``""`` when not given.

    Returns
    -------
    float or None
        None when not given.

    Raises
    ------
    Refusal
        422 if it is not a finite number.

    Examples
    --------
    >>> parse_threshold("0.25"), parse_threshold("")
    (0.25, None)
    """
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise Refusal(422, "bad_threshold", f"threshold: {str(text)[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise Refusal(422, "bad_threshold", f"threshold: must be a finite number, got {text!r}")
    return value


def iso(value: Any) -> str | None:
    """A stored naive UTC time as ISO 8601 with a Z, or None.

    Parameters
    ----------
    value : datetime.datetime or None
        Naive UTC time from the store.

    Returns
    -------
    str or None
        E.g. ``2026-01-31T12:00:00.000Z`` (milliseconds); None for None.

    Examples
    --------
    >>> import datetime
    >>> iso(datetime.datetime(2026, 1, 31, 12, 0))
    '2026-01-31T12:00:00.000Z'
    """
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def inspection_json(row: dict[str, Any]) -> dict[str, Any]:
    """An inspection row as the API shows it.

    Parameters
    ----------
    row : dict
        A stored `inspections` row, column name -> value.

    Returns
    -------
    dict
        Id, times, model, score, label, thresholds, size, image and map hashes, and the
        verdict (None when unreviewed).
    """
    verdict = None
    if row["verdict"] is not None:
        verdict = {"verdict": row["verdict"], "who": row["verdict_by"], "note": row["verdict_note"],
                   "at": iso(row["verdict_at"])}
    return {"id": row["id"], "created_at": iso(row["created_at"]),
            "model": {"name": row["model"], "version": row["model_version"]},
            "filename": row["filename"], "score": row["score"],
            "label": "anomalous" if row["anomalous"] else "normal",
            "threshold": row["threshold"], "threshold_source": row["threshold_source"],
            "pixel_threshold": row["pixel_threshold"], "latency_ms": row["latency_ms"],
            "width": row["width"], "height": row["height"],
            "image": {"sha256": row["image_sha256"], "media_type": row["image_type"]},
            "map": {"sha256": row["map_sha256"], "media_type": "image/png"} if row["map_sha256"] else None,
            "verdict": verdict}


def b64(data: bytes | None) -> str | None:
    """Bytes as base64 text, or None.

    Parameters
    ----------
    data : bytes or None
        File content.

    Returns
    -------
    str or None
        ASCII base64; None for None.
    """
    return None if data is None else base64.b64encode(data).decode("ascii")


class InspectionService:
    """Models, store, files, limits and metrics of one running service.

    Parameters
    ----------
    models : dict
        Served models by name (`oddity.serve.adapter.load_models`).
    store : InspectionStore
        Rows of inspections and threshold changes; thresholds changed earlier are put back
        in force.
    files : FileStore
        Uploaded images and map PNGs.
    settings : ServiceSettings
        Limits, batching and the API key.
    """

    def __init__(self, models: dict[str, ServedModel | ServedSeries], store: InspectionStore,
                 files: FileStore, settings: ServiceSettings):
        self.models, self.store, self.files, self.settings = models, store, files, settings
        self.metrics = ServiceMetrics()
        self.admission = Admission(settings.batch + settings.queue, settings.retry_after_s)
        self.metrics.in_progress.set_function(lambda: self.admission.active)
        self.batchers = {
            name: MicroBatcher(model.score_batch, lambda jobs, parts, model=model: self._record(model, jobs, parts),
                               settings.batch, settings.batch_wait_ms / 1000.0, name=f"oddity-{name}")
            for name, model in models.items() if isinstance(model, ServedModel)}
        for model in models.values():
            current = store.current_threshold(model.name, model.version)
            if current is not None:
                model.threshold = current

    def close(self) -> None:
        """Finish the queued requests and release the database."""
        for batcher in self.batchers.values():
            batcher.close()
        self.store.close()

    def model(self, name: str) -> ServedModel | ServedSeries:
        """The served model called `name`.

        Parameters
        ----------
        name : str
            Model name from the URL.

        Returns
        -------
        ServedModel or ServedSeries

        Raises
        ------
        Refusal
            404 if no such model is served.
        """
        model = self.models.get(name)
        if model is None:
            served = ", ".join(sorted(self.models)) or "none"
            raise Refusal(404, "unknown_model", f"model {name[:80]!r} is not served (served: {served})")
        return model

    async def inspect(self, model: ServedModel, uploads: Sequence[Upload],
                      threshold: float | None) -> list[Inspected]:
        """Score and durably store the uploads (see module docstring); the caller holds admission.

        Parameters
        ----------
        model : ServedModel
            An image model.
        uploads : sequence of Upload
            Decoded images of one request.
        threshold : float or None
            This request's threshold; None for the model's threshold in force.

        Returns
        -------
        list of Inspected
            One per upload, in order, once its row is committed.
        """
        future = self.batchers[model.name].submit([u.pixels for u in uploads], (uploads, threshold))
        return await asyncio.wrap_future(future)

    def _record(self, model: ServedModel, jobs: list[Job], scored: list[list[Scored]]) -> list[list[Inspected]]:
        """Store a scored batch: files flushed, then one transaction for all its rows."""
        now = utc_now()
        rows, pngs, blobs = [], [], []
        for job, results in zip(jobs, scored):
            uploads, threshold = job.options
            in_force = model.threshold if threshold is None else threshold
            source = "model" if threshold is None else "request"
            for upload, result in zip(uploads, results):
                png = map_png(result)
                pngs.append(png)
                blobs.append(upload.data)
                if png is not None:
                    blobs.append(png)
                rows.append({
                    "created_at": now, "model": model.name, "model_version": model.version,
                    "filename": upload.name[:255], "score": result.score, "threshold": in_force,
                    "threshold_source": source, "anomalous": result.score > in_force,
                    "pixel_threshold": result.pixel_threshold if math.isfinite(result.pixel_threshold) else None,
                    "latency_ms": result.seconds * 1000.0, "width": upload.width, "height": upload.height,
                    "image_sha256": None, "image_type": upload.media_type, "map_sha256": None,
                    "verdict": None, "verdict_by": None, "verdict_note": None, "verdict_at": None,
                })
        digests = iter(self.files.put_many(blobs))
        for row, png in zip(rows, pngs):
            row["image_sha256"] = next(digests)
            row["map_sha256"] = next(digests) if png is not None else None
        for row, inspection_id in zip(rows, self.store.add_inspections(rows)):
            row["id"] = inspection_id
        flat = [result for results in scored for result in results]
        for row, result in zip(rows, flat):
            self.metrics.observe_image(model.name, result.seconds, result.score, row["threshold"], row["anomalous"])
        answers, start = [], 0
        for results in scored:
            end = start + len(results)
            answers.append([Inspected(row, result, png)
                            for row, result, png in zip(rows[start:end], results, pngs[start:end])])
            start = end
        return answers

    def predict_series(self, model: ServedSeries, frame: Any, threshold: float | None) -> dict[str, Any]:
        """Scores, labels and ranges of a series (`ServedSeries.predict_frame`).

        Not stored: the store keeps image inspections.

        Parameters
        ----------
        model : ServedSeries
            A series model.
        frame : pandas.DataFrame
            The series, as read by `ServedSeries.read_csv` or `ServedSeries.read_tensor`.
        threshold : float or None
            This request's threshold; None for the model's.

        Returns
        -------
        dict
            `ServedSeries.predict_frame`'s answer.
        """
        answer = model.predict_frame(frame, threshold)
        self.metrics.inference_seconds.labels(model.name).observe(answer["latency_ms"] / 1000.0)
        return answer

    # --- reading and reviewing -----------------------------------------------------------
    def search(self, query: InspectionQuery) -> dict[str, Any]:
        """A page of inspections and the cursor of the next one.

        Parameters
        ----------
        query : InspectionQuery
            Filters, page size and cursor.

        Returns
        -------
        dict
            `inspections` (as `inspection_json` shows them) and `next_cursor` (text, or None
            on the last page).
        """
        rows, cursor = self.store.search(query)
        return {"inspections": [inspection_json(r) for r in rows],
                "next_cursor": None if cursor is None else str(cursor)}

    def row(self, inspection_id: int) -> dict[str, Any]:
        """The stored row of an inspection.

        Parameters
        ----------
        inspection_id : int
            Row id.

        Returns
        -------
        dict
            Column name -> value.

        Raises
        ------
        Refusal
            404 if there is no such inspection.
        """
        row = self.store.get(inspection_id)
        if row is None:
            raise Refusal(404, "unknown_inspection", f"no inspection with id {inspection_id}")
        return row

    def inspection(self, inspection_id: int) -> dict[str, Any]:
        """An inspection with its image and map (base64).

        Parameters
        ----------
        inspection_id : int
            Row id.

        Returns
        -------
        dict
            As `inspection_json`, with `base64` added to `image` and to `map` when there is one.

        Raises
        ------
        Refusal
            404 if there is no such inspection.
        DataError
            If a stored file is missing or damaged.
        """
        row = self.row(inspection_id)
        document = inspection_json(row)
        document["image"]["base64"] = b64(self.files.get(row["image_sha256"]))
        if document["map"] is not None:
            document["map"]["base64"] = b64(self.files.get(row["map_sha256"]))
        return document

    def set_verdict(self, inspection_id: int, verdict: str, who: str, note: str) -> dict[str, Any]:
        """Record a verdict; the inspection as it is now.

        Parameters
        ----------
        inspection_id : int
            Row id.
        verdict : str
            The verdict (checked by the route).
        who : str
            The operator.
        note : str
            Free text stored with the verdict.

        Returns
        -------
        dict
            The inspection as `inspection_json` shows it.

        Raises
        ------
        Refusal
            404 if there is no such inspection.
        """
        row = self.store.set_verdict(inspection_id, verdict, who, note)
        if row is None:
            raise Refusal(404, "unknown_inspection", f"no inspection with id {inspection_id}")
        return inspection_json(row)

    # --- thresholds ----------------------------------------------------------------------
    def recalibrate(self, model: ServedModel | ServedSeries, target_fpr: float | None, apply: bool,
                    who: str | None, why: str | None) -> dict[str, Any]:
        """Propose a threshold from the reviews; with `apply`, put it in force.

        An applied change is recorded with who made it and why.

        Parameters
        ----------
        model : ServedModel or ServedSeries
            The model to recalibrate (its current version's inspections are the evidence).
        target_fpr : float or None
            False-positive rate to calibrate for; None for the model's own (0.01 if it has none).
        apply : bool
            Put the proposal in force and record the change.
        who : str or None
            Who applies it (needed with `apply`).
        why : str or None
            Why (needed with `apply`).

        Returns
        -------
        dict
            `model`, `current` threshold, `proposed` (`Proposal.to_dict`), `applied` and
            `change_id` (None unless applied).

        Raises
        ------
        Refusal
            422 when applying without `who` and `why`, or for a bad `target_fpr`; 409 without
            normal evidence.
        """
        if apply and not (who and who.strip() and why and why.strip()):
            raise Refusal(422, "who_and_why_required",
                          "apply: a threshold change needs 'who' and 'why' (both non-empty)")
        if target_fpr is None:
            target_fpr = model.target_fpr if math.isfinite(model.target_fpr) else 0.01
        proposal: Proposal = propose_threshold(self.store.reviewed_scores(model.name, model.version),
                                               target_fpr)
        answer: dict[str, Any] = {"model": {"name": model.name, "version": model.version},
                                  "current": model.threshold, "proposed": proposal.to_dict(),
                                  "applied": False, "change_id": None}
        if apply:
            assert who is not None and why is not None
            answer["change_id"] = self.store.add_threshold_change({
                "model": model.name, "model_version": model.version, "old_value": model.threshold,
                "new_value": proposal.value, "target_fpr": target_fpr,
                "expected_fpr": proposal.expected_fpr, "n_normal": proposal.n_normal,
                "who": who.strip()[:128], "why": why.strip()})
            model.threshold = proposal.value
            answer["applied"] = True
        return answer

    def model_page(self, model: ServedModel | ServedSeries) -> dict[str, Any]:
        """Everything the model page shows: description, counts, threshold history.

        Parameters
        ----------
        model : ServedModel or ServedSeries
            A served model.

        Returns
        -------
        dict
            The model's `describe()` with `counts` (`InspectionStore.counts`) and
            `threshold_history` (oldest first) added.
        """
        history = [{**{k: v for k, v in change.items() if k != "created_at"},
                    "created_at": iso(change["created_at"])}
                   for change in self.store.threshold_history(model.name)]
        return {**model.describe(), "counts": self.store.counts(model.name), "threshold_history": history}
