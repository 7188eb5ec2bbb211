"""The Learnosity-style Data API profile without a broker: calls signed by the official
Learnosity SDK, the meta + data envelope, initialise / commence / jobs / retrieve, signature
and timestamp checks, channel isolation. End to end on the real stack (presigned PUT uploads
included): tests/integration/test_learnosity.py."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from learnosity_sdk.request import Init

from app.api.server import create_web_app
from app.catalog.loader import default_catalog
from app.domain.dedup import fingerprint
from app.domain.model import DatasetRequest, Job, JobError, OutputFile
from app.health import Health
from app.metrics import Metrics
from app.settings import Settings
from app.stream.read_model import Change, ReadModel
from tests.fakes import MemoryStore, api_context

Client = TestClient[web.Request, web.Application]
CONSUMERS = {"yis0TYCu7U9V4o7M": {"secret": "74c5fd430cf1242a527f6223aebd42d30464be22",
                                  "channel": "acme"},
             "otherKey": {"secret": "another-secret", "channel": "evil"}}  # fmt: skip
DONE = str(uuid.UUID(int=1))
WAITING = str(uuid.UUID(int=2))
EXPIRED = str(uuid.UUID(int=3))
THEIRS = str(uuid.UUID(int=4))


def signed(endpoint_action: str, request: dict[str, Any], consumer: str = "yis0TYCu7U9V4o7M",
           secret: str | None = None, **security: str) -> dict[str, str]:  # fmt: skip
    """The form fields the official SDK posts (learnosity_sdk DataApi.request)."""
    packet = {"consumer_key": consumer, "domain": "localhost", **security}
    key = secret or CONSUMERS.get(consumer, {"secret": "x"})["secret"]
    fields = Init("data", packet, key, request, endpoint_action).generate()
    assert isinstance(fields, dict)  # the data service always answers form fields
    return fields


def job(request_id: str, channel: str, status: str, **kw: Any) -> Job:
    done = status == "SUCCESS"
    same = DatasetRequest(tag=request_id, dataset="sessions-summary-by-group", channel=channel,
                          requested_by="u", submitted_at=0, request_id=request_id,
                          inputs=[f"{channel}/inputs/{request_id}/0.ndjson"])  # fmt: skip
    return Job(
        request_id=request_id, tag=request_id, dataset="sessions-summary-by-group",
        channel=channel, requested_by="u", status=status,  # type: ignore[arg-type]
        last_updated=2, config="{}", fingerprint=fingerprint(same), attempt=1, max_attempts=3,
        submitted_at=kw.pop("submitted_at", 1_700_000_000_000),
        completed_at=1_700_000_060_000 if done else None,
        inputs=[f"{channel}/inputs/{request_id}/0.ndjson"],
        outputs=[OutputFile(key=f"{channel}/sessions-summary-by-group/{request_id}/1/{g}.json",
                            rows=3, bytes=10, sha256="x", content_type="application/json")
                 for g in ("School-0", "School-1", "School-2")] if done else [],
        manifest_key=f"{channel}/sessions-summary-by-group/{request_id}/1/manifest.json"
        if done else None,
        **kw,
    )  # fmt: skip


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[Client, list[DatasetRequest], MemoryStore]]:
    Init.disable_telemetry()
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    jobs = [
        job(DONE, "acme", "SUCCESS"),
        job(WAITING, "acme", "AWAITING_INPUT", lease_expires_at=int(time.time() * 1000) + 60_000,
            submitted_at=1_700_000_100_000),
        job(EXPIRED, "acme", "FAILED", error=JobError("INPUT_EXPIRED", "expired"),
            submitted_at=1_700_000_200_000),
        job(THEIRS, "evil", "SUCCESS"),
    ]  # fmt: skip
    read_model.apply([Change(0, n, j.request_id, j) for n, j in enumerate(jobs)])
    submitted: list[DatasetRequest] = []

    async def submit(request: DatasetRequest) -> None:
        submitted.append(request)

    store = MemoryStore()
    context = api_context(
        settings=Settings(learnosity_consumers=json.dumps(CONSUMERS)), health=Health(),
        metrics=Metrics(), catalog=default_catalog(), read_model=read_model, store=store,
        submit=submit,
    )  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as test_client:
        yield test_client, submitted, store
    read_model.close()


async def call(http: Client, path: str, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = await http.post(path, data=fields)
    return response.status, await response.json()


async def test_initialise_with_files_answers_presigned_put_links_and_waits(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, submitted, _ = client
    dataset_id = str(uuid.uuid4())
    request = {"dataset_id": dataset_id, "dataset_type": "sessions-summary-by-group",
               "file_count": 2, "filters": {"mintime": "2026-01-01T00:00:00"},
               "options": {"activity_id": ["act-a"], "format": "csv"}}  # fmt: skip
    status, body = await call(http, "/v2025.2.LTS/reports/datasets", signed("set", request))
    assert status == 200, body
    assert body["meta"]["status"] is True and isinstance(body["meta"]["timestamp"], int)
    data = body["data"]
    assert data["dataset_id"] == dataset_id and data["dataset_type"] == "sessions-summary-by-group"
    assert [u.split("?")[0] for u in data["input_files"]] == [
        f"memory://acme/inputs/{dataset_id}/{n}.ndjson" for n in (0, 1)
    ]
    assert all("expires=3600" in u for u in data["input_files"])  # 60 minutes
    [published] = submitted
    assert published.request_id == dataset_id and published.channel == "acme"
    assert published.await_input_until is not None
    assert published.await_input_until == pytest.approx(time.time() * 1000 + 3_600_000, abs=5_000)
    assert json.loads(published.config) == {"mintime": "2026-01-01T00:00:00",
                                             "activity_id": ["act-a"]}  # fmt: skip
    assert published.output is not None and published.output["format"] == "CSV"


async def test_initialise_without_files_queues_the_job_and_answers_its_reference(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, submitted, _ = client
    dataset_id = str(uuid.uuid4())
    request = {"dataset_id": dataset_id, "dataset_type": "table-export", "file_count": 0,
               "options": {"source": "sessions"}}  # fmt: skip
    status, body = await call(http, "/latest/reports/datasets", signed("set", request))
    assert status == 200, body
    assert body["data"] == {"dataset_id": dataset_id, "dataset_type": "table-export",
                            "job_reference": dataset_id}  # fmt: skip
    assert submitted[0].await_input_until is None


async def test_wrong_initialisations_are_refused_with_a_message(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, submitted, _ = client
    good = {"dataset_id": str(uuid.uuid4()), "dataset_type": "sessions-summary-by-group",
            "file_count": 1}  # fmt: skip
    cases = [
        ({**good, "dataset_id": "not-a-uuid"}, 400, "dataset_id must be a UUID"),
        ({**good, "dataset_type": "nope"}, 400, "nope"),
        ({**good, "file_count": 101}, 400, "file_count"),
        ({**good, "file_count": 0}, 400, "reads uploaded files"),
        ({**good, "options": {"activity_id": "x"}}, 400, "activity_id"),
        ({**good, "options": {"format": "xlsx"}}, 400, "options.format"),
    ]
    for used in (DONE, EXPIRED):  # a dataset id is used once
        cases.append(({**good, "dataset_id": used}, 400, "initialise a new dataset_id"))
    for request, code, words in cases:
        status, body = await call(http, "/v1/reports/datasets", signed("set", request))
        assert status == code, (request, body)
        assert body["meta"]["status"] is False and words in body["meta"]["message"], body
        assert body["data"] is None
    assert submitted == []


async def test_signatures_consumers_and_timestamps_are_checked(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, submitted, _ = client
    request = {"dataset_id": str(uuid.uuid4()), "dataset_type": "sessions-summary-by-group",
               "file_count": 1}  # fmt: skip
    forged = signed("set", request, secret="wrong-secret")
    tampered = signed("set", request)
    tampered["request"] = tampered["request"].replace('"file_count":1', '"file_count":2')
    stale = signed("set", request, timestamp="20200101-0000")
    unknown = signed("set", request, consumer="who", secret="x")
    for fields, words in [(forged, "signature"), (tampered, "signature"),
                          (stale, "timestamp"), (unknown, "consumer")]:  # fmt: skip
        status, body = await call(http, "/v1/reports/datasets", fields)
        assert status == 403 and words in body["meta"]["message"], body
        assert body["meta"]["code"] == "ACCESS_DENIED"
    no_security = await http.post("/v1/reports/datasets", data={"request": json.dumps(request),
                                                                 "action": "set"})  # fmt: skip
    assert no_security.status == 403
    # A gateway header does not replace a signature once consumers are configured.
    header = await http.post("/v1/jobs", json={"request": {}, "action": "get"},
                             headers={"X-Channel-ID": "acme"})  # fmt: skip
    assert header.status == 403
    assert submitted == []


async def test_commence_checks_every_file_was_uploaded_and_not_empty(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, submitted, store = client
    path = "/v2025.2.LTS/jobs/reports/datasets"
    status, body = await call(http, path, signed("set", {"dataset_id": WAITING}))
    assert status == 400 and body["meta"]["code"] == "INPUT_MISSING"
    assert body["meta"]["message"] == "input file 1 of 1 was not uploaded"
    await store.put_bytes(f"acme/inputs/{WAITING}/0.ndjson", b"")
    status, body = await call(http, path, signed("set", {"dataset_id": WAITING}))
    assert status == 400 and body["meta"]["message"] == "input file 1 of 1 is empty"
    assert submitted == []
    await store.put_bytes(f"acme/inputs/{WAITING}/0.ndjson", b'{"user_id": "u1", "group": "g"}')
    status, body = await call(http, path, signed("set", {"dataset_id": WAITING}))
    assert status == 200 and body["data"] == {"job_reference": WAITING}
    [commenced] = submitted
    assert commenced.await_input_until is None and commenced.request_id == WAITING
    assert commenced.inputs == [f"acme/inputs/{WAITING}/0.ndjson"]
    # An expired dataset must start again; another channel's is not found.
    status, body = await call(http, path, signed("set", {"dataset_id": EXPIRED}))
    assert status == 400 and "initialise a new dataset" in body["meta"]["message"]
    status, body = await call(http, path, signed("set", {"dataset_id": THEIRS}))
    assert status == 404


async def test_jobs_by_reference_status_and_time(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, _, _ = client
    every = ["queued", "running", "halted", "completed"]
    status, body = await call(http, "/v1/jobs", signed("get", {"references": [DONE, EXPIRED,
                                                                              THEIRS, "zz"]}))  # fmt: skip
    assert status == 200
    assert body["meta"] == body["meta"] | {"status": True, "records": 1}
    assert body["data"] == [
        {
            "reference": DONE,
            "type": "reports_datasets",
            "status": "completed",
            "dt_created": "2023-11-14 22:13:20",
            "dt_completed": "2023-11-14 22:14:20",
        }
    ]  # default: completed only
    _, body = await call(http, "/v1/jobs", signed("get", {"references": [DONE, EXPIRED, WAITING],
                                                          "status": every}))  # fmt: skip
    assert [(j["reference"], j["status"]) for j in body["data"]] == [(EXPIRED, "halted"),
                                                                     (DONE, "completed")]  # fmt: skip
    _, body = await call(http, "/v1/jobs", signed("get", {"status": every, "limit": 1}))
    assert [j["reference"] for j in body["data"]] == [EXPIRED]
    _, body = await call(http, "/v1/jobs", signed("get", {"status": every,
                                                          "maxtime": "2023-11-14T22:14:00Z"}))  # fmt: skip
    assert [j["reference"] for j in body["data"]] == [DONE]
    _, body = await call(http, "/v1/jobs", signed("get", {"status": every,
                                                          "mintime": 1_700_000_150}))  # fmt: skip
    assert [j["reference"] for j in body["data"]] == [EXPIRED]
    for request in ({"references": ["x"] * 1001}, {"limit": 51}, {"status": ["done"]},
                    {"mintime": "yesterday"}):  # fmt: skip
        status, body = await call(http, "/v1/jobs", signed("get", request))
        assert status == 400 and body["meta"]["status"] is False, request


async def test_retrieve_pages_through_the_files_of_a_completed_dataset(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, _, _ = client
    path = "/v1/reports/datasets"
    status, body = await call(http, path, signed("get", {"dataset_id": DONE, "limit": 2}))
    assert status == 200, body
    data = body["data"]
    assert data["status"] == "completed" and data["dataset_type"] == "sessions-summary-by-group"
    assert [f["name"] for f in data["files"]] == ["School-0.json", "School-1.json"]
    assert data["files"][0]["url"].startswith(f"memory://acme/sessions-summary-by-group/{DONE}/")
    assert body["meta"]["next"] == "2" and body["meta"]["records"] == 2
    assert data["manifest_url"].endswith("manifest.json?expires=3600")
    _, rest = await call(http, path, signed("get", {"dataset_id": DONE, "limit": 2, "next": "2"}))
    assert [f["name"] for f in rest["data"]["files"]] == ["School-2.json"]
    assert "next" not in rest["meta"]
    status, body = await call(http, path, signed("get", {"dataset_id": THEIRS}))
    assert status == 404
    _, body = await call(http, path, signed("get", {"dataset_id": EXPIRED}))
    assert body["data"]["status"] == "halted" and body["data"]["files"] == []
    assert body["data"]["message"] == "expired"


async def test_a_signature_is_bound_to_its_endpoint_its_window_and_its_bytes(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, _, _ = client
    now = dt.datetime.now(dt.UTC)
    # A signed call to one endpoint replayed to another that takes the same request.
    fields = signed("get", {"dataset_id": DONE, "limit": 1})
    status, _ = await call(http, "/v1/reports/datasets", fields)  # retrieve
    assert status == 200
    status, _ = await call(http, "/v1/reports/datasets", fields)  # the same call again: fine
    assert status == 200
    status, body = await call(http, "/v1/jobs", fields)  # elsewhere: refused
    assert status == 403 and "another endpoint" in body["meta"]["message"], body
    # A packet whose expires lies years ahead would be replayable for years.
    stamp = now.strftime("%Y%m%d-%H%M")
    far = signed("get", {"status": ["completed"]}, timestamp=stamp, expires="20990101-0000")
    status, body = await call(http, "/v1/jobs", far)
    assert status == 403 and "expires" in body["meta"]["message"], body
    ahead = (now + dt.timedelta(hours=3)).strftime("%Y%m%d-%H%M")
    status, body = await call(http, "/v1/jobs", signed("get", {}, timestamp=ahead))
    assert status == 403 and "future" in body["meta"]["message"], body
    # Bytes a comparison of text could not take (non-ASCII), a deeply nested request.
    for signature in ("$02$é" * 10, "\u0000", "x" * 10_000):
        hostile = {**signed("get", {}), "security": json.dumps(
            {**json.loads(signed("get", {})["security"]), "signature": signature})}  # fmt: skip
        status, body = await call(http, "/v1/jobs", hostile)
        assert status == 403 and body["meta"]["code"] == "ACCESS_DENIED", signature
    deep = {**signed("get", {}), "request": "[" * 100_000 + "]" * 100_000}
    status, body = await call(http, "/v1/jobs", deep)
    assert status in (400, 403) and body["meta"]["status"] is False


async def test_times_out_of_any_range_are_refused_not_a_500(
    client: tuple[Client, list[DatasetRequest], MemoryStore],
) -> None:
    http, _, _ = client
    for value in (10**30, -(10**30), "9" * 400, "10000-01-01T00:00:00", 1e300, "yesterday"):
        status, body = await call(http, "/v1/jobs", signed("get", {"mintime": value}))
        assert status == 400 and body["meta"]["code"] in ("INVALID_CONFIG", "MALFORMED_REQUEST")
