"""The Learnosity-style dataset flow (shaped by Learnosity's public Data API
reference) over the event core.

Like Learnosity's Data API, every call is a ``POST`` whose body carries ``security`` (the SDK's
signed packet), ``request`` (JSON) and ``action`` (``get``/``set``), as form fields (what the
official SDKs send) or as one JSON object; the version segment of the path (``v1``,
``v2025.2.LTS``, ``latest``) is accepted and ignored. Answers are ``{"meta": {"status",
"timestamp", "records"?, "next"?}, "data": …}``.

* ``set /reports/datasets`` initialises a dataset: a client-chosen ``dataset_id`` (UUID), a
  ``dataset_type`` of the catalog, ``file_count`` (0..100), ``filters`` and ``options`` (the
  type's config). With files: ``file_count`` presigned PUT links for NDJSON inputs and a job
  waiting in ``AWAITING_INPUT`` until the links expire; without: the job is queued at once and
  its ``job_reference`` returned.
* ``set /jobs/reports/datasets`` commences it once the files are uploaded (every file present
  and not empty; an expired link means starting again).
* ``get /jobs`` looks jobs up: up to 1,000 ``references``, ``status`` among ``queued``,
  ``running``, ``halted``, ``completed`` (default: completed, as Learnosity), ``mintime`` /
  ``maxtime`` (Unix time or ISO 8601, on the creation time), ``limit`` ≤ 50.
* ``get /reports/datasets`` retrieves a completed dataset: its files (one per group) with
  presigned links, paged with ``limit`` and ``next``.

The job of a dataset is its ``dataset_id`` (and so is its ``job_reference``); its input files
are ``{channel}/inputs/{dataset_id}/{n}.ndjson``. Authentication: with
``EXHAUST_LEARNOSITY_CONSUMERS`` set, the security packet's signature is checked (the SDK's
``$02$`` HMAC-SHA256 over the packet's fields, the request text and the action) and the
consumer's channel is the caller's; without it, ``X-Channel-ID`` from a trusted gateway.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from app.api.edge import channel_of, json_response, read_json, read_limited
from app.api.kernel import Profile, accept, ctx, own_outputs
from app.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    STRING,
    Schema,
    answer,
    errors,
    header,
    obj,
    operation,
)
from app.catalog.types import Catalog
from app.clock import now_ms
from app.domain import json_values
from app.domain.errors import (
    AccessDenied,
    ExhaustError,
    InputMissing,
    InputsTooLarge,
    InvalidConfig,
    MalformedRequest,
    NotFound,
)
from app.domain.model import DatasetRequest
from app.domain.replay import SignatureLedger

VERSION = re.compile(r"v[0-9][0-9A-Za-z.]*|latest|latest-lts|developer")
WORDS = {
    "SUBMITTED": "queued",
    "PROCESSING": "running",
    "SUCCESS": "completed",
    "FAILED": "halted",
    "CANCELLED": "halted",
    "EXPIRED": "halted",
}
STATES_OF = {word: tuple(s for s, w in WORDS.items() if w == word) for word in set(WORDS.values())}
MAX_FILES = 100
MAX_REFERENCES = 1000
MAX_JOBS = 50
MAX_RESULTS = 1000
SECURITY_KEYS = ("consumer_key", "domain", "timestamp", "expires", "user_id")


@dataclass(frozen=True, slots=True)
class Call:
    """One Data API call: the caller's channel, the request object and the action."""

    channel: str
    request: dict[str, Any]
    action: str


def now_s() -> int:
    return int(time.time())


def envelope(data: Any, **meta: Any) -> dict[str, Any]:
    return {"meta": {"status": True, "timestamp": now_s(), **meta}, "data": data}


Handler = Callable[[web.Request, Call], Awaitable[dict[str, Any]]]


