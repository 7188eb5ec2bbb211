"""The dataset-fill profile and the native catalog routes of managed datasets.

* ``POST /dataset-fill`` — the dataset-fill body (``user-code``, ``dataset-code``, ``columns``,
  ``insert-data``, ``append``, ``compressed``). The rows are decoded, converted to the declared
  types and written to one Parquet segment here (:mod:`app.engine.fill_decoder`, in a worker
  thread); the segment travels inline in the fill event when small, else is staged in object storage
  first (claim check); the event goes to ``exhaust.fills``, and the call waits up to
  ``fill_wait_seconds`` for the dataset's writer to apply it:

  - applied: ``200 {"status": "success", "dataset-code", "rows-inserted", "fill-id", "version",
    "append", "total-rows"}``;
  - refused by the writer (an append whose columns differ, too many segments): the error
    envelope, e.g. ``409 {"error": {"code": "COLUMNS_MISMATCH", ...}}``;
  - not applied yet: ``202 {"status": "pending", "dataset-code", "fill-id", "operation"}``,
    where ``operation`` is the URL to poll.

  A bad row is refused before anything is published: ``400 INVALID_ROW`` naming the row
  (counted from 1) and the column. ``X-Fill-ID`` (optional) makes a retried call apply once.
* ``POST /v1/datasets/{code}/uploads`` — a presigned PUT for a file (CSV with a header row,
  JSON Lines, Parquet) of any size up to ``fill_max_upload_bytes``; ``POST /dataset-fill``
  with its ``upload-id`` and ``format`` instead of ``insert-data`` then fills from it, with the
  same checks, answers and atomicity.
* ``GET /v1/datasets``, ``GET /v1/datasets/{code}`` — the channel's datasets.
* ``GET /v1/datasets/{code}/fills/{fill_id}`` — one fill's outcome (the operation).

All of them need ``X-Channel-ID``; another channel's dataset is answered as not found.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from app.api.edge import (
    channel_of,
    json_response,
    read_json,
    read_limited,
    required_identifiers,
)
from app.api.kernel import Profile
from app.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    CHANNEL,
    ERROR,
    INTEGER,
    STRING,
    Schema,
    answer,
    errors,
    header,
    obj,
    operation,
    path,
)
from app.catalog.types import Catalog
from app.clock import now_ms
from app.domain import identifiers, json_values
from app.domain.errors import (
    Busy,
    InputMissing,
    InputsTooLarge,
    InvalidInsertData,
    MalformedRequest,
    NotFound,
    TransientError,
    error_for,
)
from app.domain.managed_datasets import (
    FILE_FORMATS,
    UPLOAD_EXTENSIONS,
    Column,
    Fill,
    FillRecord,
    ManagedDataset,
    inherit_formats,
    parse_columns,
    segment_prefix,
    upload_key,
)
from app.engine.fill_decoder import (
    Limits,
    convert,
    convert_file,
    spool_insert_data,
    typed_segment,
)
from app.engine.storage import ObjectStore
from app.metrics import Metrics
from app.settings import Settings
from app.stream.dataset_view import DatasetView
from app.stream.publisher import KafkaPublisher


@dataclass
class FillContext:
    settings: Settings
    metrics: Metrics
    view: DatasetView
    publisher: KafkaPublisher
    store: ObjectStore

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.fill_concurrency)
        self.budget = ByteBudget(self.settings.fill_memory_budget_bytes)

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            max_decompressed_bytes=s.fill_max_decompressed_bytes,
            max_rows=s.fill_max_rows,
            max_value_bytes=s.fill_max_value_bytes,
            memory_limit=s.duckdb_memory_limit,
            threads=s.duckdb_threads,
        )


FILL_CONTEXT = web.AppKey("fill_context", FillContext)
SYNC_SECONDS = 5.0  # how long an unknown fill id waits for the view to read up to the log end


@dataclass(frozen=True, slots=True)
class FillBody:
    user_code: str
    dataset_code: str
    columns: list[Column]
    insert_data: str
    append: bool
    compressed: bool
    keep_empty_strings: bool = False  # "empty-strings": "keep"; by default "" is NULL


EMPTY_RULES = {"null": False, "keep": True}  # the "empty-strings" field -> keep_empty_strings


@dataclass(frozen=True, slots=True)
class UploadBody:
    """A fill whose rows are a file the client uploaded (``upload-id`` instead of
    ``insert-data``)."""

    user_code: str
    dataset_code: str
    columns: list[Column]
    upload_id: str
    form: str  # csv, jsonl or parquet
    append: bool
    keep_empty_strings: bool = False


def upload_format(value: Any) -> str:
    if value not in FILE_FORMATS:
        raise MalformedRequest(f"format must be one of {', '.join(FILE_FORMATS)}")
    return str(value)


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false field; absent or null is the default."""
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MalformedRequest(f"{name} must be true or false")
    return value


