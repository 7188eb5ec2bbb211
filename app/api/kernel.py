"""What every HTTP profile shares: the API's parts (:class:`ApiContext`), the error envelope,
the one path of a submission into the service (:func:`accept`) and the links to a job's files.

Every ``/v1`` call needs ``X-Channel-ID``; a job of another channel is answered as not found,
so its existence does not leak. Errors are ``{"error": {"code", "message"}}`` with the codes of
:mod:`app.domain.errors` (each profile may wrap them in its own envelope).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from app.catalog.types import Catalog
from app.domain import dedup, identifiers, object_keys
from app.domain.errors import (
    Busy,
    ExhaustError,
    InvalidConfig,
    InvalidEncryptionKey,
    RequestConflict,
)
from app.domain.model import PUBLIC_PREFIX, DatasetRequest, Job
from app.engine.storage import ObjectStore
from app.health import Health
from app.metrics import Metrics
from app.sealing import Sealer
from app.settings import Settings
from app.stream.read_model import ReadModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


Visible = Callable[
    [str, str, float, Callable[[dict[str, Any]], bool] | None], Awaitable[dict[str, Any] | None]
]


MAX_KEY_CHARS = 1024  # of an encryption key (a zip password)


HIDDEN = (
    "fingerprint", "partition", "lease_expires_at", "client_id", "sealed_key", "request_offset",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The parts every API route uses, built once and whole before the server starts
    (:func:`app.service.build`): nothing is filled in later, so no route checks for a part."""

    settings: Settings
    health: Health
    metrics: Metrics
    catalog: Catalog
    read_model: ReadModel
    store: ObjectStore
    submit: Callable[[DatasetRequest], Awaitable[None]]
    cancel: Callable[[Job], Awaitable[None]]
    sealer: Sealer
    # The job's record once the read model shows it (None after the wait): see accept().
    visible: Visible


CONTEXT = web.AppKey("context", ApiContext)
HEALTH = web.AppKey("health", Health)  # set on every server, the API or not
METRICS = web.AppKey("metrics", Metrics)


@dataclass(frozen=True, slots=True)
class Profile:
    """What one HTTP profile (the native API, dataset fill, Sunbird, USAspending, Learnosity)
    contributes to a server: its routes, whose handlers find the parts in ``app[CONTEXT]``,
    and the OpenAPI paths of those routes for the catalog the server runs with."""

    name: str
    add_routes: Callable[[web.Application], None]
    paths: Callable[[Catalog], dict[str, Any]]


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


def job_view(
    record: dict[str, Any], store: ObjectStore, settings: Settings, catalog: Catalog
) -> dict[str, Any]:
    """The public JSON of a job (a ``JobStatus`` record); SUCCESS jobs get download links
    (:func:`download_links`)."""
    view = {k: v for k, v in record.items() if k not in HIDDEN}
    # The request's JSON parameters as JSON (the record carries them as canonical text).
    view["config"] = _parsed(record.get("config")) or {}
    view["filters"] = _parsed(record.get("filters"))
    if record.get("has_encryption_key") and isinstance(record.get("output"), dict):
        view["output"] = {**record["output"], "compression": "ZIP"}  # a key always zips (AES)
    view["download_urls"] = []
    view["manifest_url"] = None
    if record["status"] == "SUCCESS" and record["outputs"]:
        view["download_urls"], view["links_expire_at"] = download_links(
            record, store, settings, catalog
        )
        manifest = record.get("manifest_key")
        if manifest and _own_key(record, manifest):
            view["manifest_url"], _ = store.link(manifest, settings.link_expiry_seconds)
    return view


def _parsed(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:  # written by an older version as plain text: shown as it is
        return text


def _own_key(record: dict[str, Any], key: str) -> bool:
    prefixes = object_keys.attempt_prefixes(record["channel"], record["dataset"],
                                            record["request_id"], record["attempt"])  # fmt: skip
    return any(object_keys.is_output_of(key, p) for p in prefixes)


def download_links(
    record: dict[str, Any], store: ObjectStore, settings: Settings, catalog: Catalog
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
    return [o for o in record["outputs"] if _own_key(record, o["key"])]


def is_public(dataset: str, settings: Settings, catalog: Catalog) -> bool:
    """Outputs of a type marked ``public`` get plain links, when a public base URL is set."""
    found = catalog.types.get(dataset)
    return bool(settings.public_base_url and found is not None and found.public)


def public_link(key: str, settings: Settings) -> str:
    """A plain link under ``settings.public_base_url``, which serves the bucket's ``public/``
    prefix and nothing else (docs/security.md: how to scope the CDN or bucket policy)."""
    assert settings.public_base_url is not None and key.startswith(PUBLIC_PREFIX)
    path = quote(key[len(PUBLIC_PREFIX) :], safe="/~")
    return f"{settings.public_base_url.rstrip('/')}/{path}"


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
    read_model = context.read_model
    channel = dataset_request.channel
    dataset_request = at_the_door(context.settings, context.catalog, dataset_request, roles)
    if dataset_request.encryption_key is not None:
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
    if wait_visible:
        wait = context.settings.submit_visible_wait_seconds
        record = await context.visible(channel, request_id, wait, None)
        if record is not None:
            return request_id, record
    return request_id, None
