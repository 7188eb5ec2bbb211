"""The job console: a page served by the API where a channel's user follows its jobs live,
filters them, opens one and downloads its files (``GET /console``).

The page is three static files (``app/api/static``), no build step: its script reads the same
routes as any client (``/v1/jobs``, with the channel and key the user types into the page), so
it needs no route or permission of its own. The responses carry a Content-Security-Policy that
allows only the page's own script, style and API calls: a value from a job shown in the page is
text, and even a hole in that rule would find no script to run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from app.api.kernel import Profile
from app.api.openapi import Schema, answer, operation
from app.catalog.types import Catalog

FILES = {
    "/console": ("console.html", "text/html"),
    "/console/console.js": ("console.js", "text/javascript"),
    "/console/console.css": ("console.css", "text/css"),
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _handler(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = resources.files("app.api").joinpath("static", name).read_bytes()  # read once

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)

    return serve


def add_routes(app: web.Application) -> None:
    for path, (name, content_type) in FILES.items():
        app.router.add_get(path, _handler(name, content_type))


def openapi_paths(_catalog: Catalog) -> dict[str, Schema]:
    """The page and its two files, documented as what they are (not JSON)."""
    summaries = {"/console": "The job console (HTML)", "/console/console.js": "Its script",
                 "/console/console.css": "Its style sheet"}  # fmt: skip
    return {
        path: {
            "get": operation(
                summaries[path],
                {"200": answer({"type": "string"}, media=content_type)},
                tag="console",
            )
        }
        for path, (_name, content_type) in FILES.items()
    }


PROFILE = Profile("console", add_routes, openapi_paths)
