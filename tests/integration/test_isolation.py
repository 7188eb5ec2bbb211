"""Ids are per channel, on the real broker with a real worker: the same id from two channels is
two jobs; neither channel can take, block, detect or alter the other's; records written before
ids were per channel are still read and move to their new key."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from learnosity_sdk.request import Init

from app.client import ExhaustClient
from app.domain import dedup
from app.domain.model import Job
from app.settings import Settings
from app.stream.avro import registry
from app.stream.topics import ensure_topics
from app.stream.work_queue import work_partition
from tests.integration.harness import (
    ROOT,
    Publisher,
    Worker,
    all_jobs,
    eventually,
    request,
    start_worker,
)
from tests.integration.test_learnosity import CONSUMERS, Learnosity, put
from tests.unit.test_sunbird_api import SEED_SUBMIT

pytestmark = pytest.mark.integration

FAST = {"tick_seconds": 1.0, "heartbeat_seconds": 0.5, "dispatch_timeout_seconds": 2.0}


async def finished(settings: Settings, keys: set[str]) -> dict[str, dict[str, Any]] | None:
    jobs = await all_jobs(settings)
    done = {k: j for k, j in jobs.items() if k in keys and j["status"] in ("SUCCESS", "FAILED")}
    return jobs if len(done) == len(keys) else None


async def test_one_id_from_two_channels_over_kafka_is_two_independent_jobs(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST)
    worker = await start_worker(workers, settings, "w1")
    async with Publisher(settings) as publisher:
        # The same client id and tag, with other parameters: before ids were per channel the
        # second one was a conflict and never became a job.
        await publisher.request(request("t-shared", "acme", request_id="shared-1"))
        await publisher.request(
            request("t-shared", "evil", request_id="shared-1", config='{"rows": 7}')
        )
        # The same parameters in two channels: two derived ids, two jobs.
        await publisher.request(request("t-derived", "acme"))
        await publisher.request(request("t-derived", "evil"))
        await publisher.flush()

    async def both() -> dict[str, dict[str, Any]] | None:
        jobs = await finished(settings, {"acme/shared-1", "evil/shared-1"})
        if jobs is None:
            return None
        derived = [j for j in jobs.values() if j["tag"] == "t-derived" and j["status"] == "SUCCESS"]
        return jobs if len(derived) == 2 else None

    jobs = await eventually(both, 120, "both channels' jobs to finish", interval=0.5)
    acme, evil = jobs["acme/shared-1"], jobs["evil/shared-1"]
    assert (acme["status"], acme["total_rows"]) == ("SUCCESS", 20)
    assert (evil["status"], evil["total_rows"]) == ("SUCCESS", 7)
    assert all(o["key"].startswith("acme/") for o in acme["outputs"])
    assert all(o["key"].startswith("evil/") for o in evil["outputs"])
    for channel, rows in (("acme", 20), ("evil", 7)):

        async def read(channel: str = channel) -> dict[str, Any] | None:
            status, body = await worker.get("/v1/jobs/shared-1", channel)
            return body if status == 200 and body["status"] == "SUCCESS" else None

        body = await eventually(read, 30, f"{channel}'s job in the read model")
        assert body["channel"] == channel and body["total_rows"] == rows
    status, _ = await worker.get("/v1/jobs/shared-1", "nobody")
    assert status == 404


async def test_one_id_from_two_channels_over_http_neither_blocks_sees_nor_cancels_the_other(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(**FAST)
    worker = await start_worker(workers, settings, "w1")
    slow = {"tag": "t", "dataset": "demo-export", "request_id": "mine-and-yours",
            "config": {"rows": 10}}  # fmt: skip
    status, body = await worker.post("/v1/requests", slow, "acme")
    assert status == 202 and body == {"request_id": "mine-and-yours", "status": "SUBMITTED"}
    # Another channel, the same id, other parameters: accepted as its own job, with nothing in
    # the answer that says the id is taken elsewhere.
    other = {**slow, "tag": "x", "config": {"rows": 3}}
    status, body = await worker.post("/v1/requests", other, "evil")
    assert status == 202 and body == {"request_id": "mine-and-yours", "status": "SUBMITTED"}

    async def read(channel: str) -> dict[str, Any] | None:
        status, body = await worker.get("/v1/jobs/mine-and-yours", channel)
        return body if status == 200 and body["status"] == "SUCCESS" else None

    acme = await eventually(lambda: read("acme"), 60, "acme's job")
    evil = await eventually(lambda: read("evil"), 60, "evil's job")
    assert (acme["tag"], acme["total_rows"], acme["channel"]) == ("t", 10, "acme")
    assert (evil["tag"], evil["total_rows"], evil["channel"]) == ("x", 3, "evil")
    assert all("/acme/" in u for u in acme["download_urls"])
    assert all("/evil/" in u for u in evil["download_urls"])
    # The same request again from evil is a duplicate of evil's job, not a conflict with acme's.
    status, body = await worker.post("/v1/requests", other, "evil")
    assert status == 202 and body["duplicate"] is True and body["status"] == "SUCCESS"
    # A cancel names only the caller's own job (evil's, which has ended: 409 with its status).
    status, body = await worker.post("/v1/jobs/mine-and-yours/cancel", {}, "evil")
    assert status == 409 and body["error"]["status"] == "SUCCESS"
    _, listing = await worker.get("/v1/jobs?tag=t", "evil")
    assert listing["jobs"] == []
    _, listing = await worker.get("/v1/jobs", "acme")
    assert [(j["request_id"], j["tag"]) for j in listing["jobs"]] == [("mine-and-yours", "t")]


async def test_a_record_written_before_ids_were_per_channel_is_read_and_moved_to_its_key(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    """A SUBMITTED job under its legacy key (the bare id), past its dispatch deadline: the writer
    finds it on its first sweep, dispatches it, writes it under ``{channel}/{id}`` and deletes
    the legacy key; the API reads it throughout; another channel's job of that id is its own."""
    settings = settings_factory(**FAST)
    await ensure_topics(settings)
    old = request("t-legacy", "acme", request_id="legacy-1")
    partition = work_partition(old.tag, settings.topic_partitions)
    now = int(time.time() * 1000)
    job = Job(
        request_id="legacy-1", tag=old.tag, dataset=old.dataset, channel="acme",
        requested_by=old.requested_by, status="SUBMITTED", last_updated=now - 60_000,
        config=old.config, fingerprint=dedup.fingerprint(old), attempt=1, max_attempts=3,
        submitted_at=now - 60_000, client_id=True, partition=partition,
        lease_expires_at=now - 30_000,
    )  # fmt: skip
    async with Publisher(settings) as publisher:
        value = registry().encode("JobStatus", job.to_record())
        await publisher.producer.send_and_wait(
            settings.topic("jobs"), value, key=b"legacy-1", partition=partition
        )
    worker = await start_worker(workers, settings, "w1")
    async with Publisher(settings) as publisher:
        await publisher.request(request("t-other", "evil", request_id="legacy-1"))
        await publisher.flush()

    async def moved() -> dict[str, dict[str, Any]] | None:
        jobs = await finished(settings, {"acme/legacy-1", "evil/legacy-1"})
        return jobs if jobs is not None and "legacy-1" not in jobs else None

    jobs = await eventually(moved, 90, "the legacy job to succeed under its new key")
    assert jobs["acme/legacy-1"]["status"] == "SUCCESS"
    submitted = jobs["acme/legacy-1"]["submitted_at"]  # a datetime (plain fastavro)
    assert int(submitted.timestamp() * 1000) == now - 60_000  # the same job, moved
    assert (jobs["evil/legacy-1"]["status"], jobs["evil/legacy-1"]["tag"]) == ("SUCCESS", "t-other")

    async def listed_once() -> Any:  # the read model follows the topic: the legacy row goes
        _, listing = await worker.get("/v1/jobs", "acme")
        jobs = listing["jobs"]
        return jobs if len(jobs) == 1 and jobs[0]["status"] == "SUCCESS" else None

    [job] = await eventually(listed_once, 30, "the moved job listed once, as SUCCESS")
    assert (job["request_id"], job["tag"]) == ("legacy-1", "t-legacy")
    status, body = await worker.get("/v1/jobs/legacy-1", "acme")
    assert status == 200 and body["status"] == "SUCCESS" and body["tag"] == "t-legacy"


