"""The fill operation endpoint without a broker: read-your-writes on a view that lags."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.api.fills import FillContext, add_routes, prepare
from app.api.jobs import error_middleware
from app.domain.errors import MalformedRequest
from app.domain.managed_datasets import dataset_key
from app.metrics import Metrics
from app.settings import Settings
from app.stream.dataset_view import DatasetView
from tests.corpus import nested_json, nested_objects


class LaggingView(DatasetView):
    """A view that learns of fills only when asked to sync, as one under load does."""

    def __init__(self, settings: Settings, published: set[str]) -> None:
        super().__init__(settings)
        self.published = published
        self.syncs = 0
        self.caught_up.set()

    async def sync(self, seconds: float) -> bool:
        self.syncs += 1
        for fill_id in self.published:
            self.pending[fill_id] = (dataset_key("acme", "people"), 7)
        return True


async def client_for(view: DatasetView) -> TestClient[web.Request, web.Application]:
    app = web.Application(middlewares=[error_middleware])
    none: Any = None
    add_routes(app, FillContext(settings=view.settings, metrics=Metrics(), view=view,
                                publisher=none))  # fmt: skip
    return TestClient(TestServer(app))


async def test_an_operation_younger_than_the_view_is_pending_not_missing() -> None:
    view = LaggingView(Settings(), {"f1"})
    async with await client_for(view) as http:
        response = await http.get("/v1/datasets/people/fills/f1", headers={"X-Channel-ID": "acme"})
        assert response.status == 200
        assert await response.json() == {"fill_id": "f1", "status": "PENDING"}
        assert view.syncs == 1


async def test_an_unknown_operation_is_404_after_the_view_has_synced() -> None:
    view = LaggingView(Settings(), {"f1"})
    async with await client_for(view) as http:
        for channel, fill_id in (("acme", "f2"), ("globex", "f1")):
            path = f"/v1/datasets/people/fills/{fill_id}"
            response = await http.get(path, headers={"X-Channel-ID": channel})
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "NOT_FOUND"
        assert view.syncs == 2


def test_a_hostile_fill_body_is_refused_with_a_code(tmp_path: Path) -> None:
    """Deep nesting and numbers no layer can hold: MALFORMED_REQUEST, never a RecursionError."""
    context: Any = SimpleNamespace(settings=Settings())
    for body in (nested_json(), nested_objects(), b'{"user-code": 1e400}'):
        with pytest.raises(MalformedRequest):
            prepare(body, "acme", "f1", tmp_path, context)
