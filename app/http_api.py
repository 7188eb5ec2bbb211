"""The HTTP API (aiohttp), independent of Faust so it can be tested without a broker.

Routes: ``GET /healthz`` (liveness), ``GET /readyz`` (readiness, 503 until ready). Errors are
JSON ``{"error": {"code", "message"}}`` with the codes of :mod:`app.errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from app.errors import ExhaustError
from app.health import Health

HEALTH_KEY = web.AppKey("health", Health)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every :class:`ExhaustError` into its JSON envelope and HTTP status."""
    try:
        return await handler(request)
    except ExhaustError as exc:
        return web.json_response({"error": exc.to_dict()}, status=exc.http_status)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    health = request.app[HEALTH_KEY]
    return web.json_response(health.report(), status=200 if health.ready else 503)


def create_web_app(health: Health) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
