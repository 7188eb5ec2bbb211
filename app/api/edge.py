"""What every HTTP profile shares: the caller's channel and compact JSON answers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app.domain import identifiers
from app.domain.errors import AccessDenied


def channel_of(request: web.Request) -> str:
    """The caller's channel (``X-Channel-ID``, set by the trusted gateway)."""
    channel = request.headers.get("X-Channel-ID", "")
    if not channel:
        raise AccessDenied("X-Channel-ID header is required")
    return identifiers.check("X-Channel-ID", channel)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )
