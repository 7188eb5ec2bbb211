"""The HTTP server of a worker (aiohttp): the operations routes for every role, the native API
and every compatibility profile where the API runs."""

from __future__ import annotations

from aiohttp import web

from app.api import learnosity, openapi, sunbird, usaspending
from app.api.edge import SETTINGS
from app.api.fills import FillContext, add_routes
from app.api.kernel import CONTEXT, ApiContext, error_middleware
from app.api.native import cancel, get_job, healthz, list_jobs, metrics, readyz, submit


def create_web_app(
    context: ApiContext, *, api: bool = True, fills: FillContext | None = None
) -> web.Application:
    """The HTTP app; ``api=False`` serves only health and metrics (processor, generator);
    ``fills`` adds the dataset-fill profile and the catalog routes."""
    app = web.Application(middlewares=[error_middleware])
    app[CONTEXT] = context
    app[SETTINGS] = context.settings
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if not api:
        return app
    app.router.add_post("/v1/requests", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/{request_id}", get_job)
    app.router.add_post("/v1/jobs/{request_id}/cancel", cancel)
    if fills is not None:
        add_routes(app, fills)
    app.router.add_get("/openapi.json", openapi.serve)
    sunbird.add_routes(app)
    usaspending.add_routes(app)
    learnosity.add_routes(app)
    return app
