"""Faults on purpose: lost work items, a busy backlog, stalled partitions, an attempt that ends
too late. Real broker and S3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rocksdict import Rdict

from app.domain.model import Job, JobEvent, OutputFile, attempt_prefix, job_key
from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.avro import registry
from app.stream.work_queue import work_partition
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


async def test_an_attempt_that_ends_too_late_to_count_leaves_nothing_in_the_bucket(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    # A generator that ran on after its attempt was given up (a rebalance handed its item to
    # another, its lease ran out, its job ended) uploads its files after the janitor swept the
    # job, then reports. The janitor's grace is left at its default (10 minutes), so only the
    # discard that the late report sends can delete them.
    settings = settings_factory(**FAST)
    worker = await start_worker(workers, settings, "w1")
    n = settings.topic_partitions
    ids = (f"late-{i}" for i in range(1000))
    # Two jobs of one tag (one job-events partition: decided in order) and one work partition
    # (their discards, if any, are performed in order).
    failed_id = next(ids)
    same = work_partition(job_key("acme", failed_id), n)
    live_id = next(i for i in ids if work_partition(job_key("acme", i), n) == same)
    async with Publisher(settings) as publisher:
        missing = '{"source": "nowhere"}'  # no such managed dataset: FAILED at once
        await publisher.request(
            request("late", request_id=failed_id, dataset="table-export", config=missing)
        )
        await publisher.request(request("late", request_id=live_id))
        await publisher.flush()

    async def ended() -> dict[str, dict[str, Any]] | None:
        jobs = await latest_jobs(settings)
        done = [jobs.get(i, {}).get("status") for i in (failed_id, live_id)]
        return jobs if done == ["FAILED", "SUCCESS"] else None

    jobs = await eventually(ended, 60, "one job FAILED, the other SUCCESS")
    live = jobs[live_id]
    live_keys = [o["key"] for o in live["outputs"]] + [live["manifest_key"]]
    dead = attempt_prefix("acme", "table-export", failed_id, 1)
    async with S3ObjectStore(settings) as store:
        await store.put_bytes(dead + "data.csv", b"id\n1\n", "text/csv")
        await store.put_bytes(dead + "manifest.json", b"{}", "application/json")
        late = JobEvent(
            kind="COMPLETED", request_id=failed_id, channel="acme", attempt=1, at=1, worker="w9",
            outputs=[OutputFile(key=dead + "data.csv", rows=1, bytes=5, sha256="0" * 64)],
            manifest_key=dead + "manifest.json",
        )  # fmt: skip
        again = JobEvent(  # a second copy of the live attempt reporting: its files are the result
            kind="COMPLETED", request_id=live_id, channel="acme", attempt=1, at=1, worker="w9",
            outputs=[OutputFile(**{k: o[k] for k in ("key", "rows", "bytes", "sha256")})
                     for o in live["outputs"]],
            manifest_key=live["manifest_key"],
        )  # fmt: skip
        async with Publisher(settings) as publisher:
            for event in (again, late):
                value = registry().encode("JobEvent", event.to_record())
                await publisher.raw(b"late", value, topic="job-events")
            await publisher.flush()

        async def swept() -> bool:
            return not await store.list_sizes(dead)

        await eventually(swept, 30, "the late attempt's objects to be deleted")
        assert all([await store.exists(key) for key in live_keys]), "the live attempt's stay"
        _, text = await worker.get("/metrics")
        assert metric(text, "exhaust_pipeline_total", event="attempts_discarded") == 1
        assert metric(text, "exhaust_orphans_deleted_total") == 2
    after = await latest_jobs(settings)
    assert after[failed_id]["status"] == "FAILED" and after[live_id] == live
    assert worker.stop() == 0
