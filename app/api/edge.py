"""What every HTTP profile shares: the caller's channel, body checks, compact JSON answers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app.domain import identifiers
from app.domain.errors import AccessDenied, MalformedRequest


def channel_of(request: web.Request) -> str:
    """The caller's channel (``X-Channel-ID``, set by the trusted gateway)."""
    channel = request.headers.get("X-Channel-ID", "")
    if not channel:
        raise AccessDenied("X-Channel-ID header is required")
    return identifiers.check("X-Channel-ID", channel)


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
