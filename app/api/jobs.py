"""The HTTP API (aiohttp), independent of Faust so it can be tested without a broker.

Routes (native API; the compatibility profiles come later):

* ``GET  /healthz`` liveness; ``GET /readyz`` readiness (503 until ready); ``GET /metrics``.
* ``POST /v1/requests`` submit a request (JSON); 202 with the job id.
* ``GET  /v1/jobs/{request_id}`` one job, with fresh presigned links when SUCCESS.
* ``GET  /v1/jobs?tag=&status=&limit=&cursor=`` the channel's jobs, newest first, paginated.
* ``POST /v1/jobs/{request_id}/cancel`` ask the job's writer to cancel it.

Every ``/v1`` call needs ``X-Channel-ID``; a job of another channel is answered as not found,
so its existence does not leak. Errors are ``{"error": {"code", "message"}}`` with the codes of
:mod:`app.domain.errors`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from app.api.edge import (
    SETTINGS,
    authenticated_user,
    caller_of,
    channel_of,
    json_response,
    read_json,
    required_identifiers,
)
from app.api.fills import FillContext, add_routes
from app.catalog.types import Catalog
from app.domain import dedup, identifiers, object_keys
from app.domain.errors import (
    Busy,
    ExhaustError,
    InvalidConfig,
    InvalidEncryptionKey,
    MalformedRequest,
    NotFound,
    RequestConflict,
    TransientError,
)
from app.domain.model import JOB_STATES, PUBLIC_PREFIX, DatasetRequest, Job
from app.engine.storage import ObjectStore
from app.health import Health
from app.metrics import CONTENT_TYPE, Metrics
from app.sealing import Sealer
from app.settings import Settings
from app.stream.read_model import ReadModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Visible = Callable[
    [str, str, float, Callable[[dict[str, Any]], bool] | None], Awaitable[dict[str, Any] | None]
]
MAX_LIMIT = 500
MAX_KEY_CHARS = 1024  # of an encryption key (a zip password)
HIDDEN = ("fingerprint", "partition", "lease_expires_at", "client_id", "sealed_key")


@dataclass
class ApiContext:
    settings: Settings
    health: Health
    metrics: Metrics
    catalog: Catalog | None = None
    read_model: ReadModel | None = None
    store: ObjectStore | None = None
    submit: Callable[[DatasetRequest], Awaitable[None]] | None = None
    cancel: Callable[[Job], Awaitable[None]] | None = None
    sealer: Sealer | None = None
    # The job's record once the read model shows it (None after the wait): see accept().
    visible: Visible | None = None


CONTEXT = web.AppKey("context", ApiContext)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every :class:`ExhaustError` into its JSON envelope and HTTP status."""
    try:
        return await handler(request)
    except ExhaustError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        return web.json_response({"error": exc.to_dict()}, status=exc.http_status, headers=headers)
    except web.HTTPException as exc:  # aiohttp's own: no such route, method not allowed
        if exc.status < 400:
            raise
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "BODY_TOO_LARGE"}.get(
            exc.status, "HTTP_ERROR"
        )
        body = {"error": {"code": code, "message": exc.reason}}
        return web.json_response(body, status=exc.status, headers=_allow(exc))


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def ready_parts(context: ApiContext) -> tuple[ReadModel, ObjectStore]:
    if context.read_model is None or context.store is None:
        raise TransientError("worker is still starting")
    return context.read_model, context.store


def job_view(
    record: dict[str, Any], store: ObjectStore, settings: Settings, catalog: Catalog | None = None
) -> dict[str, Any]:
    """The public JSON of a job (a ``JobStatus`` record); SUCCESS jobs get download links
    (:func:`download_links`)."""
    view = {k: v for k, v in record.items() if k not in HIDDEN}
    view["download_urls"] = []
    if record["status"] == "SUCCESS" and record["outputs"]:
        view["download_urls"], view["links_expire_at"] = download_links(
            record, store, settings, catalog
        )
    return view


