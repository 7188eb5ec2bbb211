"""``GET /openapi.json``: the OpenAPI 3.1 document of every route of every profile.

Built here from the code's own vocabulary rather than written apart from it: the job view's
schema is derived from the Avro ``JobStatus`` schema (minus the hidden fields), status words
from each profile's word table, columns from the USAspending column list. A unit test checks
that the document and the application's router hold exactly the same operations, and
schemathesis (tests/integration/test_openapi.py) checks that live answers conform to it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aiohttp import web

from app.api import sunbird, usaspending
from app.api.edge import json_response
from app.catalog.loader import default_catalog
from app.domain import identifiers
from app.domain.managed_datasets import FILE_FORMATS
from app.domain.model import JOB_STATES
from app.domain.usaspending import BY_TYPE, DOWNLOADS
from app.stream.avro import SCHEMA_DIR

Schema = dict[str, Any]
VERSION_PATTERN = "^(v[0-9][0-9A-Za-z.]*|latest|latest-lts|developer)$"
HIDDEN = ("fingerprint", "partition", "lease_expires_at", "client_id", "sealed_key")


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: list[str] | None = None, **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}


def avro_to_schema(node: Any, named: dict[str, Schema]) -> Schema:
    """JSON Schema of an Avro type (records, enums, arrays, maps, unions with null)."""
    if isinstance(node, list):
        branches = [avro_to_schema(b, named) for b in node if b != "null"]
        one = branches[0] if len(branches) == 1 else {"anyOf": branches}
        return nullable(one) if "null" in node else one
    if isinstance(node, str):
        primitive = {"string": STRING, "long": INTEGER, "int": INTEGER, "double": NUMBER,
                     "float": NUMBER, "boolean": BOOLEAN, "bytes": STRING}  # fmt: skip
        return dict(primitive.get(node) or named[node])
    kind = node["type"]
    if kind == "record":
        schema = obj(
            [f["name"] for f in node["fields"] if "default" not in f],
            **{f["name"]: avro_to_schema(f["type"], named) for f in node["fields"]},
        )
        named[node["name"]] = schema
        return schema
    if kind == "enum":
        named[node["name"]] = {"type": "string", "enum": list(node["symbols"])}
        return named[node["name"]]
    if kind == "array":
        return {"type": "array", "items": avro_to_schema(node["items"], named)}
    if kind == "map":
        return {"type": "object", "additionalProperties": avro_to_schema(node["values"], named)}
    return avro_to_schema(kind, named)


def job_schema() -> Schema:
    raw = json.loads((SCHEMA_DIR / "JobStatus.avsc").read_text())
    schema = avro_to_schema(raw, {})
    for name in HIDDEN:
        schema["properties"].pop(name, None)
    schema["required"] = [r for r in schema.get("required", []) if r not in HIDDEN]
    schema["properties"]["status"] = {"type": "string", "enum": list(JOB_STATES)}
    schema["properties"]["download_urls"] = {"type": "array", "items": STRING}
    schema["properties"]["links_expire_at"] = nullable(INTEGER)
    return schema


ERROR = obj(["error"], error=obj(["code", "message"], code=STRING, message=STRING))
SUNBIRD_PARAMS = obj(["resmsgid", "status"], resmsgid=STRING, msgid=nullable(STRING),
                     status={"enum": ["successful", "failed"]}, err=STRING, errmsg=STRING,
                     client_key={"type": "null"})  # fmt: skip
SUNBIRD_JOB = obj(
    ["requestId", "tag", "dataset", "requestedBy", "requestedChannel", "status", "lastUpdated",
     "datasetConfig", "downloadUrls", "expiresAt", "jobStats", "attempts"],
    requestId=STRING, tag=STRING, dataset=STRING, requestedBy=STRING, requestedChannel=STRING,
    status={"enum": sorted(set(sunbird.WORDS.values()))}, lastUpdated=INTEGER,
    datasetConfig=ANY_OBJECT, downloadUrls={"type": "array", "items": STRING},
    expiresAt=INTEGER, attempts=INTEGER, statusMessage=STRING,
    jobStats=obj(["dtJobSubmitted"], dtJobSubmitted=INTEGER, dtJobCompleted=nullable(INTEGER),
                 executionTime=nullable(INTEGER)),
)  # fmt: skip


def sunbird_envelope(result: Schema) -> Schema:
    return obj(["id", "ver", "ts", "params", "responseCode", "result"], id=STRING, ver=STRING,
               ts=STRING, params=SUNBIRD_PARAMS, responseCode=STRING,
               result=nullable(result))  # fmt: skip


STANDARD_FILES = obj(
    files={"type": "array", "items": STRING},
    periodWiseFiles={"type": "object", "additionalProperties": {"type": "array", "items": STRING}},
    expiresAt=INTEGER, message=STRING,
)  # fmt: skip
USA_DETAIL = obj(["detail"], detail=STRING, code=STRING)
USA_STATUS = obj(
    ["status", "total_rows", "file_name", "total_size", "total_columns", "message", "url",
     "seconds_elapsed"],
    status={"enum": sorted(set(usaspending.WORDS.values()))}, total_rows=nullable(INTEGER),
    file_name=STRING, total_size=nullable(NUMBER), total_columns=nullable(INTEGER),
    message=nullable(STRING), url=STRING, seconds_elapsed=nullable(STRING), file_url=STRING,
    status_url=STRING, download_request={"type": "object"},
)  # fmt: skip
LRN_META = obj(["status", "timestamp"], status=BOOLEAN, timestamp=INTEGER, records=INTEGER,
               next=STRING, message=STRING, code=STRING)  # fmt: skip
LRN_ENVELOPE = obj(["meta", "data"], meta=LRN_META, data={})
LRN_BODY = obj(security=STRING, request=STRING, action={"enum": ["get", "set"]})


def answer(schema: Schema, description: str = "OK", media: str = "application/json") -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def errors(schema: Schema) -> Schema:
    return {"default": answer(schema, "an error, in the profile's envelope")}


def header(name: str, description: str, required: bool = True) -> Schema:
    pattern = f"^{identifiers.PATTERN.pattern}$"
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


CHANNEL = header("X-Channel-ID", "The caller's channel (tenant), set by a trusted gateway.")
ROLES = {
    "name": "X-Exhaust-Roles",
    "in": "header",
    "required": False,
    "description": "The caller's roles, comma-separated, set by a trusted gateway when no API "
    "keys are configured (with API keys, the key's roles; a body never names roles).",
    "schema": {"type": "string"},
}


def path(name: str, description: str) -> Schema:
    pattern = f"^{identifiers.PATTERN.pattern}$"
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": pattern}}  # fmt: skip


def query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}  # fmt: skip


def operation(summary: str, responses: Schema, *parameters: Schema, body: Schema | None = None,
              tag: str = "native", media: str = "application/json") -> Schema:  # fmt: skip
    op: Schema = {"summary": summary, "tags": [tag], "parameters": list(parameters),
                  "responses": responses}  # fmt: skip
    if body is not None:
        op["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    return op


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


def standard_files(summary: str, dataset: str, public: bool = False) -> Schema:
    """Sunbird's two listings of standard datasets: the same answer; the public one also takes
    ``date`` and ``date_range``."""
    envelope = sunbird_envelope(STANDARD_FILES)
    day = {"type": "string", "format": "date"}
    extra = (
        [
            query("date", day, "One day (instead of from and to)"),
            query(
                "date_range",
                {"enum": list(sunbird.INTERVALS)},
                "A named range up to today (before date, from and to)",
            ),
        ]
        if public
        else []
    )
    return operation(summary, {"200": answer(envelope), **errors(envelope)}, CHANNEL,
                     path("datasetId", dataset), query("from", day, "First day"),
                     query("to", day, "Last day"),
                     query("since", day, "First day (instead of from)"), *extra,
                     tag="sunbird")  # fmt: skip


@cache
def document() -> Schema:
    job = job_schema()
    native_errors = errors(ERROR)
    identifier = {"type": "string", "pattern": f"^{identifiers.PATTERN.pattern}$"}
    types = {"type": "string", "enum": sorted(default_catalog().types)}
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
    dataset = obj(["code"], code=STRING, version=INTEGER, rows=INTEGER, bytes=INTEGER,
                  columns={"type": "array", "items": ANY_OBJECT})  # fmt: skip
    fill_answer = obj(["status"], status=STRING)
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
        "/dataset-fill": {"post": operation(
            "Fill a managed dataset (seed 003)",
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
        "/dataset/v1/request/submit": {"post": operation(
            "Submit an on-demand exhaust (Sunbird)",
            {"200": answer(sunbird_envelope(SUNBIRD_JOB)),
             **errors(sunbird_envelope(SUNBIRD_JOB))}, CHANNEL,
            header("X-Authenticated-Userid", "The requester", required=False),
            body=obj(["request"], id=STRING, ver=STRING, ts=STRING,
                     params=obj(msgid=STRING), request=obj(
                         ["tag", "dataset", "datasetConfig"], tag=STRING, dataset=STRING,
                         requestedBy=STRING, encryptionKey=STRING, datasetConfig=ANY_OBJECT)),
            tag="sunbird")},
        "/dataset/v1/request/read/{tag}": {"get": operation(
            "One request (Sunbird)", {"200": answer(sunbird_envelope(SUNBIRD_JOB)),
                                      **errors(sunbird_envelope(SUNBIRD_JOB))},
            CHANNEL, path("tag", "The request's tag"),
            query("requestId", STRING, "The request id", required=True), tag="sunbird")},
        "/dataset/v1/request/list/{tag}": {"get": operation(
            "A tag's requests, newest first (Sunbird)",
            {"200": answer(sunbird_envelope(obj(["count", "jobs"], count=INTEGER, jobs={
                "type": "array", "items": SUNBIRD_JOB}))),
             **errors(sunbird_envelope(ANY_OBJECT))},
            CHANNEL, path("tag", "The tag"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "How many"),
            query("status", {"enum": sorted(sunbird.STATES_OF)}, "Only this status"),
            tag="sunbird")},
        "/dataset/get/{datasetId}": {"get": standard_files(
            "A standard dataset's files by day (Sunbird)",
            "summary-rollup or summary-channel-exhaust")},
        "/public/dataset/get/{datasetId}": {"get": standard_files(
            "A public dataset's files by day, unauthenticated (Sunbird)",
            "A public standard dataset", public=True)},
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
        "/{version}/reports/datasets": {"post": learnosity_operation(
            "Initialise (set) or retrieve (get) a dataset (Learnosity-style)")},
        "/{version}/jobs/reports/datasets": {"post": learnosity_operation(
            "Commence a dataset's job (Learnosity-style)")},
        "/{version}/jobs": {"post": learnosity_operation("Look jobs up (Learnosity-style)")},
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
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Exhaust",
            "version": "1",
            "description": "Dataset requests in, generated datasets in object storage out: the "
            "native API and the compatibility profiles (Sunbird, USAspending, Learnosity-style, "
            "dataset fill). With EXHAUST_API_KEYS set, calls need Authorization: Bearer <key> "
            "(or X-API-Key) and act for the key's channel.",
        },
        "components": {"securitySchemes": {
            "channel": {"type": "apiKey", "in": "header", "name": "X-Channel-ID"},
            "apiKey": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }  # fmt: skip


async def serve(request: web.Request) -> web.Response:
    return json_response(document())


__all__ = ["document", "serve"]
