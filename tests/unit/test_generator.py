from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from app import generator as generator_module
from app.catalog.loader import default_catalog
from app.domain.errors import StorageError, TransientError
from app.domain.model import JobEvent, WorkItem
from app.engine.storage import Uploaded
from app.generator import Generator, Stop
from tests.fakes import MemoryStore

ITEM = WorkItem(
    request_id="R1", attempt=2, tag="t1", dataset="demo-export", channel="acme",
    requested_by="u", config='{"rows": 2000, "seed": 7}', submitted_at=1,
)  # fmt: skip


async def run(item: WorkItem, store: MemoryStore, heartbeat: float = 2.0) -> list[JobEvent]:
    events: list[JobEvent] = []

    async def emit(_: WorkItem, event: JobEvent) -> None:
        events.append(event)

    await Generator(default_catalog(), store, emit, worker_id="w", heartbeat_seconds=heartbeat).run(
        item
    )
    return events


async def test_outputs_under_the_attempt_prefix_with_the_manifest_written_last() -> None:
    store = MemoryStore()
    events = await run(ITEM, store)
    assert [e.kind for e in events] == ["STARTED", "COMPLETED"]
    done = events[-1]
    assert all(e.attempt == 2 and e.request_id == "R1" for e in events)
    assert store.writes[-1] == "acme/demo-export/R1/2/manifest.json" == done.manifest_key
    assert all(k.startswith("acme/demo-export/R1/2/") for k in store.writes)
    for output in done.outputs:
        assert hashlib.sha256(store.objects[output.key]).hexdigest() == output.sha256
        assert len(store.objects[output.key]) == output.bytes
    manifest = json.loads(store.objects[done.manifest_key or ""])
    assert [f["key"] for f in manifest["files"]] == [o.key for o in done.outputs]
    assert done.total_rows == 2000 and done.total_columns == 4


async def test_same_attempt_twice_writes_the_same_bytes_to_the_same_keys() -> None:
    first, second = MemoryStore(), MemoryStore()
    await run(ITEM, first)
    await run(ITEM, second)
    assert first.objects == second.objects


async def test_heartbeats_are_sent_while_generating() -> None:
    store = MemoryStore()
    big = WorkItem(**{**ITEM.to_record(), "config": '{"rows": 300000}'})
    events = await run(big, store, heartbeat=0.05)
    assert events[0].kind == "STARTED" and events[-1].kind == "COMPLETED"
    assert any(e.kind == "PROGRESS" for e in events[1:-1])


async def test_invalid_config_fails_without_retry_and_writes_nothing() -> None:
    store = MemoryStore()
    bad = WorkItem(**{**ITEM.to_record(), "config": '{"rows": "many"}'})
    events = await run(bad, store)
    assert events[-1].kind == "FAILED" and not events[-1].retryable
    assert events[-1].error is not None and events[-1].error.code == "INVALID_CONFIG"
    assert store.objects == {}


async def test_the_spool_is_removed_whether_the_attempt_succeeds_or_fails(tmp_path: Path) -> None:
    class FailingStore(MemoryStore):
        async def upload_file(self, key: str, path: Path, content_type: str = "") -> Uploaded:
            assert path.is_relative_to(tmp_path)  # the attempt writes into the configured spool
            raise StorageError("object storage refused PutObject (HTTP 403, AccessDenied)")

    async def emit(_: WorkItem, event: JobEvent) -> None:
        events.append(event)

    for store in (MemoryStore(), FailingStore()):
        events: list[JobEvent] = []
        await Generator(default_catalog(), store, emit, worker_id="w", spool_dir=tmp_path).run(ITEM)
        assert list(tmp_path.iterdir()) == []
    assert [e.kind for e in events] == ["STARTED", "FAILED"]


class BlockingStore(MemoryStore):
    """Stores the upload, then never answers (until cancelled), as a stalled S3 would."""

    def __init__(self) -> None:
        super().__init__()
        self.uploading = asyncio.Event()

    async def upload_file(self, key: str, path: Path, content_type: str = "") -> Uploaded:
        sent = await super().upload_file(key, path, content_type)
        self.uploading.set()
        await asyncio.sleep(3600)
        return sent


async def stopped_run(item: WorkItem, store: MemoryStore, when: asyncio.Event) -> list[JobEvent]:
    events: list[JobEvent] = []

    async def emit(_: WorkItem, event: JobEvent) -> None:
        events.append(event)
        if event.kind == "PROGRESS":
            when.set()

    stop = Stop()

    async def stop_when_told() -> None:
        await when.wait()
        stop.set()

    stopper = asyncio.create_task(stop_when_told())
    generator = Generator(default_catalog(), store, emit, worker_id="w", heartbeat_seconds=0.05)
    await asyncio.wait_for(generator.run(item, stop), 20)
    stopper.cancel()
    return events


async def test_a_stopped_attempt_ends_mid_generation_and_leaves_nothing() -> None:
    store = MemoryStore()
    huge = WorkItem(**{**ITEM.to_record(), "config": '{"rows": 50000000}'})
    events = await stopped_run(huge, store, asyncio.Event())  # stopped at its first heartbeat
    final = events[-1]
    assert final.kind == "FAILED" and not final.retryable
    assert final.error is not None and final.error.code == "CANCELLED"
    assert store.objects == {}


async def test_a_stopped_attempt_ends_mid_upload_and_deletes_what_the_store_holds() -> None:
    store = BlockingStore()
    events = await stopped_run(ITEM, store, store.uploading)
    assert events[-1].error is not None and events[-1].error.code == "CANCELLED"
    assert store.writes and store.objects == {}, "the stored file and no manifest"


class FlakyListing(MemoryStore):
    """A store whose listing fails ``failures`` times (an outage), then answers."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def list_sizes(self, prefix: str) -> dict[str, int]:
        if self.failures:
            self.failures -= 1
            raise TransientError("object storage did not answer ListObjectsV2")
        return await super().list_sizes(prefix)


async def test_a_discard_deletes_only_the_dead_attempt_and_outlasts_a_short_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(generator_module, "DISCARD_FIRST_PAUSE", 0.01)
    store = FlakyListing(failures=2)
    dead, live = "acme/demo-export/R1/2/", "acme/demo-export/R1/3/"
    for key in (
        dead + "data.csv",
        dead + "manifest.json",
        live + "data.csv",
        "acme/demo-export/R1/20/x",
    ):
        store.objects[key] = b"x"

    async def emit(_: WorkItem, event: JobEvent) -> None:
        raise AssertionError(f"a discard reports nothing ({event.kind})")

    generator = Generator(default_catalog(), store, emit, worker_id="w")
    assert await generator.discard(ITEM) == 2
    assert sorted(store.objects) == sorted([live + "data.csv", "acme/demo-export/R1/20/x"])
    assert await generator.discard(ITEM) == 0, "a discard made again finds nothing"


async def test_a_discard_gives_up_after_about_a_minute_of_failures_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(generator_module, "DISCARD_FIRST_PAUSE", 0.001)
    monkeypatch.setattr(generator_module, "DISCARD_LONGEST_PAUSE", 0.004)
    store = FlakyListing(failures=100)
    store.objects["acme/demo-export/R1/2/data.csv"] = b"x"

    async def emit(_: WorkItem, event: JobEvent) -> None:
        raise AssertionError(event.kind)

    assert await Generator(default_catalog(), store, emit, worker_id="w").discard(ITEM) == 0
    assert store.failures == 100 - 4, "asked after 1, 2 and 4 ms, then given up"
    assert "could not delete the objects of dead attempt acme/demo-export/R1/2/" in caplog.text