def download_links(
    record: dict[str, Any], store: ObjectStore, settings: Settings, catalog: Catalog | None
) -> tuple[list[str], int | None]:
    """The links of a SUCCESS job's outputs and their expiry (epoch ms): presigned at read
    time, or plain links without expiry when the type is public (see :func:`public_link`).
    Every profile hands out links through here."""
    keys = [o["key"] for o in own_outputs(record)]
    public = is_public(record["dataset"], settings, catalog)
    urls, expiries = [], []
    for key in keys:
        if public and key.startswith(PUBLIC_PREFIX):
            urls.append(public_link(key, settings))
        else:  # private, or public outputs written before they had their own prefix
            url, expires = store.link(key, settings.link_expiry_seconds)
            urls.append(url)
            expiries.append(expires)
    return urls, min(expiries) if expiries else None


def own_outputs(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The outputs of a job record that lie under its own attempt's prefix: a record is read
    from a topic, and only its own files may ever be linked. Every profile lists these."""
    prefixes = object_keys.attempt_prefixes(record["channel"], record["dataset"],
                                            record["request_id"], record["attempt"])  # fmt: skip
    return [
        o for o in record["outputs"] if any(object_keys.is_output_of(o["key"], p) for p in prefixes)
    ]


def is_public(dataset: str, settings: Settings, catalog: Catalog | None) -> bool:
    """Outputs of a type marked ``public`` get plain links, when a public base URL is set."""
    found = catalog.types.get(dataset) if catalog is not None else None
    return bool(settings.public_base_url and found is not None and found.public)


def public_link(key: str, settings: Settings) -> str:
    """A plain link under ``settings.public_base_url``, which serves the bucket's ``public/``
    prefix and nothing else (docs/security.md: how to scope the CDN or bucket policy)."""
    assert settings.public_base_url is not None and key.startswith(PUBLIC_PREFIX)
    path = quote(key[len(PUBLIC_PREFIX) :], safe="/~")
    return f"{settings.public_base_url.rstrip('/')}/{path}"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    health = ctx(request).health
    return web.json_response(health.report(), status=200 if health.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = ctx(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def channel_record(request: web.Request) -> dict[str, Any]:
    """The job named in the path, if it belongs to the caller's channel; else not found."""
    channel = channel_of(request)
    read_model, _ = ready_parts(ctx(request))
    record = read_model.get_record(channel, request.match_info["request_id"])
    if record is None:
        raise NotFound(f"no job {request.match_info['request_id']!r} in channel {channel!r}")
    return record


async def get_job(request: web.Request) -> web.Response:
    record = channel_record(request)
    context = ctx(request)
    _, store = ready_parts(context)
    return json_response(job_view(record, store, context.settings, context.catalog))


async def list_jobs(request: web.Request) -> web.Response:
    channel = channel_of(request)
    context = ctx(request)
    read_model, store = ready_parts(context)
    query = request.query
    status = query.get("status")
    if status is not None and status not in JOB_STATES:
        raise InvalidConfig(f"status must be one of {', '.join(JOB_STATES)}")
    try:
        limit = int(query.get("limit", "50"))
    except ValueError as exc:
        raise InvalidConfig("limit must be an integer") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidConfig(f"limit must be 1..{MAX_LIMIT}")
    page = read_model.list_records(
        channel, tag=query.get("tag"), status=status, limit=limit, cursor=query.get("cursor")
    )
    jobs = [job_view(r, store, context.settings, context.catalog) for r in page.records]
    return json_response({"count": len(jobs), "jobs": jobs, "next_cursor": page.next_cursor})


def parse_submission(body: Any, channel: str, user: str | None) -> DatasetRequest:
    """A JSON submission as a :class:`DatasetRequest`; JSON objects become JSON text fields.

    Shape errors (wrong JSON types) are :class:`MalformedRequest`; identifiers outside the one
    pattern are :class:`~app.domain.errors.InvalidIdentifier`.
    """
    required_identifiers(body, "tag", "dataset")
    request_id = body.get("request_id")
    if request_id is not None:
        identifiers.check_client_id("request_id", request_id)
    config = body.get("config", {})
    filters = body.get("filters")
    if not isinstance(config, dict):
        raise MalformedRequest("config must be a JSON object")
    columns = body.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
    ):
        raise MalformedRequest("columns must be a list of strings")
    for name in ("inputs",):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise MalformedRequest(f"{name} must be a list of strings")
    labels = body.get("labels")
    if labels is not None and not isinstance(labels, dict):
        raise MalformedRequest("labels must be a JSON object")
    encryption_key = body.get("encryption_key")
    if encryption_key is not None and not isinstance(encryption_key, str):
        raise MalformedRequest("encryption_key must be a string")
    output = body.get("output")
    if output is not None:
        if not isinstance(output, dict):
            raise MalformedRequest("output must be a JSON object")
        output = {
            "format": str(output.get("format", "CSV")).upper(),
            "compression": str(output.get("compression", "NONE")).upper(),
            "rows_per_file": output.get("rows_per_file"),
            "partition_by": output.get("partition_by"),
        }
    return DatasetRequest(
        request_id=request_id,
        tag=body["tag"],
        dataset=body["dataset"],
        channel=channel,
        requested_by=identifiers.check(
            "requested_by", body.get("requested_by") or user or "anonymous"
        ),
        config=json.dumps(config, sort_keys=True),
        columns=columns,
        filters=json.dumps(filters, sort_keys=True) if filters is not None else None,
        output=output,
        encryption_key=encryption_key,
        inputs=list(body.get("inputs") or []),
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        submitted_at=int(time.time() * 1000),
    )


