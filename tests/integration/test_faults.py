"""Faults on purpose: lost work items, a busy backlog, stalled partitions. Real broker and S3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rocksdict import Rdict

from app.domain.model import Job
from app.settings import Settings
from app.stream.avro import registry
from tests.integration.harness import (
    Publisher,
    Worker,
    eventually,
    latest_jobs,
    metric,
    request,
    start_worker,
)

pytestmark = pytest.mark.integration

FAST = {"tick_seconds": 0.5, "heartbeat_seconds": 0.5, "consumer_session_timeout_seconds": 6.0}


async def all_success(settings: Settings, n: int) -> dict[str, dict[str, Any]] | None:
    jobs = await latest_jobs(settings)
    ok = len(jobs) == n and all(j["status"] == "SUCCESS" for j in jobs.values())
    return jobs if ok else None


async def test_a_lost_work_item_is_dispatched_again_and_the_job_succeeds(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    # The writer drops its first two work items after the table write, exactly what a crash
    # between the table write and the work send leaves behind: SUBMITTED jobs with no work.
    settings = settings_factory(**FAST, dispatch_timeout_seconds=2.0)
    worker = await start_worker(workers, settings, "w1", faults={"drop_work_items": 2})
    async with Publisher(settings) as publisher:
        for i in range(4):
            await publisher.request(request(f"lost-{i}", request_id=f"lost-{i}"))
        await publisher.flush()

    jobs = await eventually(lambda: all_success(settings, 4), 60, "4 SUCCESS jobs")
    assert all(j["attempt"] == 1 for j in jobs.values()), "re-dispatch keeps the attempt"
    _, text = await worker.get("/metrics")
    assert metric(text, "exhaust_transitions_total", outcome="redispatched") == 2
    assert "FAULT: dropping the work item" in worker.log_tail(400)
    assert worker.stop() == 0


async def test_a_backlog_behind_busy_generators_is_never_dispatched_twice(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    # One generation at a time, each taking well over a second (600,000 demo rows: ~1.5 s here;
    # 200,000 took 0.5 s, and once the generator stopped idling between items every job could
    # start before a tick saw it late), and a dispatch timeout of one second: most jobs wait
    # past their deadline, yet each work item is sent exactly once.
    settings = settings_factory(**FAST, dispatch_timeout_seconds=1.0, generator_concurrency=1)
    worker = await start_worker(workers, settings, "w1")
    async with Publisher(settings) as publisher:
        for i in range(5):
            await publisher.request(
                request(f"busy-{i}", request_id=f"busy-{i}", config='{"rows": 600000}')
            )
        await publisher.flush()

    await eventually(lambda: all_success(settings, 5), 120, "5 SUCCESS jobs")
    _, text = await worker.get("/metrics")
    assert metric(text, "exhaust_transitions_total", outcome="redispatched") == 0
    assert metric(text, "exhaust_transitions_total", outcome="dispatch_deferred") >= 1
    assert metric(text, "exhaust_pipeline_total", event="work_items_received") == 5
    assert worker.stop() == 0


async def test_a_stalled_writer_partition_is_detected_reported_and_recovered(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    # After 2 requests the writer pauses its requests partitions and never resumes them: the
    # faust-streaming stuck-partition bug. The watchdog must notice (metrics, /readyz 503),
    # resume and re-seek them, and every request must still become a SUCCESS job. (With a
    # window of 3 s, as here before, the job-events partition, whose TICKs arrive every 0.5 s
    # and whose committed offset moves every 2.8 s commit, was now and then reported stalled
    # instead: the window must be well above the commit interval, which settings now enforce.)
    settings = settings_factory(
        **FAST, watchdog_interval_seconds=0.5, watchdog_stall_seconds=6.0, topic_partitions=1,
    )  # fmt: skip
    worker = await start_worker(workers, settings, "w1", faults={"pause_requests_after": 2})
    async with Publisher(settings) as publisher:
        for i in range(2):
            await publisher.request(request("stuck", request_id=f"before-{i}"))
        await publisher.flush()
        await eventually(lambda: all_success(settings, 2), 60, "the first 2 jobs")
        for i in range(3):
            await publisher.request(request("stuck", request_id=f"after-{i}"))
        await publisher.flush()

    async def not_ready() -> Any:
        status, body = await worker.get("/readyz")
        return body if status == 503 and "stalled" in str(body) else None

    report = await eventually(not_ready, 60, "/readyz to report the stalled partition", 0.2)
    assert "requests" in report["checks"]["watchdog"]
    await eventually(lambda: all_success(settings, 5), 60, "all 5 jobs after recovery")

    async def ready_again() -> bool:
        status, _ = await worker.get("/readyz")
        return status == 200

    await eventually(ready_again, 30, "/readyz to turn ready again")
    _, text = await worker.get("/metrics")
    assert metric(text, "exhaust_watchdog_stalls_total", consumer="writer") >= 1
    assert metric(text, "exhaust_watchdog_recoveries_total", consumer="writer",
                  action="resume_and_seek") >= 1  # fmt: skip
    assert "FAULT: pausing" in worker.log_tail(400)
    assert worker.stop() == 0


async def test_a_table_write_the_changelog_never_received_is_not_trusted_after_a_restart(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    # A processor stopped (or killed) between a table write and its changelog delivery keeps
    # the write in its local RocksDB. Here that write is made by hand while the worker is
    # down: the job as if the duplicate below had already been counted. Trusted, it would make
    # the duplicate a redelivery and no one would ever count it (a rolling restart left one
    # duplicate uncounted this way); rebuilt from the changelog, the duplicate is counted.
    settings = settings_factory(**FAST, topic_partitions=1)
    worker = await start_worker(workers, settings, "w1")
    async with Publisher(settings) as publisher:
        await publisher.request(request("ghost", request_id="ghost-1"))
        await publisher.flush()
        await eventually(lambda: all_success(settings, 1), 60, "the job")
        assert worker.stop() == 0

        tables = worker.settings.state_dir / "faust" / "v1" / "tables"
        db = Rdict(str(tables / "jobs-0.db"))
        try:
            key = b"acme/ghost-1"
            stored = db[key]  # the worker's own copy of the job
            assert isinstance(stored, bytes)
            job = Job.from_record(registry().decode("JobStatus", stored))
            assert (job.status, job.duplicates) == ("SUCCESS", 0)
            ghost = job.replace(duplicates=1, request_offset=10**9)
            db[key] = registry().encode("JobStatus", ghost.to_record())
        finally:
            db.close()

        await publisher.request(request("ghost", request_id="ghost-1"))
        await publisher.flush()
    worker = await start_worker(workers, settings, "w1")

    async def counted() -> bool:
        return bool((await latest_jobs(settings))["ghost-1"]["duplicates"] == 1)

    await eventually(counted, 60, "the duplicate counted on the topic")
    assert worker.stop() == 0