def _keep_empty(body: dict[str, Any]) -> bool:
    rule = body.get("empty-strings") or "null"  # absent or null: the default
    if rule not in EMPTY_RULES:
        raise MalformedRequest('empty-strings must be "null" (the default) or "keep"')
    return EMPTY_RULES[rule]


def parse_upload_body(body: Any, max_columns: int) -> UploadBody:
    """The fill of an uploaded file: the dataset-fill fields, with ``upload-id`` and ``format``."""
    required_identifiers(body, "user-code", "dataset-code", "upload-id")
    if "insert-data" in body:
        raise MalformedRequest("a fill takes insert-data or upload-id, not both")
    return UploadBody(
        user_code=body["user-code"],
        dataset_code=body["dataset-code"],
        columns=parse_columns(body.get("columns"), max_columns),
        upload_id=body["upload-id"],
        form=upload_format(body.get("format", "csv")),
        append=_flag(body, "append", True),
        keep_empty_strings=_keep_empty(body),
    )


def parse_fill_body(body: Any, max_columns: int) -> FillBody:
    """The dataset-fill body, checked field by field (the error names the field)."""
    required_identifiers(body, "user-code", "dataset-code")
    insert_data = body.get("insert-data")
    if not isinstance(insert_data, str):
        raise InvalidInsertData(
            "insert-data is required: the rows as JSON text, or base64 of their gzip when "
            "compressed is true"
        )
    return FillBody(
        user_code=body["user-code"],
        dataset_code=body["dataset-code"],
        columns=parse_columns(body.get("columns"), max_columns),
        insert_data=insert_data,
        append=_flag(body, "append", True),
        compressed=_flag(body, "compressed", False),
        keep_empty_strings=_keep_empty(body),
    )


def fill_event(
    body: FillBody | UploadBody, channel: str, fill_id: str, rows: int, size: int, key: str
) -> Fill:
    """The (data-less) FILL event of a converted fill whose segment is at ``key``."""
    return Fill(
        kind="FILL",
        fill_id=fill_id,
        channel=channel,
        dataset_code=body.dataset_code,
        user_code=body.user_code,
        mode="APPEND" if body.append else "TRUNCATE",
        columns=tuple(body.columns),
        rows=rows,
        bytes=size,
        segment_key=key,
        requested_at=now_ms(),
    )


def segment_key(channel: str, code: str, fill_id: str) -> str:
    """Where a fill's segment lives; unique per attempt (a retried call stages anew)."""
    return f"{segment_prefix(channel, code)}{fill_id}-{uuid.uuid4().hex[:12]}.parquet"


