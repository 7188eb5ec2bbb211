"""What every HTTP profile shares: who the caller is (channel, API key), body limits, body
checks, compact JSON answers."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from app.domain import identifiers, json_values
from app.domain.errors import AccessDenied, BodyTooLarge, MalformedRequest
from app.settings import Settings

SETTINGS = web.AppKey("settings", Settings)


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a channel and the roles that gate dataset types. Never from the body."""

    channel: str
    roles: frozenset[str] = frozenset()


def channel_of(request: web.Request, *, public: bool = False, profile: str | None = None) -> str:
    """The caller's channel (see :func:`caller_of`)."""
    return caller_of(request, public=public, profile=profile).channel


def caller_of(request: web.Request, *, public: bool = False, profile: str | None = None) -> Caller:
    """The caller's channel and roles.

    Without ``EXHAUST_API_KEYS``: ``X-Channel-ID`` and ``X-Exhaust-Roles`` (comma-separated),
    set by a trusted gateway. With it: the channel and roles of the request's API key
    (``Authorization: Bearer <key>`` or ``X-API-Key``); an ``X-Channel-ID`` that names another
    channel is refused, ``X-Exhaust-Roles`` is ignored. ``public`` routes (Sunbird's public
    datasets) take the channel header alone, keys or not, and no roles.
    """
    header = request.headers.get("X-Channel-ID", "")
    keys = settings_of(request).api_key_channels if SETTINGS in request.app else {}
    if keys and not public:
        given = request.headers.get("X-API-Key", "")
        authorization = request.headers.get("Authorization", "")
        if not given and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not given:
            raise AccessDenied("an API key is required (Authorization: Bearer <key>, or X-API-Key)")
        found = next(
            (a for k, a in keys.items() if hmac.compare_digest(k.encode(), given.encode())), None
        )
        if found is None:
            raise AccessDenied("unknown API key")
        if header and header != found.channel:
            raise AccessDenied("X-Channel-ID names another channel than the API key's")
        return Caller(found.channel, found.roles)
    if not header:
        anonymous = settings_of(request).anonymous_channels if SETTINGS in request.app else {}
        if profile is not None and profile in anonymous:
            return Caller(anonymous[profile])
        raise AccessDenied("X-Channel-ID header is required")
    channel = identifiers.check("X-Channel-ID", header)
    if public:
        return Caller(channel)
    roles = [r.strip() for r in request.headers.get("X-Exhaust-Roles", "").split(",") if r.strip()]
    return Caller(channel, frozenset(identifiers.check("X-Exhaust-Roles", r) for r in roles))


def authenticated_user(request: web.Request) -> str | None:
    """``X-Authenticated-Userid`` of a trusted gateway, checked by the identifier rule (it is
    stored as the job's ``requested_by`` and hashed into Sunbird's request ids)."""
    user = request.headers.get("X-Authenticated-Userid")
    return identifiers.check("X-Authenticated-Userid", user) if user else None


async def read_limited(request: web.Request, limit: int, setting: str, advice: str = "") -> bytes:
    """The body, refused (``BodyTooLarge``, 413) as soon as it passes ``limit`` bytes, before
    the rest is read; a declared Content-Length over the limit is refused unread."""

    def too_large(size: int) -> BodyTooLarge:
        return BodyTooLarge(f"request body of {size}+ bytes; at most {limit} ({setting}){advice}")

    if request.content_length is not None and request.content_length > limit:
        raise too_large(request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request) -> Any:
    """The JSON body of an API call, at most ``EXHAUST_MAX_REQUEST_BYTES``."""
    body = await read_limited(
        request, settings_of(request).max_request_bytes, "EXHAUST_MAX_REQUEST_BYTES"
    )
    return json_values.loads(body, "body", MalformedRequest)


def required_identifiers(body: Any, *names: str) -> None:
    """``body`` is a JSON object whose ``names`` are strings in the one identifier pattern."""
    if not isinstance(body, dict):
        raise MalformedRequest("body must be a JSON object")
    for name in names:
        if not isinstance(body.get(name), str):
            raise MalformedRequest(f"{name} is required (a string)")
        identifiers.check(name, body[name])


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )
