"""The native API and the operations routes.

* ``GET  /healthz`` liveness; ``GET /readyz`` readiness (503 until ready); ``GET /metrics``.
* ``POST /v1/requests`` submit a request (JSON); 202 with the job id.
* ``GET  /v1/jobs/{request_id}`` one job, with fresh presigned links when SUCCESS.
* ``GET  /v1/jobs?tag=&status=&limit=&cursor=`` the channel's jobs, newest first, paginated.
* ``POST /v1/jobs/{request_id}/cancel`` ask the job's writer to cancel it.
* ``GET  /v1/dataset-types[/{name}]`` the types the caller may request, each with the JSON
  Schema of its ``config``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app.api.edge import (
    authenticated_user,
    caller_of,
    channel_of,
    json_response,
    read_json,
    required_identifiers,
)
from app.api.kernel import HEALTH, METRICS, Profile, accept, ctx, job_view
from app.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    CHANNEL,
    ERROR,
    INTEGER,
    ROLES,
    STRING,
    Schema,
    answer,
    errors,
    job_schema,
    nullable,
    obj,
    operation,
    path,
    query,
    serve,
)
from app.catalog.types import Catalog, DatasetType
from app.clock import now_ms
from app.domain import identifiers
from app.domain.errors import (
    AlreadyFinished,
    InvalidConfig,
    MalformedRequest,
    NotFound,
)
from app.domain.model import JOB_STATES, DatasetRequest, Job
from app.domain.state_machine import retry_request
from app.metrics import CONTENT_TYPE

MAX_LIMIT = 500


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    return web.json_response(health.report(), status=200 if health.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def channel_record(request: web.Request) -> dict[str, Any]:
    """The job named in the path, if it belongs to the caller's channel; else not found."""
    channel = channel_of(request)
    read_model, _ = ctx(request).read_model, ctx(request).store
    record = read_model.get_record(channel, request.match_info["request_id"])
    if record is None:
        raise NotFound(f"no job {request.match_info['request_id']!r} in channel {channel!r}")
    return record


async def get_job(request: web.Request) -> web.Response:
    record = channel_record(request)
    context = ctx(request)
    _, store = context.read_model, context.store
    return json_response(job_view(record, store, context.settings, context.catalog))


async def list_jobs(request: web.Request) -> web.Response:
    channel = channel_of(request)
    context = ctx(request)
    read_model, store = context.read_model, context.store
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


def type_view(dataset_type: DatasetType) -> dict[str, Any]:
    """A dataset type as a caller sees it: what to put in a request's ``config`` and
    ``columns``, and what it writes."""
    return {
        "name": dataset_type.name,
        "description": dataset_type.description,
        "config_schema": dataset_type.parameters_schema(),
        "columns": list(dataset_type.default_columns),
        "encryption": dataset_type.encryption,
        "schedule": dataset_type.schedule,
        "public": dataset_type.public,
    }


def _admitted(request: web.Request) -> list[DatasetType]:
    """The types the caller may request (another channel's own types are not named)."""
    caller = caller_of(request)
    role = ",".join(sorted(caller.roles)) or None
    types = ctx(request).catalog.types.values()
    return sorted((t for t in types if t.admits(caller.channel, role)), key=lambda t: t.name)


async def list_types(request: web.Request) -> web.Response:
    types = [type_view(t) for t in _admitted(request)]
    return json_response({"count": len(types), "dataset_types": types})


async def get_type(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = next((t for t in _admitted(request) if t.name == name), None)
    if found is None:
        known = ", ".join(t.name for t in _admitted(request))
        raise NotFound(f"no dataset type {name[:80]!r} for this channel (available: {known})")
    return json_response(type_view(found))


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
        submitted_at=now_ms(),
    )


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
    if job.terminal:  # nothing to stop: a 202 would promise a change that never comes
        raise AlreadyFinished(
            f"job {job.request_id} is already {job.status}; there is nothing to cancel",
            status=job.status,
        )
    context = ctx(request)
    await context.cancel(job)
    return web.json_response(
        {"request_id": job.request_id, "status": "CANCEL_REQUESTED"}, status=202
    )


async def retry(request: web.Request) -> web.Response:
    """A new attempt of a failed or cancelled job (an expired one is generated again), with its
    own parameters and sealed key: the writer applies it as a repeat of the job."""
    job = Job.from_record(channel_record(request))
    await ctx(request).submit(retry_request(job, now_ms()))
    return web.json_response(
        {"request_id": job.request_id, "status": "RETRY_REQUESTED"}, status=202
    )