PEOPLE = [{"name": "id", "alias": "ID", "type": "integer"},
          {"name": "name", "alias": "Name", "type": "string"}]  # fmt: skip


async def test_every_profile_as_two_channels_with_the_same_ids_tags_and_keys(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    """v1, dataset-fill, Sunbird, USAspending, Learnosity-style and the CLI, driven as two
    channels that reuse each other's ids, tags, dataset codes and keys: neither reads, lists,
    blocks, overwrites or links the other's, and every request answered 2xx becomes a job its
    own channel reads."""
    Init.disable_telemetry()
    settings = settings_factory(**FAST, learnosity_consumers=json.dumps(CONSUMERS),
                                standard_catch_up_days=0)  # fmt: skip
    worker = await start_worker(workers, settings, "w1")
    rows = {"acme": 3, "other": 5}  # the channels of test_learnosity's consumers
    accepted: list[tuple[str, str]] = []  # (channel, request id) of every 2xx submission

    # dataset-fill: one dataset code in both channels, different rows.
    for channel, n in rows.items():
        client = ExhaustClient(worker.url, channel, user="tester", timeout=60, retries=0)
        people = [[i, f"{channel}-{i}"] for i in range(n)]
        await asyncio.to_thread(client.fill, "people", people, PEOPLE, append=False)
    for channel, n in rows.items():
        status, entry = await worker.get("/v1/datasets/people", channel)
        assert status == 200 and entry["rows"] == n, entry

    # v1: the same client id and tag, a table export of "people" in each channel.
    for channel in rows:
        body = {"tag": "shared", "dataset": "table-export", "request_id": "same-id",
                "config": {"source": "people"}}  # fmt: skip
        status, answer = await worker.post("/v1/requests", body, channel)
        assert status == 202 and answer["request_id"] == "same-id", answer
        accepted.append((channel, "same-id"))
    # A key crafted to reach the other channel's inputs.
    crafted = {"tag": "shared", "dataset": "table-export", "config": {"source": "x"},
               "inputs": ["acme/inputs/../../evil/inputs/x.ndjson"]}  # fmt: skip
    status, answer = await worker.post("/v1/requests", crafted, "acme")
    assert status == 400 and answer["error"]["code"] == "INVALID_OBJECT_KEY"

    # Sunbird: the seed's request from both channels (other holds no enrolments: its job fails
    # on its own data, and is still its own to read).
    sunbird_ids = {}
    for channel in rows:
        status, answer = await worker.post("/dataset/v1/request/submit", SEED_SUBMIT, channel)
        assert status == 200, answer
        sunbird_ids[channel] = answer["result"]["requestId"]
        accepted.append((channel, sunbird_ids[channel]))
    assert sunbird_ids["acme"] != sunbird_ids["other"]
    tag = SEED_SUBMIT["request"]["tag"]  # type: ignore[index]
    status, _ = await worker.get(
        f"/dataset/v1/request/read/{tag}?requestId={sunbird_ids['acme']}", "other"
    )
    assert status == 404

    # USAspending: each channel's download; the other's file name does not exist for it.
    files = {}
    for channel in rows:
        status, answer = await worker.post("/v2/download/awards", {"filters": {}}, channel)
        assert status == 200, answer
        files[channel] = answer["file_name"]
        accepted.append((channel, files[channel]))
    status, _ = await worker.get(f"/v2/download/status?file_name={files['acme']}", "other")
    assert status == 404

    # Learnosity-style: one dataset_id initialised by both consumers, each with its own links.
    dataset_id = str(uuid.uuid4())
    links = {}
    for channel in rows:
        api = Learnosity(worker, f"{channel}Consumer")
        status, body = await api.call("reports/datasets", {
            "dataset_id": dataset_id, "dataset_type": "sessions-summary-by-group",
            "file_count": 1}, "set")  # fmt: skip
        assert status == 200, body
        [links[channel]] = body["data"]["input_files"]
        accepted.append((channel, dataset_id))
    assert f"/{settings.s3_bucket}/acme/inputs/{dataset_id}/" in links["acme"]
    assert f"/{settings.s3_bucket}/other/inputs/{dataset_id}/" in links["other"]
    # Acme uploads; the other's commence sees only its own (missing) upload.
    assert await asyncio.to_thread(put, links["acme"], b'{"user_id": "u1", "group": "g"}\n') == 200
    status, body = await Learnosity(worker, "otherConsumer").call(
        "jobs/reports/datasets", {"dataset_id": dataset_id}, "set")  # fmt: skip
    assert status == 400 and body["meta"]["code"] == "INPUT_MISSING", body

    # The CLI (a Kafka producer): the same request id in both channels.
    for channel in rows:
        result = subprocess.run(
            [sys.executable, "-m", "app", "submit", "--via", "kafka", "--channel", channel, "--tag", "shared",
             "--dataset", "demo-export", "--request-id", "cli-same", "--config",
             json.dumps({"rows": rows[channel]})],
            cwd=ROOT, env={**os.environ, **settings.as_env()}, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        accepted.append((channel, "cli-same"))

    # Every accepted request is a job its own channel reads; the v1 and CLI jobs hold their
    # own channel's rows and link only their own channel's files.
    for channel, request_id in accepted:

        async def readable(channel: str = channel, request_id: str = request_id) -> Any:
            status, body = await worker.get(f"/v1/jobs/{request_id}", channel)
            return body if status == 200 and body["channel"] == channel else None

        await eventually(readable, 60, f"{channel}'s job {request_id}")
    for channel, n in rows.items():
        for request_id in ("same-id", "cli-same"):

            async def done(channel: str = channel, request_id: str = request_id) -> Any:
                _, body = await worker.get(f"/v1/jobs/{request_id}", channel)
                return body if body["status"] == "SUCCESS" else None

            job = await eventually(done, 90, f"{channel}'s {request_id}")
            assert job["total_rows"] == n, job
            other = "other" if channel == "acme" else "acme"
            assert all(f"/{channel}/" in u and f"/{other}/" not in u for u in job["download_urls"])
        _, listing = await worker.get("/v1/jobs?tag=shared", channel)
        assert {j["request_id"] for j in listing["jobs"]} == {"same-id", "cli-same"}
        assert all(j["channel"] == channel for j in listing["jobs"])
