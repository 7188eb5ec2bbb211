"""Kafka producers are semi-trusted: what one that writes a topic directly cannot do, on the
real broker and S3 server with a real worker (docs/security.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from app.domain.managed_datasets import Column, Fill
from app.domain.model import JobEvent, OutputFile
from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.avro import registry
from tests.integration.harness import (
    Publisher,
    Worker,
    eventually,
    latest_jobs,
    read_topic,
    request,
    start_worker,
)

pytestmark = pytest.mark.integration

FAST = {"tick_seconds": 1.0, "heartbeat_seconds": 0.5}


async def test_a_dead_lettered_request_never_carries_its_encryption_key(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST)
    await start_worker(workers, settings, "w1")
    async with Publisher(settings) as publisher:
        await publisher.request(request("t-dlq", request_id="dup-1"))
        # The same client id with other parameters, and a key in clear: a conflict.
        await publisher.request(
            request(
                "t-dlq", request_id="dup-1", config='{"rows": 3}', encryption_key="clear-secret-42"
            )
        )
        await publisher.flush()

    async def dead() -> list[Any]:
        return await read_topic(settings, "dlq")

    letters = await eventually(dead, 60, "the conflict's dead letter")
    assert len(letters) == 1
    headers = dict(letters[0].headers)
    assert headers["error-code"] == b"REQUEST_CONFLICT"
    assert b"clear-secret-42" not in letters[0].value
    assert registry().decode("DatasetRequest", letters[0].value)["encryption_key"] == "[redacted]"
    jobs = await latest_jobs(settings)
    assert b"clear-secret-42" not in repr(jobs).encode()


async def test_a_forged_completion_cannot_make_a_job_link_to_other_keys(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    """A job waiting for its uploads (so no generator reports on it), a COMPLETED naming
    another channel's files, then a CANCEL: the job reads CANCELLED with no outputs, so the
    completion, written before the cancel, was ignored."""
    settings = settings_factory(**FAST)
    worker = await start_worker(workers, settings, "w1")
    until = int(time.time() * 1000) + 600_000
    waiting = request("t-forge", request_id="forge-1", await_input_until=until)
    async with Publisher(settings) as publisher:
        await publisher.request(waiting)
        await publisher.flush()

    async def awaiting() -> Any:
        job = (await latest_jobs(settings)).get("forge-1")
        return job if job is not None and job["status"] == "AWAITING_INPUT" else None

    await eventually(awaiting, 60, "the job to wait for its inputs")
    forged = [OutputFile(key=k, rows=1, bytes=1, sha256="x") for k in (
        "evil/demo-export/EVILJOB/1/data.csv", "acme/demo-export/forge-1/1/../../../../evil/x")]  # fmt: skip
    events = [
        JobEvent(kind="COMPLETED", request_id="forge-1", channel="acme", attempt=1,
                 at=int(time.time() * 1000), outputs=forged,
                 manifest_key="acme/demo-export/forge-1/1/manifest.json"),
        JobEvent(kind="CANCEL", request_id="forge-1", channel="acme", attempt=0,
                 at=int(time.time() * 1000)),
    ]  # fmt: skip
    async with Publisher(settings) as publisher:
        for ev in events:
            value = registry().encode("JobEvent", ev.to_record())
            await publisher.raw(waiting.tag.encode(), value, topic="job-events")
        await publisher.flush()

    async def cancelled() -> Any:
        job = (await latest_jobs(settings)).get("forge-1")
        return job if job is not None and job["status"] == "CANCELLED" else None

    job = await eventually(cancelled, 60, "the cancel to land")
    assert job["outputs"] == []

    async def read() -> Any:  # the read model follows the topic
        status, body = await worker.get("/v1/jobs/forge-1", "acme")
        return body if status == 200 and body["status"] == "CANCELLED" else None

    assert (await eventually(read, 30, "the job in the read model"))["download_urls"] == []


async def test_a_fill_from_the_topic_cannot_write_or_delete_another_datasets_objects(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST)
    worker = await start_worker(workers, settings, "w1")
    victim = "datasets/evil/people/segments/original.parquet"
    async with S3ObjectStore(settings) as store:
        await store.put_bytes(victim, b"evil's own bytes")
        fill = Fill(
            kind="FILL", fill_id="forged-1", channel="acme", dataset_code="people",
            user_code="u", mode="TRUNCATE", columns=(Column("id", "id", "INTEGER"),), rows=1,
            bytes=16, segment_key=victim, requested_at=int(time.time() * 1000),
            data=b"overwritten bytes",
        )  # fmt: skip
        async with Publisher(settings) as publisher:
            value = registry().encode("DatasetFill", fill.to_record())
            await publisher.raw(fill.key.encode(), value, topic="fills")
            await publisher.flush()

        async def outcome() -> Any:
            status, body = await worker.get("/v1/datasets/people/fills/forged-1", "acme")
            return body if status == 200 and body.get("status") not in (None, "PENDING") else None

        answer = await eventually(outcome, 60, "the forged fill's outcome")
        assert answer["status"] == "REJECTED" and answer["error"]["code"] == "INVALID_OBJECT_KEY"
        assert await store.get_bytes(victim) == b"evil's own bytes"
