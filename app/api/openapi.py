"""``GET /openapi.json``: the OpenAPI 3.1 document of every route of every profile.

Each profile contributes the paths of its routes (``Profile.paths``), built from the code's own
vocabulary rather than written apart from it: the job view's schema is derived from the Avro
``JobStatus`` schema (minus the hidden fields), status words from each profile's word table,
columns from the USAspending column list, dataset names from the catalog the worker runs with.
This module holds the shared pieces and assembles the document once per server. A unit test checks
that the document and the application's router hold exactly the same operations, and
schemathesis (tests/integration/test_openapi.py) checks that live answers conform to it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app.api.edge import json_response
from app.api.kernel import HIDDEN, Profile
from app.catalog.types import Catalog
from app.domain import identifiers
from app.domain.model import JOB_STATES
from app.stream.avro import SCHEMA_DIR

Schema = dict[str, Any]


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
    schema["properties"]["manifest_url"] = nullable(STRING)
    schema["properties"]["config"] = ANY_OBJECT
    schema["properties"]["filters"] = nullable(ANY_OBJECT)
    return schema


ERROR = obj(["error"], error=obj(["code", "message"], code=STRING, message=STRING))


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


def document(catalog: Catalog, profiles: list[Profile]) -> Schema:
    """The document of a server running ``profiles`` with ``catalog``."""
    paths: dict[str, Schema] = {}
    for profile in profiles:
        paths.update(profile.paths(catalog))
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


DOCUMENT = web.AppKey("openapi", dict)


async def serve(request: web.Request) -> web.Response:
    return json_response(request.app[DOCUMENT])


__all__ = ["DOCUMENT", "document", "serve"]
