"""The Learnosity-style dataset flow end to end on a real worker (Kafka 4.1 + S3Proxy), driven
by the official Learnosity SDK: initialise → PUT the NDJSON to the presigned links → commence
→ poll jobs → retrieve the files (one per group) and check their statistics; an upload left
too long expires (S3Proxy refuses the link, the job fails INPUT_EXPIRED, commence says start
again); another consumer's channel sees nothing."""

from __future__ import annotations

import asyncio
import json
import statistics
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from learnosity_sdk.request import DataApi, Init

from app import demo_data
from app.client import ExhaustClient
from app.settings import Settings
from tests.integration.harness import Worker, download, eventually, start_worker

pytestmark = pytest.mark.integration
CONSUMERS = {"acmeConsumer": {"secret": "acme-secret-1", "channel": "acme"},
             "otherConsumer": {"secret": "other-secret-2", "channel": "other"}}  # fmt: skip
EVERY = ["queued", "running", "halted", "completed"]


class Learnosity:
    """The SDK's Data API client against a worker (its requests are synchronous)."""

    def __init__(self, worker: Worker, consumer: str) -> None:
        self.base = f"{worker.url}/v2025.2.LTS"
        self.consumer = consumer

    async def call(self, endpoint: str, request: dict[str, Any], action: str) -> Any:
        security = {"consumer_key": self.consumer, "domain": "localhost"}
        secret = CONSUMERS[self.consumer]["secret"]
        response = await asyncio.to_thread(
            DataApi().request, f"{self.base}/{endpoint}", security, secret, request, action
        )
        return response.status_code, response.json()


