"""The HTTP server of a worker (aiohttp): the operations routes for every role; the native API
and every compatibility profile where the API runs, with the OpenAPI document of exactly those
routes, built once from the catalog the worker runs with."""

from __future__ import annotations

from aiohttp import web

from app.api import fills, learnosity, native, openapi, sunbird, usaspending
from app.api.edge import SETTINGS
from app.api.fills import FILL_CONTEXT, FillContext
from app.api.kernel import CONTEXT, ApiContext, Profile, error_middleware

PROFILES: tuple[Profile, ...] = (
    native.PROFILE,
    fills.PROFILE,
    sunbird.PROFILE,
    usaspending.PROFILE,
    learnosity.PROFILE,
)


def create_web_app(
    context: ApiContext, *, api: bool = True, fills: FillContext | None = None
) -> web.Application:
    """The HTTP app; ``api=False`` serves only health and metrics (processor, generator);
    ``fills`` adds the dataset-fill profile."""
    app = web.Application(middlewares=[error_middleware])
    app[CONTEXT] = context
    app[SETTINGS] = context.settings
    if not api:
        native.add_operations(app)
        return app
    profiles = [p for p in PROFILES if fills is not None or p.name != "dataset-fill"]
    if fills is not None:
        app[FILL_CONTEXT] = fills
    for profile in profiles:
        profile.add_routes(app)
    assert context.catalog is not None
    app[openapi.DOCUMENT] = openapi.document(context.catalog, profiles)
    return app