def at_the_door(
    settings: Settings, catalog: Catalog, dataset_request: DatasetRequest, roles: frozenset[str]
) -> DatasetRequest:
    """Every check of a submission before it is published, for every profile; the request with
    the caller's roles in ``labels.role`` and its inputs de-duplicated. Raises the refusal."""
    channel = dataset_request.channel
    if "role" in dataset_request.labels:
        raise InvalidConfig("labels.role is not the client's to set: roles come from the API key")
    labels = dict(dataset_request.labels)
    if roles:
        labels["role"] = ",".join(sorted(roles))
    inputs = object_keys.check_inputs(channel, dataset_request.inputs, settings.max_inputs)
    dataset_request = dataclasses.replace(dataset_request, labels=labels, inputs=inputs)
    config = json.loads(dataset_request.config)
    source = config.get("source") if isinstance(config, dict) else None
    if isinstance(source, str) and not identifiers.is_valid(source):  # not a dataset code
        object_keys.check_under("config.source", source, object_keys.input_prefix(channel))
        if source not in inputs:
            raise InvalidConfig("config.source names an input key that is not in inputs")
    key = dataset_request.encryption_key
    shortest = settings.min_encryption_key_chars
    if key is not None and not shortest <= len(key) <= MAX_KEY_CHARS:
        # An empty password would make a plain zip of a type that promises an encrypted one.
        raise InvalidEncryptionKey(
            f"encryption_key must be {shortest} to {MAX_KEY_CHARS} characters; got {len(key)}"
        )
    declared = catalog.types.get(dataset_request.dataset)
    if declared is not None and declared.schedule is not None:
        # Standard datasets are made by the scheduler, one job per channel and day under an id
        # derived from both; a client request could otherwise take that id first.
        raise InvalidConfig(
            f"{dataset_request.dataset} is produced {declared.schedule} by the service; read its "
            "files with GET /dataset/get/{datasetId}"
        )
    catalog.check(
        dataset_request.dataset,
        channel,
        dataset_request.labels,
        config,
        dataset_request.columns,
        dataset_request.filters,
        dataset_request.output,
        key is not None,
    )
    return dataset_request