def data_api(
    *actions: str,
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.Response]]]:
    """Parse and authenticate a Data API call, dispatch on its action, answer the envelope;
    an :class:`ExhaustError` becomes ``meta.status: false`` with its message and code."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(handler)
        async def answer(request: web.Request) -> web.Response:
            try:
                if not VERSION.fullmatch(request.match_info["version"]):
                    raise NotFound(
                        f"no API version {request.match_info['version'][:40]!r} (v1, "
                        "v2025.2.LTS, latest, …)"
                    )
                call = await parse_call(request)
                if call.action not in actions:
                    raise MalformedRequest(
                        f"action must be {' or '.join(actions)} here; got {call.action!r}"
                    )
                return json_response(await handler(request, call))
            except ExhaustError as exc:
                meta = {"status": False, "timestamp": now_s(), "message": exc.message,
                        "code": exc.code}  # fmt: skip
                return json_response({"meta": meta, "data": None}, exc.http_status)

        return answer

    return wrap


async def parse_call(request: web.Request) -> Call:
    if request.content_type == "application/x-www-form-urlencoded":  # what the SDKs send
        settings = ctx(request).settings
        raw = await read_limited(request, settings.max_request_bytes, "EXHAUST_MAX_REQUEST_BYTES")
        try:
            fields = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedRequest("the form body is not valid") from exc
    else:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise MalformedRequest("the body must hold security, request and action")
        fields = {
            k: (v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
            for k, v in body.items()
            if v is not None
        }
    action = fields.get("action", "get")
    request_text = fields.get("request")
    payload = json_values.loads(request_text, "request", MalformedRequest) if request_text else {}
    if not isinstance(payload, dict):
        raise MalformedRequest("request must be a JSON object")
    channel = authenticate(request, fields.get("security"), request_text, action)
    return Call(channel, payload, action)


def authenticate(
    request: web.Request, security_text: str | None, request_text: str | None, action: str
) -> str:
    """The caller's channel: the consumer's (signature checked) or the gateway's header."""
    settings = ctx(request).settings
    if not settings.consumers:
        return channel_of(request)
    if not security_text:
        raise AccessDenied("security is required (a signed security packet)")
    security = json_values.loads(security_text, "security", AccessDenied)
    if not isinstance(security, dict) or not all(
        isinstance(security.get(k, ""), str) for k in (*SECURITY_KEYS, "signature")
    ):
        raise AccessDenied("security must be an object of strings")
    consumer = settings.consumers.get(security.get("consumer_key", ""))
    if consumer is None:
        raise AccessDenied("unknown consumer_key")
    channel, secret = consumer
    # The official SDKs' signature (learnosity_sdk.request.Init.generate_signature), checked
    # here because no server-side library exists: HMAC-SHA256 keyed by the consumer's secret
    # over "_"-joined security fields in a fixed order, the request text as sent, the action.
    values = [security[k] for k in SECURITY_KEYS if k in security]
    if request_text:
        values.append(request_text)
    values.append(action)
    digest = hmac.new(secret.encode(), "_".join(values).encode(), hashlib.sha256).hexdigest()
    signature = security.get("signature", "")
    # Bytes: compare_digest refuses a str with non-ASCII characters (a TypeError, once a 500).
    if not hmac.compare_digest(f"$02${digest}".encode(), signature.encode()):
        raise AccessDenied("the signature does not match the request")
    until = check_timestamp(
        security,
        settings.learnosity_signature_skew_seconds,
        settings.learnosity_signature_max_seconds,
    )
    endpoint = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else request.path
    )
    if not request.app[SIGNATURES].admit(signature, endpoint, until, time.time()):
        raise AccessDenied(
            "this signed request was already used on another endpoint; sign each call"
        )
    return channel