def openapi_paths(catalog: Catalog) -> dict[str, Schema]:
    """The OpenAPI paths of this profile's routes."""
    job = job_schema()
    native_errors = errors(ERROR)
    identifier = {"type": "string", "pattern": f"^{identifiers.PATTERN.pattern}$"}
    # Only the types every caller may request: a type limited to some channels or roles is not
    # named to everyone who reads this document (the catalog reports it as unknown to others).
    open_to_all = sorted(
        n for n, t in catalog.types.items() if t.channels is None and t.roles is None
    )
    types = {"type": "string", "enum": open_to_all}
    submission = obj(
        ["tag", "dataset"], tag=identifier, dataset=types, request_id=STRING, requested_by=STRING,
        config=ANY_OBJECT, columns={"type": "array", "items": STRING}, filters=ANY_OBJECT,
        output=ANY_OBJECT, encryption_key=STRING, inputs={"type": "array", "items": STRING},
        labels={"type": "object", "additionalProperties": STRING},
    )  # fmt: skip
    accepted = obj(["request_id", "status"], request_id=STRING, status=STRING,
                   duplicate=BOOLEAN)  # fmt: skip
    listing = obj(["count", "jobs"], count=INTEGER, jobs={"type": "array", "items": job},
                  next_cursor=nullable(STRING))  # fmt: skip
    type_schema = obj(["name", "description", "config_schema", "columns"], name=STRING,
                      description=STRING, config_schema=ANY_OBJECT,
                      columns={"type": "array", "items": STRING}, encryption=STRING,
                      schedule=nullable(STRING), public=BOOLEAN)  # fmt: skip
    type_listing = obj(["count", "dataset_types"], count=INTEGER,
                       dataset_types={"type": "array", "items": type_schema})  # fmt: skip
    paths: dict[str, Schema] = {
        "/healthz": {"get": operation("Liveness", {"200": answer(obj(status=STRING))},
                                      tag="operations")},
        "/readyz": {"get": operation("Readiness (503 until the read model caught up)",
                                     {"200": answer(ANY_OBJECT), "503": answer(ANY_OBJECT)},
                                     tag="operations")},
        "/metrics": {"get": operation("Prometheus metrics", {"200": answer(
            STRING, media="text/plain")}, tag="operations")},
        "/openapi.json": {"get": operation("This document", {"200": answer(ANY_OBJECT)},
                                           tag="operations")},
        "/v1/requests": {"post": operation(
            "Submit a dataset request", {"202": answer(accepted), **native_errors}, CHANNEL,
            ROLES, body=submission)},
        "/v1/jobs": {"get": operation(
            "The channel's jobs, newest first", {"200": answer(listing), **native_errors},
            CHANNEL, query("tag", STRING, "Only this tag"),
            query("status", {"enum": list(JOB_STATES)}, "Only this status"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size"),
            query("cursor", STRING, "next_cursor of the previous page"))},
        "/v1/jobs/{request_id}": {"get": operation(
            "One job, with fresh download links", {"200": answer(job), **native_errors},
            CHANNEL, path("request_id", "The job id"))},
        "/v1/jobs/{request_id}/cancel": {"post": operation(
            "Cancel a job", {"202": answer(accepted), **native_errors}, CHANNEL,
            path("request_id", "The job id"))},
        "/v1/jobs/{request_id}/retry": {"post": operation(
            "Start a failed or cancelled job again (an expired one is generated again)",
            {"202": answer(accepted), **native_errors}, CHANNEL,
            path("request_id", "The job id"))},
        "/v1/dataset-types": {"get": operation(
            "The dataset types this caller may request, with their config's JSON Schema",
            {"200": answer(type_listing), **native_errors}, CHANNEL, ROLES)},
        "/v1/dataset-types/{name}": {"get": operation(
            "One dataset type", {"200": answer(type_schema), **native_errors}, CHANNEL, ROLES,
            path("name", "The type's name"))},
    }  # fmt: skip
    return paths


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", serve)
    app.router.add_post("/v1/requests", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/{request_id}", get_job)
    app.router.add_post("/v1/jobs/{request_id}/cancel", cancel)
    app.router.add_post("/v1/jobs/{request_id}/retry", retry)
    app.router.add_get("/v1/dataset-types", list_types)
    app.router.add_get("/v1/dataset-types/{name}", get_type)


def add_operations(app: web.Application) -> None:
    """The routes every role serves, the API or not."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


PROFILE = Profile("native", add_routes, openapi_paths)