async def accept(
    context: ApiContext,
    dataset_request: DatasetRequest,
    *,
    wait_visible: bool = False,
    roles: frozenset[str] = frozenset(),
) -> tuple[str, dict[str, Any] | None]:
    """Check, seal and publish one submission for every profile; the job id and the job's
    current record when the same request is already known in the caller's channel.

    Refuses early what the writer would refuse anyway (unknown dataset, bad config, a client
    id reused with other parameters); the writer stays the one that decides. With
    ``wait_visible``, a new job's record is awaited in the read model (up to
    ``settings.submit_visible_wait_seconds``) and returned, for the profiles whose answer
    promises that the next read finds the job (USAspending's status right after its POST).
    ``roles`` are the caller's, from its authenticated identity; they are written into the
    request's ``labels.role``, which a client may not set itself.
    """
    read_model, _ = ready_parts(context)
    if context.submit is None or context.catalog is None:
        raise NotFound("this worker does not accept submissions")
    channel = dataset_request.channel
    dataset_request = at_the_door(context.settings, context.catalog, dataset_request, roles)
    if dataset_request.encryption_key is not None and context.sealer is not None:
        # Sealed exactly as sent (a sealed-looking token too): the API never passes one through.
        sealed = context.sealer.seal(dataset_request.encryption_key)
        dataset_request = dataclasses.replace(dataset_request, encryption_key=sealed)
    request_id, client_id = dedup.request_id_for(
        dataset_request, context.settings.dedup_window_seconds
    )
    # Ids are per channel: only the caller's own job of this id can conflict or answer.
    existing = read_model.get(channel, request_id)
    if (
        existing is not None
        and client_id
        and existing.fingerprint != dedup.fingerprint(dataset_request)
    ):
        raise RequestConflict(
            f"request_id {request_id!r} is already used by another request of this channel"
        )
    await context.submit(dataset_request)
    if existing is not None:
        return request_id, read_model.get_record(channel, request_id)
    if wait_visible and context.visible is not None:
        wait = context.settings.submit_visible_wait_seconds
        record = await context.visible(channel, request_id, wait, None)
        if record is not None:
            return request_id, record
    return request_id, None


async def submit(request: web.Request) -> web.Response:
    caller = caller_of(request)
    context = ctx(request)
    body = await read_json(request)
    dataset_request = parse_submission(body, caller.channel, authenticated_user(request))
    request_id, existing = await accept(context, dataset_request, roles=caller.roles)
    payload: dict[str, Any] = {"request_id": request_id, "status": "SUBMITTED"}
    if existing is not None:
        payload = {"request_id": request_id, "status": existing["status"], "duplicate": True}
    return web.json_response(payload, status=202)


async def cancel(request: web.Request) -> web.Response:
    job = Job.from_record(channel_record(request))
    context = ctx(request)
    if context.cancel is None:
        raise NotFound("this worker does not accept cancellations")
    await context.cancel(job)
    return web.json_response(
        {"request_id": job.request_id, "status": "CANCEL_REQUESTED"}, status=202
    )


def create_web_app(
    context: ApiContext, *, api: bool = True, fills: FillContext | None = None
) -> web.Application:
    """The HTTP app; ``api=False`` serves only health and metrics (processor, generator);
    ``fills`` adds the dataset-fill profile and the catalog routes."""
    app = web.Application(middlewares=[error_middleware])
    app[CONTEXT] = context
    app[SETTINGS] = context.settings
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if not api:
        return app
    app.router.add_post("/v1/requests", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/{request_id}", get_job)
    app.router.add_post("/v1/jobs/{request_id}/cancel", cancel)
    if fills is not None:
        add_routes(app, fills)
    from app.api import learnosity, openapi, sunbird, usaspending  # they use this module

    app.router.add_get("/openapi.json", openapi.serve)
    sunbird.add_routes(app)
    usaspending.add_routes(app)
    learnosity.add_routes(app)
    return app
