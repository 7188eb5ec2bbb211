"""The fill operation endpoint without a broker: read-your-writes on a view that lags."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.api.edge import SETTINGS
from app.api.fills import FILL_CONTEXT, FillContext, add_routes, prepare
from app.api.kernel import error_middleware
from app.domain.errors import MalformedRequest
from app.domain.managed_datasets import Fill, dataset_key, parse_columns
from app.engine.fill_decoder import Limits, convert_file
from app.metrics import Metrics
from app.settings import Settings
from app.stream.dataset_view import DatasetView
from tests.corpus import nested_json, nested_objects
from tests.fakes import MemoryStore

LIMITS = Limits(max_decompressed_bytes=10**8, max_rows=1000, max_value_bytes=100)


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
    app[FILL_CONTEXT] = FillContext(settings=view.settings, metrics=Metrics(), view=view,
                                    publisher=none, store=MemoryStore())  # fmt: skip
    add_routes(app)
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


# --- uploads ---------------------------------------------------------------------------------


class Published:
    def __init__(self) -> None:
        self.fills: list[Fill] = []

    async def fill(self, fill: Fill) -> None:
        self.fills.append(fill)


class ReplacedAfterRead(MemoryStore):
    """A store whose staged file a client replaces (its presigned PUT is still valid) right
    after the server has read it."""

    async def download_file(self, key: str, path: Path, max_bytes: int | None = None) -> int:
        size = await super().download_file(key, path, max_bytes)
        if "/uploads/" in key:
            self.objects[key] = b"PAR1 replaced by the client PAR1"
        return size


async def upload_client(store: MemoryStore, published: Published, tmp_path: Path) -> Any:
    view = LaggingView(Settings(), set())
    settings = Settings(spool_dir=tmp_path, fill_wait_seconds=0)
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings  # as create_web_app sets it
    app[FILL_CONTEXT] = FillContext(settings=settings, metrics=Metrics(), view=view,
                                    publisher=published, store=store)  # type: ignore[arg-type]  # fmt: skip
    add_routes(app)
    return TestClient(TestServer(app))


ACME = {"X-Channel-ID": "acme"}
DECLARED = [{"name": "n", "type": "integer"}, {"name": "s", "type": "string"}]


async def test_hostile_upload_requests_are_refused_with_a_code(tmp_path: Path) -> None:
    store, published = MemoryStore(), Published()
    async with await upload_client(store, published, tmp_path) as http:
        for path, body, headers, status, code in [
            ("/v1/datasets/people/uploads", {"format": "exe"}, ACME, 400, "MALFORMED_REQUEST"),
            ("/v1/datasets/people/uploads", [1], ACME, 400, "MALFORMED_REQUEST"),
            ("/v1/datasets/..%2Fevil/uploads", {}, ACME, 400, "INVALID_IDENTIFIER"),
            ("/v1/datasets/people/uploads", {}, {}, 403, "ACCESS_DENIED"),
        ]:
            response = await http.post(path, json=body, headers=headers)
            assert response.status == status, (path, body)
            assert (await response.json())["error"]["code"] == code
        created = await (await http.post("/v1/datasets/people/uploads", headers=ACME)).json()
        assert "/datasets/acme/people/uploads/" in created["url"]
        store.objects[f"datasets/acme/people/uploads/{created['upload-id']}.csv"] = b"n,s\n1,a\n"
        fill = {"user-code": "u", "dataset-code": "people", "columns": DECLARED}
        for extra, headers, code in [
            ({"upload-id": "../../etc"}, ACME, "INVALID_IDENTIFIER"),
            ({"upload-id": "a" * 32}, ACME, "INPUT_MISSING"),  # never uploaded
            ({"upload-id": created["upload-id"]}, {"X-Channel-ID": "globex"}, "INPUT_MISSING"),
            ({"upload-id": created["upload-id"], "insert-data": "[]"}, ACME, "MALFORMED_REQUEST"),
            ({"upload-id": created["upload-id"], "format": "xlsx"}, ACME, "MALFORMED_REQUEST"),
        ]:
            response = await http.post("/dataset-fill", json=fill | extra, headers=headers)
            assert response.status == 400, extra
            assert (await response.json())["error"]["code"] == code, extra
        assert published.fills == []
        # The owner's fill of it goes through (pending: no writer here).
        response = await http.post("/dataset-fill", json=fill | {"upload-id": created["upload-id"]},
                                   headers=ACME)  # fmt: skip
        assert response.status == 202 and len(published.fills) == 1


async def test_a_checked_segment_is_stored_from_the_checked_copy(tmp_path: Path) -> None:
    """A client that replaces its staged Parquet after the server read it gets what the server
    checked stored, not its replacement."""
    segment = tmp_path / "segment.parquet"
    (tmp_path / "rows.csv").write_text("n,s\n1,a\n2,b\n")
    columns = parse_columns(DECLARED, 10)
    convert_file(tmp_path / "rows.csv", "csv", columns, segment, LIMITS)
    store, published = ReplacedAfterRead(), Published()
    async with await upload_client(store, published, tmp_path) as http:
        created = await (await http.post("/v1/datasets/people/uploads", json={"format": "parquet"},
                                         headers=ACME)).json()  # fmt: skip
        store.objects[f"datasets/acme/people/uploads/{created['upload-id']}.parquet"] = (
            segment.read_bytes()
        )
        body = {"user-code": "u", "dataset-code": "people", "columns": DECLARED,
                "upload-id": created["upload-id"], "format": "parquet"}  # fmt: skip
        response = await http.post("/dataset-fill", json=body, headers=ACME)
        assert response.status == 202, await response.text()
    [fill] = published.fills
    assert fill.rows == 2 and store.objects[fill.segment_key] == segment.read_bytes()
    assert not any("/uploads/" in key for key in store.objects)  # the staged file is gone