def put(url: str, data: bytes) -> int:
    request = urllib.request.Request(url, data=data, method="PUT", headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_the_dataset_flow_from_initialise_to_the_files_of_every_group(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    Init.disable_telemetry()
    settings = settings_factory(learnosity_consumers=json.dumps(CONSUMERS),
                                standard_catch_up_days=0)  # fmt: skip
    worker = await start_worker(workers, settings, "w1")
    sessions = demo_data.learnosity_sessions()
    filler = ExhaustClient(worker.url, "acme", user="tester", timeout=60, retries=0)
    await asyncio.to_thread(filler.fill, "sessions", sessions.rows, sessions.columns, append=False)
    api = Learnosity(worker, "acmeConsumer")

    # 1. Initialise with two input files.
    dataset_id = str(uuid.uuid4())
    status, body = await api.call("reports/datasets", {
        "dataset_id": dataset_id, "dataset_type": "sessions-summary-by-group", "file_count": 2,
        "filters": {"activity_id": ["act-math-2026-t1"]},
    }, "set")  # fmt: skip
    assert status == 200 and body["meta"]["status"] is True, body
    links = body["data"]["input_files"]
    assert len(links) == 2 and body["data"]["dataset_id"] == dataset_id

    # Commencing before the uploads is refused; the job is not listed as a job yet.
    status, early = await api.call("jobs/reports/datasets", {"dataset_id": dataset_id}, "set")
    assert status == 400 and early["meta"]["code"] == "INPUT_MISSING", early
    _, listed = await api.call("jobs", {"references": [dataset_id], "status": EVERY}, "get")
    assert listed["data"] == []

    # 2a. Upload the users in two files with the presigned PUT links (as Learnosity says).
    lines = demo_data.learnosity_users().splitlines(keepends=True)
    half = len(lines) // 2
    for link, part in zip(links, (lines[:half], lines[half:]), strict=True):
        assert await asyncio.to_thread(put, link, "".join(part).encode()) == 200
    # 2b. Commence; twice is the same job.
    status, body = await api.call("jobs/reports/datasets", {"dataset_id": dataset_id}, "set")
    assert status == 200 and body["data"] == {"job_reference": dataset_id}, body
    _, again = await api.call("jobs/reports/datasets", {"dataset_id": dataset_id}, "set")
    assert again["data"] == {"job_reference": dataset_id}

    # 3. Poll the job until completed.
    async def completed() -> dict[str, Any] | None:
        _, found = await api.call("jobs", {"references": [dataset_id], "status": EVERY}, "get")
        assert found["meta"]["status"] is True
        [job] = found["data"]
        assert job["status"] in ("queued", "running", "completed"), job
        return dict(job) if job["status"] == "completed" else None

    job = await eventually(completed, 120, "the dataset job", interval=0.3)
    assert job["reference"] == dataset_id and job["dt_completed"] >= job["dt_created"]

    # 4. Retrieve the files: one per school, each with its users and its statistics.
    status, result = await api.call("reports/datasets", {"dataset_id": dataset_id}, "get")
    assert status == 200 and result["data"]["status"] == "completed", result
    files = result["data"]["files"]
    assert sorted(f["name"] for f in files) == sorted(
        f"{s.replace(' ', '_')}.json" for s in demo_data.SCHOOLS
    )
    user_school = {json.loads(line)["user_id"]: json.loads(line)["group"] for line in lines}
    math: dict[str, float] = {}
    for row in sessions.rows:
        if row[2] == "act-math-2026-t1":
            math[row[1]] = math.get(row[1], 0) + row[3]
    for file in files:
        rows = json.loads(await asyncio.to_thread(download, file["url"]))
        school = rows[0]["group"]
        assert file["name"] == f"{school.replace(' ', '_')}.json"
        members = sorted(u for u, s in user_school.items() if s == school)
        assert [r["user_id"] for r in rows] == members
        scores = [math[u] for u in members if u in math]
        assert rows[0]["population"] == len(members)
        assert rows[0]["mean_score"] == pytest.approx(statistics.mean(scores), abs=1e-3)
        assert rows[0]["median_score"] == pytest.approx(statistics.median(scores))
        assert rows[0]["stddev_score"] == pytest.approx(statistics.stdev(scores), abs=1e-3)

    # Another consumer (another channel) sees neither the job nor the dataset.
    other = Learnosity(worker, "otherConsumer")
    _, theirs = await other.call("jobs", {"references": [dataset_id], "status": EVERY}, "get")
    assert theirs["data"] == []
    status, _ = await other.call("reports/datasets", {"dataset_id": dataset_id}, "get")
    assert status == 404
    status, _ = await other.call("jobs/reports/datasets", {"dataset_id": dataset_id}, "set")
    assert status == 404


async def test_an_upload_left_past_its_links_expiry_means_starting_again(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    Init.disable_telemetry()
    settings = settings_factory(learnosity_consumers=json.dumps(CONSUMERS),
                                learnosity_upload_expiry_seconds=2, tick_seconds=0.5,
                                standard_catch_up_days=0)  # fmt: skip
    worker = await start_worker(workers, settings, "w1")
    api = Learnosity(worker, "acmeConsumer")
    dataset_id = str(uuid.uuid4())
    status, body = await api.call("reports/datasets", {
        "dataset_id": dataset_id, "dataset_type": "sessions-summary-by-group", "file_count": 1,
    }, "set")  # fmt: skip
    assert status == 200, body
    [link] = body["data"]["input_files"]

    async def halted() -> dict[str, Any] | None:
        _, found = await api.call("jobs", {"references": [dataset_id], "status": ["halted"]},
                                  "get")  # fmt: skip
        return dict(found["data"][0]) if found["data"] else None

    await eventually(halted, 60, "the waiting dataset to expire", interval=0.3)
    assert await asyncio.to_thread(put, link, b'{"user_id": "u", "group": "g"}\n') == 403
    status, late = await api.call("jobs/reports/datasets", {"dataset_id": dataset_id}, "set")
    assert status == 400 and "initialise a new dataset" in late["meta"]["message"], late
    _, result = await api.call("reports/datasets", {"dataset_id": dataset_id}, "get")
    assert result["data"]["status"] == "halted" and "expired" in result["data"]["message"]