def _utc(text: str, what: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y%m%d-%H%M").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise AccessDenied(f"security.{what} must be YYYYMMDD-HHMM (UTC)") from exc


def check_timestamp(security: dict[str, str], skew_seconds: int, max_seconds: int) -> float:
    """Refuse a packet outside its window; return when it stops being valid (epoch s).

    ``timestamp`` may not lie in the future beyond the clock skew. Without ``expires`` the packet
    is valid within ``skew_seconds`` of it; with ``expires``, until then, which may lie at most
    ``max_seconds`` after ``timestamp`` (else a packet could be replayed for years).
    """
    now = dt.datetime.now(dt.UTC)
    stamp = _utc(security.get("timestamp", ""), "timestamp")
    if (stamp - now).total_seconds() > skew_seconds:
        raise AccessDenied("security.timestamp lies in the future (check the client's clock)")
    if "expires" in security:
        expires = _utc(security["expires"], "expires")
        if expires < now:
            raise AccessDenied("the security packet has expired")
        if (expires - stamp).total_seconds() > max_seconds:
            raise AccessDenied(
                f"security.expires may lie at most {max_seconds}s after security.timestamp"
            )
        return expires.timestamp()
    if abs((now - stamp).total_seconds()) > skew_seconds:
        raise AccessDenied(
            "security.timestamp is too far from the server's time (sign each request anew)"
        )
    return stamp.timestamp() + skew_seconds


def dataset_id_of(payload: dict[str, Any]) -> str:
    value = payload.get("dataset_id")
    if not isinstance(value, str):
        raise InvalidConfig("dataset_id is required (a UUID chosen by you)")
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise InvalidConfig(f"dataset_id must be a UUID; got {value[:60]!r}") from exc


def input_key(channel: str, dataset_id: str, n: int) -> str:
    return f"{channel}/inputs/{dataset_id}/{n}.ndjson"


def config_of(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The type's config (``filters`` and ``options`` of the request, merged) and the output
    options: ``options.format`` ``json`` or ``csv`` chooses the files' format."""
    config: dict[str, Any] = {}
    for part in ("filters", "options"):
        value = payload.get(part, {})
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidConfig(f"{part} must be an object")
        config.update(value)
    chosen = config.pop("format", None)
    if chosen is None:
        return config, None
    if not isinstance(chosen, str) or chosen.lower() not in ("json", "csv"):
        raise InvalidConfig("options.format must be json or csv")
    output = {"format": chosen.upper(), "compression": "NONE", "rows_per_file": None,
              "partition_by": None}  # fmt: skip
    return config, output


def dataset_request(call: Call, dataset_id: str, dataset_type: str, inputs: list[str],
                    config: dict[str, Any], output: dict[str, Any] | None,
                    await_until: int | None, submitted_at: int) -> DatasetRequest:  # fmt: skip
    return DatasetRequest(
        output=output,
        request_id=dataset_id,
        tag=dataset_id,
        dataset=dataset_type,
        channel=call.channel,
        requested_by=str(call.request.get("user_id") or "data-api"),
        config=json.dumps(config, sort_keys=True),
        inputs=inputs,
        submitted_at=submitted_at,
        await_input_until=await_until,
    )


@data_api("set", "get")
async def datasets(request: web.Request, call: Call) -> dict[str, Any]:
    if call.action == "get":
        return await retrieve(request, call)
    payload = call.request
    dataset_id = dataset_id_of(payload)
    dataset_type = payload.get("dataset_type")
    if not isinstance(dataset_type, str) or not dataset_type:
        raise InvalidConfig("dataset_type is required")
    count = payload.get("file_count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_FILES:
        raise InvalidConfig(f"file_count must be an integer 0..{MAX_FILES}")
    context = ctx(request)
    read_model, store = context.read_model, context.store
    settings = context.settings
    before = read_model.get_record(call.channel, dataset_id)
    if before is not None and (count == 0 or before["status"] != "AWAITING_INPUT"):
        # A dataset id is used once (Learnosity: "initialise a new dataset_id"); asking again
        # while it waits for its uploads hands out its links again.
        state = WORDS.get(before["status"], "awaiting its uploads")
        raise InvalidConfig(
            f"dataset {dataset_id} was already initialised ({state}); initialise a new dataset_id"
        )
    found = context.catalog.types.get(dataset_type)
    if (
        found is not None
        and count == 0
        and any("inputs" in spec for spec in getattr(found, "source_specs", {}).values())
    ):
        raise InvalidConfig(
            f"{dataset_type} reads uploaded files: file_count must be 1..{MAX_FILES}"
        )
    inputs = [input_key(call.channel, dataset_id, n) for n in range(count)]
    now = now_ms()
    until = now + settings.learnosity_upload_expiry_seconds * 1000 if count else None
    config, output = config_of(payload)
    submission = dataset_request(call, dataset_id, dataset_type, inputs, config, output, until,
                                 now)  # fmt: skip
    _, existing = await accept(context, submission, wait_visible=True)
    if count == 0:
        return envelope({"dataset_id": dataset_id, "dataset_type": dataset_type,
                         "job_reference": dataset_id})  # fmt: skip
    expiry = settings.learnosity_upload_expiry_seconds
    if existing is not None and existing["lease_expires_at"] is not None:
        # Initialised again while waiting: the links live no longer than the job waits.
        expiry = max(1, (existing["lease_expires_at"] - now) // 1000)
    urls = [await store.presign_put(key, expiry) for key in inputs]
    return envelope({"dataset_id": dataset_id, "dataset_type": dataset_type,
                     "input_files": urls})  # fmt: skip


@data_api("set")
async def commence(request: web.Request, call: Call) -> dict[str, Any]:
    dataset_id = dataset_id_of(call.request)
    context = ctx(request)
    read_model, store = context.read_model, context.store
    record = read_model.get_record(call.channel, dataset_id)
    if record is None:
        raise NotFound(f"no dataset {dataset_id} (initialise it first)")
    error = record.get("error") or {}
    if record["status"] == "FAILED" and error.get("code") == "INPUT_EXPIRED":
        raise InvalidConfig(
            "the upload links of this dataset expired before it was commenced; initialise a "
            "new dataset and upload again"
        )
    if record["status"] != "AWAITING_INPUT":
        return envelope({"job_reference": dataset_id})  # already commenced: the same job
    if record["lease_expires_at"] is not None and record["lease_expires_at"] <= now_ms():
        raise InvalidConfig(
            "the upload links of this dataset have expired; initialise a new dataset and "
            "upload again"
        )
    inputs = list(record["inputs"])
    sizes = [await store.size(key) for key in inputs]
    for n, size in enumerate(sizes):
        if size is None:
            raise InputMissing(f"input file {n + 1} of {len(inputs)} was not uploaded")
        if size == 0:
            raise InputMissing(f"input file {n + 1} of {len(inputs)} is empty")
    total, limit = sum(s or 0 for s in sizes), context.settings.max_input_bytes
    if total > limit:
        # A presigned PUT cannot carry a size limit; an oversized upload is refused here,
        # before anything reads it (and the generator checks the sum again before download).
        raise InputsTooLarge(f"the uploads hold {total} bytes; a dataset may hold at most {limit}")
    # The same request without await_input_until: the writer commences the waiting job.
    submission = DatasetRequest(
        request_id=dataset_id,
        tag=record["tag"],
        dataset=record["dataset"],
        channel=call.channel,
        requested_by=record["requested_by"],
        config=record["config"],
        columns=record["columns"],
        filters=record["filters"],
        output=record["output"],
        inputs=inputs,
        submitted_at=record["submitted_at"],
    )
    await accept(context, submission)
    wait = context.settings.submit_visible_wait_seconds  # the next jobs lookup finds it queued
    await context.visible(call.channel, dataset_id, wait, lambda r: r["status"] != "AWAITING_INPUT")
    return envelope({"job_reference": dataset_id})


def _time(value: Any, what: str) -> int:
    """Unix seconds or an ISO 8601 datetime (UTC when it has no offset) as epoch ms, within
    years 1970..9999 (a number past them once overflowed SQLite's integer: a 500)."""
    ms = _parse_time(value, what)
    if not 0 <= ms <= MAX_TIME_MS:
        raise InvalidConfig(f"{what} must lie between 1970 and 9999")
    return ms


MAX_TIME_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


def _parse_time(value: Any, what: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not -MAX_TIME_MS <= value <= MAX_TIME_MS:  # also NaN: the comparison is False
            raise InvalidConfig(f"{what} must lie between 1970 and 9999")
        return int(value * 1000)
    if isinstance(value, str):
        if value.isdigit():
            return int(value[:20]) * 1000
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidConfig(f"{what} must be a Unix time or an ISO 8601 datetime") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return int(parsed.timestamp() * 1000)
    raise InvalidConfig(f"{what} must be a Unix time or an ISO 8601 datetime")


def _stamp(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def job_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference": record["request_id"],
        "type": "reports_datasets",
        "status": WORDS[record["status"]],
        "dt_created": _stamp(record["submitted_at"]),
        "dt_completed": _stamp(record["completed_at"]),
    }


@data_api("get")
async def jobs(request: web.Request, call: Call) -> dict[str, Any]:
    payload = call.request
    read_model, _ = ctx(request).read_model, ctx(request).store
    words = payload.get("status", ["completed"])
    if isinstance(words, str):
        words = [words]
    if not isinstance(words, list) or not words or any(w not in STATES_OF for w in words):
        raise InvalidConfig(f"status must be a list of {', '.join(sorted(STATES_OF))}")
    states = {s for w in words for s in STATES_OF[w]}
    limit = payload.get("limit", MAX_JOBS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_JOBS:
        raise InvalidConfig(f"limit must be 1..{MAX_JOBS}")
    low = _time(payload["mintime"], "mintime") if payload.get("mintime") is not None else None
    high = _time(payload["maxtime"], "maxtime") if payload.get("maxtime") is not None else None

    def wanted(record: dict[str, Any] | None) -> bool:
        return (
            record is not None
            and record["channel"] == call.channel
            and record["status"] in states
            and (low is None or record["submitted_at"] >= low)
            and (high is None or record["submitted_at"] <= high)
        )

    references = payload.get("references")
    found: list[dict[str, Any]] = []
    if references is not None:
        if (
            not isinstance(references, list)
            or not all(isinstance(r, str) for r in references)
            or len(references) > MAX_REFERENCES
        ):
            raise InvalidConfig(f"references must be a list of at most {MAX_REFERENCES} strings")
        for reference in dict.fromkeys(references):
            record = read_model.get_record(call.channel, reference)
            if wanted(record):
                assert record is not None
                found.append(record)
        found.sort(key=lambda r: (r["submitted_at"], r["request_id"]), reverse=True)
    else:  # the channel's jobs, newest first: one indexed query, at most ``limit`` rows
        found = read_model.list_records(
            call.channel, status=tuple(states), limit=limit, submitted_from=low, submitted_to=high
        ).records
    data = [job_view(r) for r in found[:limit]]
    return envelope(data, records=len(data))


async def retrieve(request: web.Request, call: Call) -> dict[str, Any]:
    """The files of a completed dataset, ``limit`` at a time from ``next``."""
    payload = call.request
    dataset_id = dataset_id_of(payload)
    context = ctx(request)
    read_model, store = context.read_model, context.store
    record = read_model.get_record(call.channel, dataset_id)
    if record is None:
        raise NotFound(f"no dataset {dataset_id}")
    limit = payload.get("limit", MAX_RESULTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise InvalidConfig(f"limit must be 1..{MAX_RESULTS}")
    start = payload.get("next", 0)
    try:
        offset = int(start)
    except (TypeError, ValueError) as exc:
        raise InvalidConfig("next must be the value of meta.next of the previous page") from exc
    status = WORDS.get(record["status"], "queued")
    data: dict[str, Any] = {"dataset_id": dataset_id, "dataset_type": record["dataset"],
                            "status": status, "files": []}  # fmt: skip
    if record["status"] != "SUCCESS":
        if record.get("error"):
            data["message"] = record["error"]["message"]
        return envelope(data, records=0)
    everything = own_outputs(record)
    outputs = everything[offset : offset + limit]
    expiry = context.settings.link_expiry_seconds
    for output in outputs:
        url, expires = store.link(output["key"], expiry)
        data["files"].append({
            "name": output["key"].rsplit("/", 1)[-1], "url": url, "rows": output["rows"],
            "bytes": output["bytes"], "sha256": output["sha256"],
            "content_type": output["content_type"], "expires": expires // 1000,
        })  # fmt: skip
    if record.get("manifest_key") and offset == 0:
        data["manifest_url"] = store.link(record["manifest_key"], expiry)[0]
    meta: dict[str, Any] = {"records": len(outputs)}
    if offset + limit < len(everything):
        meta["next"] = str(offset + limit)
    return envelope(data, **meta)


SIGNATURES = web.AppKey("learnosity-signatures", SignatureLedger)


def add_routes(app: web.Application) -> None:
    app[SIGNATURES] = SignatureLedger()
    # Any first segment routes here, so that a wrong version is answered in this envelope.
    app.router.add_post("/{version}/reports/datasets", datasets)
    app.router.add_post("/{version}/jobs/reports/datasets", commence)
    app.router.add_post("/{version}/jobs", jobs)


VERSION_PATTERN = "^(v[0-9][0-9A-Za-z.]*|latest|latest-lts|developer)$"

LRN_META = obj(["status", "timestamp"], status=BOOLEAN, timestamp=INTEGER, records=INTEGER,
               next=STRING, message=STRING, code=STRING)  # fmt: skip

LRN_ENVELOPE = obj(["meta", "data"], meta=LRN_META, data={})

LRN_BODY = obj(security=STRING, request=STRING, action={"enum": ["get", "set"]})


def learnosity_operation(summary: str) -> Schema:
    version = {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "An API version (v1, v2025.2.LTS, latest): accepted, ignored.",
        "schema": {"type": "string", "pattern": VERSION_PATTERN},
    }
    channel = header("X-Channel-ID", "The channel, when no consumers are set.", required=False)
    responses = {"200": answer(LRN_ENVELOPE), **errors(LRN_ENVELOPE)}
    form = "application/x-www-form-urlencoded"
    op = operation(summary, responses, version, channel, body=LRN_BODY, tag="learnosity",
                   media=form)  # fmt: skip
    as_json = obj(security=ANY_OBJECT, request=ANY_OBJECT, action={"enum": ["get", "set"]})
    op["requestBody"]["content"]["application/json"] = {"schema": as_json}
    return op


def openapi_paths(catalog: Catalog) -> dict[str, Schema]:
    """The OpenAPI paths of this profile's routes."""
    paths: dict[str, Schema] = {
        "/{version}/reports/datasets": {"post": learnosity_operation(
            "Initialise (set) or retrieve (get) a dataset (Learnosity-style)")},
        "/{version}/jobs/reports/datasets": {"post": learnosity_operation(
            "Commence a dataset's job (Learnosity-style)")},
        "/{version}/jobs": {"post": learnosity_operation("Look jobs up (Learnosity-style)")},
    }  # fmt: skip
    return paths


PROFILE = Profile("learnosity", add_routes, openapi_paths)
