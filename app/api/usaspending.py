"""The USAspending download v2 API over the event core.

* ``GET /v2/download/columns?type=award|transaction`` → ``{"columns": [{"title", "value"}]}``;
* ``POST /v2/download/awards`` and ``POST /v2/download/transactions`` with ``{"filters",
  "columns"}`` publish a ``DatasetRequest`` whose job id is the download's ``file_name``
  (``{epoch ms}_{8 hex}_awards.zip``) and answer USAspending's fields with ``status: "ready"``;
* ``GET /v2/download/status?file_name=`` answers every field of USAspending's answer from the
  read model:
  ``status`` ready / running / finished / failed, ``total_rows``, ``total_columns``,
  ``total_size`` (kilobytes, a number), ``seconds_elapsed`` (a string, as USAspending shows it:
  time so far while running, generation time once done), ``message`` (null unless failed),
  ``url`` (a presigned link to the zip; the planned key before it exists, as USAspending hands
  the URL out before the file is there).

Filters and columns are translated by :mod:`app.domain.usaspending`; an unsupported filter part
is a 400 naming it; ``limit`` (1..500,000) and ``file_format`` (csv, tsv, pstxt) are honoured.
Errors are ``{"detail": message, "code": CODE}`` (Django REST framework's ``detail``, plus our
code; usaspending-api's messages where it has one, 400 for a malformed value and 422 for one out
of range). A call acts for its ``X-Channel-ID`` (or API key), else for the channel the operator
mapped anonymous callers to (``EXHAUST_ANONYMOUS_CHANNELS``): a download of another channel
does not exist for the caller.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from app.api.edge import authenticated_user, caller_of, channel_of, json_response, read_json
from app.api.kernel import Profile, accept, ctx, own_outputs
from app.api.openapi import (
    ANY_OBJECT,
    CHANNEL,
    INTEGER,
    NUMBER,
    STRING,
    Schema,
    answer,
    errors,
    nullable,
    obj,
    operation,
    query,
)
from app.catalog.types import Catalog
from app.clock import now_ms
from app.domain import identifiers
from app.domain.errors import ExhaustError, InvalidConfig, MalformedRequest, NotFound, OutOfRange
from app.domain.model import DatasetRequest, attempt_prefix
from app.domain.usaspending import BY_TYPE, DOWNLOADS, Download, check_columns, translate_filters
from app.engine.formats import TEXT_LAYOUTS

WORDS = {
    "SUBMITTED": "ready",
    "AWAITING_INPUT": "ready",
    "PROCESSING": "running",
    "SUCCESS": "finished",
    "FAILED": "failed",
    "CANCELLED": "failed",
    "EXPIRED": "failed",
}
Handler = Callable[[web.Request], Awaitable[Any]]


def detail_errors(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.Response:
        try:
            return json_response(await handler(request))
        except ExhaustError as exc:
            return json_response({"detail": exc.message, "code": exc.code}, exc.http_status)

    return answer


@detail_errors
async def columns(request: web.Request) -> dict[str, Any]:
    kind = request.query.get("type", "")
    download = BY_TYPE.get(kind)
    if download is None:
        raise InvalidConfig(f"type must be one of {', '.join(sorted(BY_TYPE))}; got {kind!r}")
    return {"columns": [{"title": c.title, "value": c.value} for c in download.columns]}


def new_file_name(download: Download) -> str:
    """A timestamp followed by ``_awards.zip`` / ``_transactions.zip``; the random part keeps
    two downloads of the same millisecond apart."""
    return f"{now_ms()}_{secrets.token_hex(4)}_{download.kind}.zip"


def download_url(request: web.Request, record: dict[str, Any] | None, key: str) -> str:
    context = ctx(request)
    _, store = context.read_model, context.store
    outputs = own_outputs(record) if record is not None and record["status"] == "SUCCESS" else []
    if outputs:
        key = outputs[0]["key"]
    url, _ = store.link(key, context.settings.link_expiry_seconds)
    return url


def planned_key(channel: str, download: Download, file_name: str, attempt: int) -> str:
    """Where the zip of an attempt lands (``WorkItem.prefix`` + the type's output name)."""
    return (
        attempt_prefix(channel, download.dataset_type, file_name, attempt) + f"{download.kind}.zip"
    )


def submit_handler(download: Download) -> Callable[[web.Request], Awaitable[web.Response]]:
    @detail_errors
    async def submit(request: web.Request) -> dict[str, Any]:
        caller = caller_of(request, profile="usaspending")
        channel = caller.channel
        body = await read_json(request)
        if not isinstance(body, dict):
            raise MalformedRequest("body must be a JSON object with filters and columns")
        if "filters" not in body:
            raise InvalidConfig("Missing required field: filters")
        filters = translate_filters(download, body["filters"])
        chosen = check_columns(download, body.get("columns"))
        config = {"limit": row_limit(body), "file_format": file_format(body)}
        file_name = new_file_name(download)
        settings = ctx(request).settings
        dataset_request = DatasetRequest(
            request_id=identifiers.check("file_name", file_name),
            tag=file_name,
            dataset=download.dataset_type,
            channel=channel,
            requested_by=authenticated_user(request) or "usaspending",
            config=json.dumps(config, sort_keys=True),
            columns=chosen,
            filters=json.dumps(filters, sort_keys=True) if filters is not None else None,
            output={
                "format": "CSV",
                "compression": "ZIP",
                "rows_per_file": settings.usaspending_rows_per_file,
                "partition_by": None,
            },
            submitted_at=now_ms(),
        )
        await accept(ctx(request), dataset_request, wait_visible=True, roles=caller.roles)
        url = download_url(request, None, planned_key(channel, download, file_name, 1))
        return {
            "status": "ready",
            "total_rows": None,
            "file_name": file_name,
            "total_size": None,
            "total_columns": None,
            "message": None,
            "url": url,
            "seconds_elapsed": None,
            # What usaspending-api's POST answers besides (base_download_viewset.py).
            "status_url": status_url(request, file_name),
            "file_url": url,
            "download_request": sorted_request(body),
        }

    return submit


MAX_LIMIT = 500_000  # usaspending-api's MAX_DOWNLOAD_LIMIT


def row_limit(body: dict[str, Any]) -> int:
    """``limit``: the most rows the download holds, 1..500,000 (the default): a non-integer is
    400, out of range 422, with usaspending-api's messages."""
    value = body.get("limit", MAX_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int):
        shown = value if isinstance(value, str | int | float) else type(value).__name__
        raise InvalidConfig(f"Invalid value in 'limit'. '{str(shown)[:64]}' is not a valid type "
                            "(integer)")  # fmt: skip
    if value > MAX_LIMIT:
        raise OutOfRange(f"Field 'limit' value '{value}' is above max '{MAX_LIMIT}'")
    if value < 1:
        raise OutOfRange(f"Field 'limit' value '{value}' is below min '1'")
    return value


def file_format(body: dict[str, Any]) -> str:
    """``file_format``: csv (default), tsv or pstxt (pipe-delimited .txt), any case."""
    value = body.get("file_format", "csv")
    layout = value.lower() if isinstance(value, str) else None
    if layout not in TEXT_LAYOUTS:
        raise InvalidConfig(f"Field 'file_format' is outside valid values {list(TEXT_LAYOUTS)}")
    return layout


def status_url(request: web.Request, file_name: str) -> str:
    """Where the download's status is asked, on the host the client called."""
    query = urlencode({"file_name": file_name})
    return str(request.url.origin()) + f"/v2/download/status?{query}"


def sorted_request(value: Any, key: str = "") -> Any:
    """The request as usaspending-api echoes it: object keys sorted, lists in their order."""
    if isinstance(value, dict):
        return {k: sorted_request(value[k], k) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_request(v) for v in value]
    return value


def seconds_elapsed(record: dict[str, Any]) -> str | None:
    if record["status"] == "PROCESSING" and record["started_at"]:
        return f"{max(0.0, time.time() - record['started_at'] / 1000):.6f}"
    if record["execution_ms"] is not None:
        return f"{record['execution_ms'] / 1000:.6f}"
    if record["started_at"] and record["completed_at"]:
        return f"{(record['completed_at'] - record['started_at']) / 1000:.6f}"
    return None


@detail_errors
async def status(request: web.Request) -> dict[str, Any]:
    channel = channel_of(request, profile="usaspending")
    file_name = request.query.get("file_name", "")
    if not file_name:
        raise InvalidConfig("Missing one or more required query parameters: file_name")
    read_model, _ = ctx(request).read_model, ctx(request).store
    valid = identifiers.is_valid(file_name)
    record = read_model.get_record(channel, file_name) if valid else None
    download = next((d for d in DOWNLOADS.values() if d.dataset_type == (record or {}).get(
        "dataset")), None)  # fmt: skip
    if record is None or download is None:
        raise NotFound(f"Download with file_name {file_name[:120]!r} not found")
    word = WORDS[record["status"]]
    done = word == "finished"
    message = None
    if word == "failed":
        error = record.get("error")
        message = error["message"] if error else f"the download was {record['status'].lower()}"
    key = planned_key(channel, download, file_name, max(1, record["attempt"]))
    url = download_url(request, record, key)
    return {
        "status": word,
        "total_rows": record["total_rows"] if done else None,
        "file_name": file_name,
        # Kilobytes as usaspending-api reckons them: bytes / 1000.
        "total_size": record["total_bytes"] / 1000
        if done and record["total_bytes"] is not None
        else None,
        "total_columns": record["total_columns"] if done else None,
        "message": message,
        "url": url,
        "file_url": url,
        "seconds_elapsed": seconds_elapsed(record) if word in ("running", "finished", "failed")
        else None,
    }  # fmt: skip


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/download/columns", columns)
    app.router.add_post("/v2/download/awards", submit_handler(DOWNLOADS["awards"]))
    app.router.add_post("/v2/download/transactions", submit_handler(DOWNLOADS["transactions"]))
    app.router.add_get("/v2/download/status", status)


USA_DETAIL = obj(["detail"], detail=STRING, code=STRING)

USA_STATUS = obj(
    ["status", "total_rows", "file_name", "total_size", "total_columns", "message", "url",
     "seconds_elapsed"],
    status={"enum": sorted(set(WORDS.values()))}, total_rows=nullable(INTEGER),
    file_name=STRING, total_size=nullable(NUMBER), total_columns=nullable(INTEGER),
    message=nullable(STRING), url=STRING, seconds_elapsed=nullable(STRING), file_url=STRING,
    status_url=STRING, download_request={"type": "object"},
)  # fmt: skip


def openapi_paths(catalog: Catalog) -> dict[str, Schema]:
    """The OpenAPI paths of this profile's routes."""
    paths: dict[str, Schema] = {
        "/v2/download/columns": {"get": operation(
            "Columns of a download type (USAspending)",
            {"200": answer(obj(["columns"], columns={"type": "array", "items": obj(
                ["title", "value"], title=STRING, value=STRING)})), **errors(USA_DETAIL)},
            CHANNEL, query("type", {"enum": sorted(BY_TYPE)}, "award or transaction",
                           required=True), tag="usaspending")},
        "/v2/download/status": {"get": operation(
            "A download's status (USAspending)", {"200": answer(USA_STATUS),
                                                  **errors(USA_DETAIL)},
            CHANNEL, query("file_name", STRING, "The download's file_name", required=True),
            tag="usaspending")},
    }  # fmt: skip
    for kind in DOWNLOADS:
        paths[f"/v2/download/{kind}"] = {"post": operation(
            f"Request a {kind} download (USAspending)", {"200": answer(USA_STATUS),
                                                         **errors(USA_DETAIL)},
            CHANNEL, body=obj(["filters"], filters=ANY_OBJECT,
                              columns={"type": "array", "items": STRING},
                              limit={"type": "integer", "minimum": 1, "maximum": 500_000},
                              file_format={"enum": ["csv", "tsv", "pstxt"]}),
            tag="usaspending")}  # fmt: skip
    return paths


PROFILE = Profile("usaspending", add_routes, openapi_paths)
