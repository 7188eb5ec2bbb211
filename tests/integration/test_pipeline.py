"""The event core end to end on the real broker and S3 server, with real worker processes."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.settings import Settings
from app.stream.avro import MAGIC, registry
from app.stream.topics import ensure_topics
from tests.integration.harness import (
    Publisher,
    Worker,
    eventually,
    latest_jobs,
    metric,
    read_topic,
    request,
    start_worker,
)

pytestmark = pytest.mark.integration

FAST = {"tick_seconds": 1.0, "heartbeat_seconds": 0.5, "consumer_session_timeout_seconds": 6.0}


async def test_thousand_requests_over_200_tags_with_30_percent_duplicates(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST)
    await ensure_topics(settings)  # published before the worker starts: a backlog to drain
    rng = random.Random(42)
    unique = []
    for i in range(700):
        tag = f"tag-{i % 200}"
        client_id = f"client-{i}" if i % 2 else None  # half client ids, half derived ids
        unique.append(request(tag, request_id=client_id, config=f'{{"rows": 10, "seed": {i}}}'))
    repeats = [rng.choice(unique) for _ in range(300)]
    stream = unique + repeats
    rng.shuffle(stream)
    # Repeats are the very same requests, so whichever copy arrives first creates the job and
    # every later copy is counted as a duplicate of it.
    async with Publisher(settings) as publisher:
        for req in stream:
            await publisher.request(req)
        await publisher.flush()
    worker = await start_worker(workers, settings, "w1")

    expected_dups = Counter(id(r) for r in repeats)

    async def all_done() -> dict[str, dict[str, Any]] | None:
        jobs = await latest_jobs(settings)
        done = [j for j in jobs.values() if j["status"] == "SUCCESS"]
        total_dups = sum(j["duplicates"] for j in jobs.values())
        return jobs if len(jobs) == 700 and len(done) == 700 and total_dups == 300 else None

    jobs = await eventually(all_done, 240, "700 SUCCESS jobs with 300 duplicates", interval=2)
    client_jobs = {k: v for k, v in jobs.items() if k.startswith("client-")}
    assert len(client_jobs) == 350
    for req in unique:
        if req.request_id is not None:
            assert jobs[req.request_id]["duplicates"] == expected_dups[id(req)]
    for job in jobs.values():
        assert job["attempt"] == 1 and job["error"] is None
        assert all(
            o["key"].startswith(f"acme/demo-export/{job['request_id']}/1/") for o in job["outputs"]
        )
    status, page = await worker.get("/v1/jobs?tag=tag-7&limit=500", channel="acme")
    assert status == 200 and page["count"] == sum(1 for j in jobs.values() if j["tag"] == "tag-7")
    # Every request was decided in exactly one batch, and a backlog in batches of what was
    # fetched, not one event at a time (Faust's own fetch loop made 1,000 batches here).
    _, text = await worker.get("/metrics")
    batched = metric(text, "exhaust_writer_batch_events_sum", agent="requests")
    batches = metric(text, "exhaust_writer_batch_events_count", agent="requests")
    assert batched == 1000 and 1 <= batches <= 100, (batched, batches)
    assert worker.stop() == 0


async def test_bad_input_goes_to_the_dlq_or_fails_and_the_partition_keeps_flowing(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST)
    worker = await start_worker(workers, settings, "w1")
    good = registry().encode("DatasetRequest", request("same-tag").to_record())
    wrong_fingerprint = MAGIC + b"\x01" * 8 + good[10:]
    async with Publisher(settings) as publisher:
        await publisher.raw(b"same-tag", b"\x00garbage bytes")
        await publisher.raw(b"same-tag", wrong_fingerprint)
        await publisher.raw(b"same-tag", good[:-7])  # truncated
        await publisher.request(request("same-tag", request_id="bad-ds", dataset="no-such-dataset"))
        await publisher.request(request("same-tag", request_id="bad-cfg", config='{"rows": -5}'))
        await publisher.request(request("same-tag", request_id="ok-1"))
        await publisher.request(request("same-tag", request_id="ok-1", config='{"rows": 99}'))
        await publisher.flush()

    async def settled() -> dict[str, dict[str, Any]] | None:
        jobs = await latest_jobs(settings)
        wanted = {"bad-ds": "FAILED", "bad-cfg": "FAILED", "ok-1": "SUCCESS"}
        return jobs if all(jobs.get(k, {}).get("status") == v for k, v in wanted.items()) else None

    jobs = await eventually(settled, 60, "bad requests FAILED and the good one SUCCESS")
    assert jobs["bad-ds"]["error"]["code"] == "UNKNOWN_DATASET"
    assert jobs["bad-cfg"]["error"]["code"] == "INVALID_CONFIG"
    assert jobs["ok-1"]["config"] == '{"rows": 20}'  # the conflicting reuse changed nothing

    async def dead_letters() -> list[Any]:
        records = await read_topic(settings, "dlq")
        return records if len(records) >= 4 else []

    dlq = await eventually(dead_letters, 30, "4 dead letters")
    codes = [dict(m.headers)["error-code"].decode() for m in dlq]
    assert codes == [
        "UNDECODABLE_MESSAGE",
        "UNKNOWN_SCHEMA",
        "UNDECODABLE_MESSAGE",
        "REQUEST_CONFLICT",
    ]
    first = dict(dlq[0].headers)
    assert first["source-topic"].decode() == settings.topic("requests")
    assert first["source-offset"] == b"0" and dlq[0].value == b"\x00garbage bytes"
    status, body = await worker.get("/metrics")
    assert status == 200 and 'exhaust_dead_letters_total{code="UNKNOWN_SCHEMA"} 1.0' in body
    assert worker.stop() == 0


async def a_repeat_is_counted(
    settings: Settings, worker: Worker, tag: str, request_id: str, seconds: float
) -> None:
    """Publish job ``request_id`` of ``tag`` again and wait for ``worker`` to count it as a
    duplicate of its first attempt (the writer's table knows the job), not a new job."""
    async with Publisher(settings) as publisher:
        await publisher.request(request(tag, request_id=request_id))
        await publisher.flush()

    async def counted() -> bool:
        status, job = await worker.get(f"/v1/jobs/{request_id}", channel="acme")
        return status == 200 and job["duplicates"] == 1 and job["attempt"] == 1

    await eventually(counted, seconds, f"{request_id} counted as a duplicate")


async def test_a_worker_with_empty_state_rebuilds_everything_from_the_jobs_topic(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST)
    first = await start_worker(workers, settings, "first")
    async with Publisher(settings) as publisher:
        for i in range(30):
            await publisher.request(request(f"t{i % 5}", request_id=f"job-{i}"))
        await publisher.flush()

    async def listed(worker: Worker) -> list[dict[str, Any]] | None:
        status, page = await worker.get("/v1/jobs?limit=100", channel="acme")
        jobs = page["jobs"] if status == 200 else []
        return jobs if len(jobs) == 30 and all(j["status"] == "SUCCESS" for j in jobs) else None

    before = await eventually(lambda: listed(first), 90, "30 SUCCESS jobs")
    assert first.stop() == 0

    second = await start_worker(workers, settings, "second")  # fresh state directory
    after = await eventually(lambda: listed(second), 60, "the rebuilt read model")
    strip = ("download_urls", "links_expire_at", "manifest_url")  # links signed at read time
    assert [{k: v for k, v in j.items() if k not in strip} for j in after] == [
        {k: v for k, v in j.items() if k not in strip} for j in before
    ]
    # The table was rebuilt too: a repeat is a duplicate of the known job, not a new job.
    await a_repeat_is_counted(settings, second, "t3", "job-3", 30)
    status, _ = await second.get("/v1/jobs/job-3", channel="other-channel")
    assert status == 404
    assert second.stop() == 0


async def compact_quickly(settings: Settings) -> None:
    """Let the broker's cleaner compact ``exhaust.jobs`` within seconds: a segment rolls at
    the first record 100 ms after the last roll, and any dirt is worth cleaning."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        configs = {"segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
                   "min.compaction.lag.ms": "0", "cleanup.policy": "compact"}  # fmt: skip
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic("jobs"), configs=configs)]
        )
    finally:
        await admin.close()


def offset_jumps(records: list[Any]) -> int:
    """How many times the offsets read skip ahead within a partition (compaction's holes)."""
    last: dict[int, int] = {}
    jumps = 0
    for m in records:
        if m.partition in last and m.offset > last[m.partition] + 1:
            jumps += 1
        last[m.partition] = m.offset
    return jumps


async def test_a_compacted_jobs_topic_is_rebuilt_in_one_pass_without_seeking_back(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    """A processor rebuilds its job table from ``exhaust.jobs`` at every start. The topic is
    compacted, so its offsets have holes: the rebuild reads across them, as Faust reads its
    own changelogs, instead of taking each hole for a fetch made before a seek (three seeks
    back at every hole, and a warning of records deleted by retention)."""
    settings = settings_factory(**FAST)
    first = await start_worker(workers, settings, "first")
    await compact_quickly(settings)
    for round_ in range(4):  # rounds apart in time, so segments roll between them
        async with Publisher(settings) as publisher:
            for i in range(20):
                await publisher.request(request(f"t{i % 5}", request_id=f"job-{round_}-{i}"))
            await publisher.flush()

        async def done(round_: int = round_) -> bool:
            jobs = await latest_jobs(settings)
            return sum(1 for j in jobs.values() if j["status"] == "SUCCESS") == 20 * (round_ + 1)

        await eventually(done, 90, f"round {round_}: its jobs done")

    async def holes() -> int | None:
        jumps = offset_jumps(await read_topic(settings, "jobs"))
        return jumps if jumps >= 10 else None

    await eventually(holes, 120, "the cleaner to compact exhaust.jobs", interval=1)
    assert first.stop() == 0

    second = await start_worker(workers, settings, "second")  # fresh state: rebuilt from 0
    await a_repeat_is_counted(settings, second, "t3", "job-0-3", 60)  # a rebuilt table knows it
    assert second.stop() == 0
    jobs_topic = f"topic='{settings.topic('jobs')}'"
    sought_back = [
        line
        for line in second.log_path.read_text().splitlines()
        if jobs_topic in line and ("was expected" in line or "not in the log" in line)
    ]
    assert sought_back == []


async def test_kill_9_during_generation_every_job_still_succeeds_once(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST, lease_seconds=5.0)
    a = await start_worker(workers, settings, "a")
    b = await start_worker(workers, settings, "b")
    async with Publisher(settings) as publisher:
        for i in range(8):
            await publisher.request(
                request(f"k{i}", request_id=f"big-{i}", config='{"rows": 400000}')
            )
        await publisher.flush()

    async def a_is_generating() -> bool:
        status, metrics = await a.get("/metrics")
        taken = status == 200 and 'exhaust_pipeline_total{event="work_items_received"}' in metrics
        jobs = await latest_jobs(settings)
        running = any(j["status"] == "PROCESSING" for j in jobs.values())
        unfinished = sum(j["status"] != "SUCCESS" for j in jobs.values())
        return taken and running and unfinished >= 2

    await eventually(a_is_generating, 60, "worker a to be generating")
    a.kill()
    killed_at = time.monotonic()

    async def all_success() -> dict[str, dict[str, Any]] | None:
        jobs = await latest_jobs(settings)
        ok = len(jobs) == 8 and all(j["status"] == "SUCCESS" for j in jobs.values())
        return jobs if ok else None

    try:
        jobs = await eventually(all_success, 180, "all 8 jobs SUCCESS after kill -9")
    except AssertionError as exc:
        statuses = {
            k: (v["status"], v["attempt"]) for k, v in (await latest_jobs(settings)).items()
        }
        _, metrics = await b.get("/metrics")
        raise AssertionError(
            f"{exc}\njobs: {statuses}\nb metrics:\n{metrics}\nb log:\n{b.log_tail(60)}"
        ) from None
    for job in jobs.values():
        prefixes = {o["key"].rsplit("/", 1)[0] for o in job["outputs"]}
        assert prefixes == {f"acme/demo-export/{job['request_id']}/{job['attempt']}"}, job
    assert time.monotonic() - killed_at < 180
    assert b.stop() == 0
