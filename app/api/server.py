"""The HTTP server of a worker (aiohttp): the operations routes for every role; the native API
and every compatibility profile where the API runs, with the OpenAPI document of exactly those
routes, built once from the catalog the worker runs with."""

from __future__ import annotations

from aiohttp import web

from app.api import console, fills, learnosity, native, openapi, sunbird, usaspending
from app.api.edge import SETTINGS
from app.api.fills import FILL_CONTEXT, FillContext
from app.api.kernel import CONTEXT, HEALTH, METRICS, ApiContext, Profile, error_middleware
from app.health import Health
from app.metrics import Metrics
from app.settings import Settings

PROFILES: tuple[Profile, ...] = (
    native.PROFILE,
    fills.PROFILE,
    sunbird.PROFILE,
    usaspending.PROFILE,
    learnosity.PROFILE,
    console.PROFILE,  # a page over the native routes
)


def create_operations_app(settings: Settings, health: Health, metrics: Metrics) -> web.Application:
    """The HTTP app of a worker without the API (processor, generator): health and metrics."""
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS], app[HEALTH], app[METRICS] = settings, health, metrics
    native.add_operations(app)
    return app


def create_web_app(context: ApiContext, *, fills: FillContext | None = None) -> web.Application:
    """The HTTP app of a worker with the API: every profile (``fills`` adds the dataset-fill
    profile)."""
    app = web.Application(middlewares=[error_middleware])
    app[CONTEXT] = context
    app[SETTINGS], app[HEALTH], app[METRICS] = context.settings, context.health, context.metrics
    profiles = [p for p in PROFILES if fills is not None or p.name != "dataset-fill"]
    if fills is not None:
        app[FILL_CONTEXT] = fills
    for profile in profiles:
        profile.add_routes(app)
    app[openapi.DOCUMENT] = openapi.document(context.catalog, profiles)
    return app
