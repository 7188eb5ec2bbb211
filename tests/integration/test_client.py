"""The jobs client against a real worker: submit with a chosen or given id, wait with progress,
list a page at a time, cancel, and download every file verified, resuming a cut download."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from app.client.jobs import AsyncJobsClient, Job, JobsClient
from app.client.status_stream import JobChange, job_changes
from app.domain.errors import AlreadyFinished, NotFound, NotReady, NotRetryable
from app.settings import Settings
from tests.integration.harness import Worker, read_topic, start_worker

pytestmark = pytest.mark.integration


class Running(Exception):
    """Raised by a progress callback to stop waiting once the job runs."""


async def test_a_job_submitted_waited_for_and_downloaded_verified_and_resumed(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    seen: list[Job] = []
    async with AsyncJobsClient(worker.url, "acme", user="tester") as client:
        submitted = await client.submission("client-tag", "demo-export", config={"rows": 5000})
        assert submitted.status == "SUBMITTED" and not submitted.duplicate
        again = await client.submission(
            "client-tag", "demo-export", config={"rows": 5000}, request_id=submitted.request_id
        )
        assert again.request_id == submitted.request_id

        job = await client.wait(submitted.request_id, timeout=120, poll=0.2, progress=seen.append)
        assert job.status == "SUCCESS" and seen[-1] == job
        assert job.record["duplicates"] == 1  # the second submission is the same job
        assert len({(j.status, j.progress, j.attempt) for j in seen}) == len(seen)  # changes only
        paths = await client.download(job.request_id, tmp_path / "out")
        assert [p.name for p in paths] == [o.name for o in job.outputs]
        for path, output in zip(paths, job.outputs, strict=True):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == output.sha256

        # Cut the largest file in half and spoil the smallest: the next download resumes the
        # first with a Range request and fetches the second again.
        largest = max(paths, key=lambda p: p.stat().st_size)
        whole = largest.read_bytes()
        largest.write_bytes(whole[: len(whole) // 2])
        smallest = min(paths, key=lambda p: p.stat().st_size)
        smallest.write_bytes(b"x" * smallest.stat().st_size)
        await client.download(job.request_id, tmp_path / "out")
        assert largest.read_bytes() == whole
        for path, output in zip(paths, job.outputs, strict=True):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == output.sha256

        # Its records on the status stream carry CloudEvents attributes: routable undecoded.
        records = [r for r in await read_topic(settings, "jobs")
                   if r.key == f"acme/{job.request_id}".encode()]  # fmt: skip
        types = [dict(r.headers)["ce_type"] for r in records]
        assert types[-1] == b"dev.exhaust.job.SUCCESS" and b"dev.exhaust.job.SUBMITTED" in types

        with pytest.raises(AlreadyFinished):
            await client.cancel(job.request_id)
        with pytest.raises(NotFound):
            await client.get("no-such-job")


def test_the_blocking_client_lists_pages_and_refuses_to_download_an_unfinished_job(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    worker = asyncio.run(start_worker(workers, settings_factory(), "w1"))
    with JobsClient(worker.url, "acme") as client:
        ids = {client.submit("paged", "demo-export", config={"rows": 10}) for _ in range(5)}
        for job_id in ids:
            assert client.wait(job_id, timeout=60, poll=0.2).status == "SUCCESS"
        listed = [job.request_id for job in client.jobs(tag="paged", page_size=2)]
        assert sorted(listed) == sorted(ids)  # three pages, nothing twice
        slow = client.submit("paged-slow", "demo-export", config={"rows": 20_000_000})

        def stop_when_running(job: Job) -> None:
            if job.status == "PROCESSING":
                raise Running

        with pytest.raises(Running):
            client.wait(slow, timeout=60, poll=0.2, progress=stop_when_running)
        with pytest.raises(NotReady) as refused:
            client.download(slow, tmp_path)
        assert refused.value.details["status"] == "PROCESSING"
        assert client.cancel(slow) == "CANCEL_REQUESTED"
        assert client.wait(slow, timeout=60, poll=0.2).status == "CANCELLED"

        # A retry is the same job (its id, parameters) in a new attempt, which can be followed.
        assert client.retry(slow) == "RETRY_REQUESTED"
        with pytest.raises(Running):
            client.wait(slow, timeout=60, poll=0.2, progress=stop_when_running, after_attempt=1)
        assert client.get(slow).attempt == 2
        with pytest.raises(NotRetryable) as running:
            client.retry(slow)
        assert running.value.details["status"] == "PROCESSING"
        client.cancel(slow)
        ended = client.wait(slow, timeout=60, poll=0.2, after_attempt=1)
        assert (ended.status, ended.attempt) == ("CANCELLED", 2)


async def test_a_downstream_service_follows_typed_status_changes_from_the_jobs_topic(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    # From a point in time taken before the submits: wherever the read is positioned by the
    # time it starts, it starts at the first record stamped from then on.
    changes = job_changes(settings, channel="acme", since=dt.datetime.now(dt.UTC))
    async with AsyncJobsClient(worker.url, "acme") as acme, \
            AsyncJobsClient(worker.url, "rival") as rival:  # fmt: skip
        await rival.submit("followed", "demo-export", config={"rows": 5}, request_id="same")
        await acme.submit("followed", "demo-export", config={"rows": 5}, request_id="same")
        seen: list[JobChange] = [await anext(changes)]
        while seen[-1].job.status != "SUCCESS":
            seen.append(await anext(changes))
        await changes.aclose()
    assert {c.job.channel for c in seen} == {"acme"}  # the rival's job is not read
    assert seen[0].job.status == "SUBMITTED" and seen[-1].type.endswith("SUCCESS")
    assert seen[-1].job.outputs and seen[-1].job.request_id == "same"

    # A catch-up from the beginning ends at the topic's end and sees the job's last state;
    # resuming after the last offset handled reads nothing older again.
    caught = [c async for c in job_changes(settings, channel="acme", since="beginning",
                                           until_end=True)]  # fmt: skip
    assert caught[-1].job.status == "SUCCESS"
    last = {c.partition: c.offset for c in caught}
    rest = [c async for c in job_changes(settings, offsets=last, until_end=True)]
    assert all(c.offset > last.get(c.partition, -1) for c in rest)