def prepare(
    raw: bytes, channel: str, fill_id: str, spool: Path, context: FillContext
) -> tuple[Fill, Path, bool] | UploadBody:
    """Blocking: the body to a validated segment on disk and its (data-less) fill event; or,
    for the fill of an uploaded file, its parsed body."""
    body = json_values.loads(raw, "body", MalformedRequest)
    if isinstance(body, dict) and "upload-id" in body:
        return parse_upload_body(body, context.settings.dataset_max_columns)
    parsed = parse_fill_body(body, context.settings.dataset_max_columns)
    del body
    current = context.view.dataset(channel, parsed.dataset_code) if parsed.append else None
    if current is not None:  # dates are read in the dataset's stored format unless one is given
        parsed = dataclasses.replace(
            parsed, columns=inherit_formats(parsed.columns, current.columns)
        )
    rows_json = spool / "rows.json"
    limits = context.limits
    spool_insert_data(
        parsed.insert_data, parsed.compressed, rows_json, limits.max_decompressed_bytes
    )
    segment = spool / "segment.parquet"
    rows = convert(rows_json, parsed.columns, segment, limits, parsed.keep_empty_strings)
    rows_json.unlink()
    key = segment_key(channel, parsed.dataset_code, fill_id)
    fill = fill_event(parsed, channel, fill_id, rows, segment.stat().st_size, key)
    return fill, segment, parsed.keep_empty_strings


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` (before reading the rest)."""
    advice = ": send the rows in several fills with append=true, compressed"
    return await read_limited(request, limit, "EXHAUST_FILL_MAX_BODY_BYTES", advice)


def fill_context(request: web.Request) -> FillContext:
    """The fill routes' context once the catalog view has caught up; before that a 503 the
    client retries."""
    context = request.app.get(FILL_CONTEXT)
    if context is None or not context.view.caught_up.is_set():
        raise TransientError("worker is still starting")
    return context


MEMORY_PER_BODY_BYTE = 3  # the body, its parsed text, the rows encoded for the converter


class ByteBudget:
    """Bytes of memory the fills of this worker hold; reserved before a body is read, so
    parallel fills cannot hold more than the budget whatever their number (a fill over the
    whole budget is admitted alone)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, wanted: int) -> int | None:
        """Reserve ``wanted`` bytes (at most the whole budget); None when they do not fit now."""
        cost = min(wanted, self.total)
        if self.used + cost > self.total:
            return None
        self.used += cost
        return cost

    def give(self, cost: int) -> None:
        self.used -= cost


async def dataset_fill(request: web.Request) -> web.Response:
    channel = channel_of(request)
    context = fill_context(request)
    fill_id = request.headers.get("X-Fill-ID") or uuid.uuid4().hex
    identifiers.check("X-Fill-ID", fill_id)
    limit = context.settings.fill_max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        await read_body(request, limit)  # 413, unread
    cost = context.budget.take(MEMORY_PER_BODY_BYTE * (declared if declared is not None else limit))
    if cost is None:
        context.metrics.fills.labels("busy").inc()
        raise Busy(
            "this worker is converting as many fills as its memory budget allows "
            "(EXHAUST_FILL_MEMORY_BUDGET_BYTES); send the fill again shortly",
            retry_after=2,
        )
    try:
        fill, keep_empty = await _read_and_publish(request, context, channel, fill_id, limit)
    finally:
        context.budget.give(cost)  # the body and its copies are gone by now
    return await _answer(context, channel, fill, "keep" if keep_empty else "null")


async def _read_and_publish(
    request: web.Request, context: FillContext, channel: str, fill_id: str, limit: int
) -> tuple[Fill, bool]:
    """Read the body, turn it into a segment and publish the fill event (within the budget);
    the fill and whether its empty strings were kept."""
    raw = await read_body(request, limit)
    started = time.monotonic()
    async with context.slots:
        try:
            with tempfile.TemporaryDirectory(
                prefix="exhaust-fill-", dir=context.settings.spool_dir
            ) as spool:
                prepared = await asyncio.to_thread(
                    prepare, raw, channel, fill_id, Path(spool), context
                )
                del raw  # the body can be large: not held while the fill waits
                if isinstance(prepared, UploadBody):
                    fill = await from_upload(context, channel, fill_id, prepared, Path(spool))
                    await context.publisher.fill(fill)
                    context.metrics.fills.labels("accepted").inc()
                    context.metrics.fill_seconds.observe(time.monotonic() - started)
                    return fill, prepared.keep_empty_strings
                fill, segment, keep_empty = prepared
                if fill.bytes <= context.settings.fill_inline_max_bytes:
                    data = await asyncio.to_thread(segment.read_bytes)
                    fill = dataclasses.replace(fill, data=data)
                else:
                    await context.store.upload_file(fill.segment_key, segment)
            await context.publisher.fill(fill)
        except Exception:
            context.metrics.fills.labels("refused").inc()
            raise
    context.metrics.fills.labels("accepted").inc()
    context.metrics.fill_seconds.observe(time.monotonic() - started)
    return fill, keep_empty


async def from_upload(
    context: FillContext, channel: str, fill_id: str, body: UploadBody, spool: Path
) -> Fill:
    """The fill of an uploaded file: fetched from its staging key (derived from the caller's
    channel), checked and converted by the same rules as rows in a body, its segment stored;
    the staged file is deleted whatever the outcome (a refused fill is uploaded again). A
    Parquet file that already is a segment (:func:`typed_segment`) is only checked, and the
    copy that was checked is stored."""
    store = context.store
    key = upload_key(channel, body.dataset_code, body.upload_id, body.form)
    size = await store.size(key)
    if size is None:
        raise InputMissing(
            f"no {body.form} file uploaded as {body.upload_id!r} for dataset "
            f"{body.dataset_code!r}: POST /v1/datasets/{body.dataset_code}/uploads, then PUT "
            "the file to its url"
        )
    limit = context.settings.fill_max_upload_bytes
    try:
        if size > limit:
            raise InputsTooLarge(f"the uploaded file has {size} bytes; at most {limit} "
                                 "(EXHAUST_FILL_MAX_UPLOAD_BYTES)")  # fmt: skip
        local = spool / f"upload{UPLOAD_EXTENSIONS[body.form]}"
        await store.download_file(key, local, max_bytes=limit)  # a file replaced meanwhile
        segment = spool / "segment.parquet"
        limits = dataclasses.replace(context.limits, max_rows=2**62)  # bounded by bytes
        segment_at = segment_key(channel, body.dataset_code, fill_id)
        as_is = None
        if body.form == "parquet":
            as_is = await asyncio.to_thread(typed_segment, local, body.columns, limits)
        if as_is is not None:
            # The local copy that was checked, never the staged object: its presigned PUT is
            # still valid, so a store-side copy could take a file replaced since the check.
            rows, segment = as_is, local
        else:
            rows = await asyncio.to_thread(convert_file, local, body.form, body.columns,
                                           segment, limits, body.keep_empty_strings)  # fmt: skip
        stored = (await store.upload_file(segment_at, segment)).bytes
    finally:
        await store.delete_keys([key])
    return fill_event(body, channel, fill_id, rows, stored, segment_at)


async def new_upload(request: web.Request) -> web.Response:
    """``POST /v1/datasets/{code}/uploads`` ``{"format": "csv"|"jsonl"|"parquet"}``: a presigned
    PUT for the file of one fill, then ``POST /dataset-fill`` with its ``upload-id``."""
    channel = channel_of(request)
    context = fill_context(request)
    code = identifiers.check("dataset code", request.match_info["code"])
    body = await read_json(request) if request.can_read_body else {}
    form = upload_format(body.get("format", "csv") if isinstance(body, dict) else None)
    upload_id = uuid.uuid4().hex
    expiry = context.settings.fill_upload_expiry_seconds
    url = await context.store.presign_put(upload_key(channel, code, upload_id, form), expiry)
    context.metrics.fills.labels("upload").inc()
    return json_response(
        {
            "upload-id": upload_id,
            "dataset-code": code,
            "format": form,
            "method": "PUT",
            "url": url,
            "expires-at": now_ms() + expiry * 1000,
            "max-bytes": context.settings.fill_max_upload_bytes,
        },
        status=201,
    )  # fmt: skip


async def _answer(
    context: FillContext, channel: str, fill: Fill, empty_strings: str
) -> web.Response:
    """The fill's outcome once applied, or 202 with the operation to poll; both say how empty
    cells were read (``empty-strings``: ``null`` or ``keep``)."""
    record = await context.view.wait_for_fill(
        channel, fill.dataset_code, fill.fill_id, context.settings.fill_wait_seconds
    )
    if record is None:
        context.metrics.fills.labels("pending").inc()
        return json_response(
            {
                "status": "pending",
                "dataset-code": fill.dataset_code,
                "fill-id": fill.fill_id,
                "operation": f"/v1/datasets/{fill.dataset_code}/fills/{fill.fill_id}",
                "empty-strings": empty_strings,
            },
            status=202,
        )
    if record.status == "REJECTED":
        raise error_for(record.error_code or "FILL_REFUSED", record.error_message or "refused")
    entry = context.view.dataset(channel, fill.dataset_code)
    return json_response(
        {
            "status": "success",
            "dataset-code": fill.dataset_code,
            "rows-inserted": record.rows,
            "fill-id": record.fill_id,
            "version": record.version,
            "append": record.mode == "APPEND",
            "total-rows": entry.rows if entry is not None else None,
            "empty-strings": empty_strings,
        }
    )


def column_view(column: Column) -> dict[str, Any]:
    return {
        "name": column.name,
        "alias": column.alias,
        "type": column.type.lower(),
        "subtype": column.subtype,
        "format": column.format,
    }


def fill_view(record: FillRecord) -> dict[str, Any]:
    view: dict[str, Any] = {
        "fill_id": record.fill_id,
        "status": record.status,
        "mode": record.mode,
        "rows": record.rows,
        "version": record.version,
        "user_code": record.user_code,
        "requested_at": record.requested_at,
        "applied_at": record.applied_at,
    }
    if record.error_code:
        view["error"] = {"code": record.error_code, "message": record.error_message}
    return view


def dataset_view(entry: ManagedDataset, detail: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "code": entry.code,
        "version": entry.version,
        "columns": [column_view(c) for c in entry.columns],
        "rows": entry.rows,
        "bytes": entry.bytes,
        "segments": len(entry.segments),
        "versions": {
            "current": entry.version,
            "retained": sorted({r.version for r in entry.retired if r.reason == "superseded"}),
        },
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "last_fill": fill_view(entry.fills[-1]) if entry.fills else None,
    }
    if detail:
        view["segments"] = [
            {
                "key": s.key,
                "rows": s.rows,
                "bytes": s.bytes,
                "fill_id": s.fill_id,
                "added_at": s.added_at,
            }
            for s in entry.segments
        ]
        view["fills"] = [fill_view(f) for f in reversed(entry.fills)]
    return view


def _view_of(request: web.Request) -> DatasetView:
    return fill_context(request).view


async def list_datasets(request: web.Request) -> web.Response:
    channel = channel_of(request)
    datasets = [dataset_view(e) for e in _view_of(request).datasets(channel)]
    return json_response({"count": len(datasets), "datasets": datasets})


def _dataset(request: web.Request) -> ManagedDataset:
    channel = channel_of(request)
    code = identifiers.check("dataset code", request.match_info["code"])
    entry = _view_of(request).dataset(channel, code)
    if entry is None:
        raise NotFound(f"no dataset {code!r} in channel {channel!r}")
    return entry


async def get_dataset(request: web.Request) -> web.Response:
    return json_response(dataset_view(_dataset(request), detail=True))


async def get_fill(request: web.Request) -> web.Response:
    channel = channel_of(request)
    code = identifiers.check("dataset code", request.match_info["code"])
    fill_id = identifiers.check("fill id", request.match_info["fill_id"])
    view = _view_of(request)
    found = view.outcome(channel, code, fill_id)
    if found is None and await view.sync(SYNC_SECONDS):
        found = view.outcome(channel, code, fill_id)  # the fill may be younger than our view
    if found is None:
        raise NotFound(
            f"no fill {fill_id!r} of dataset {code!r} in channel {channel!r} (outcomes of the "
            "latest fills of a dataset are kept)"
        )
    if found == "PENDING":
        return json_response({"fill_id": fill_id, "status": "PENDING"})
    return json_response(fill_view(found))


def add_routes(app: web.Application) -> None:
    """The routes; their :class:`FillContext` is ``app[FILL_CONTEXT]``, set by the server."""
    app.router.add_post("/dataset-fill", dataset_fill)
    app.router.add_get("/v1/datasets", list_datasets)
    app.router.add_get("/v1/datasets/{code}", get_dataset)
    app.router.add_get("/v1/datasets/{code}/fills/{fill_id}", get_fill)
    app.router.add_post("/v1/datasets/{code}/uploads", new_upload)


def openapi_paths(catalog: Catalog) -> dict[str, Schema]:
    """The OpenAPI paths of this profile's routes."""
    native_errors = errors(ERROR)
    dataset = obj(["code"], code=STRING, version=INTEGER, rows=INTEGER, bytes=INTEGER,
                  columns={"type": "array", "items": ANY_OBJECT})  # fmt: skip
    fill_answer = obj(["status"], status=STRING)
    paths: dict[str, Schema] = {
        "/dataset-fill": {"post": operation(
            "Fill a managed dataset",
            {"200": answer(fill_answer), "202": answer(fill_answer), **native_errors}, CHANNEL,
            header("X-Fill-ID", "Your id of this fill (a retry applies once)", required=False),
            body=obj(["dataset-code", "columns"], **{
                "user-code": STRING, "dataset-code": STRING,
                "columns": {"type": "array", "items": ANY_OBJECT}, "insert-data": STRING,
                "upload-id": STRING, "format": {"enum": list(FILE_FORMATS)},
                "append": BOOLEAN, "compressed": BOOLEAN,
                "empty-strings": {"enum": ["null", "keep"]}}), tag="dataset-fill")},
        "/v1/datasets/{code}/uploads": {"post": operation(
            "A presigned PUT for a fill's file (then /dataset-fill with its upload-id)",
            {"201": answer(obj(["upload-id", "url", "method", "format"], **{
                "upload-id": STRING, "dataset-code": STRING, "format": STRING,
                "method": STRING, "url": STRING, "expires-at": INTEGER,
                "max-bytes": INTEGER})), **native_errors},
            CHANNEL, path("code", "The dataset code"),
            body=obj([], format={"enum": list(FILE_FORMATS)}), tag="dataset-fill")},
        "/v1/datasets": {"get": operation(
            "The channel's managed datasets",
            {"200": answer(obj(["count", "datasets"], count=INTEGER,
                               datasets={"type": "array", "items": dataset})),
             **native_errors}, CHANNEL, tag="dataset-fill")},
        "/v1/datasets/{code}": {"get": operation(
            "One managed dataset", {"200": answer(dataset), **native_errors}, CHANNEL,
            path("code", "The dataset code"), tag="dataset-fill")},
        "/v1/datasets/{code}/fills/{fill_id}": {"get": operation(
            "One fill's outcome", {"200": answer(obj(["fill_id", "status"], fill_id=STRING,
                                                     status=STRING)), **native_errors},
            CHANNEL, path("code", "The dataset code"), path("fill_id", "The fill id"),
            tag="dataset-fill")},
    }  # fmt: skip
    return paths


PROFILE = Profile("dataset-fill", add_routes, openapi_paths)

__all__ = ["FILL_CONTEXT", "PROFILE", "FillContext", "add_routes", "parse_fill_body"]
