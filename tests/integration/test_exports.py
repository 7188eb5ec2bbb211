"""Exports end to end on a real worker: fill a managed dataset over HTTP, request an export over
HTTP, follow the job to SUCCESS and download its files through the links the API hands out."""

from __future__ import annotations

import asyncio
import io
import json
import statistics
from collections.abc import Callable
from typing import Any

import pytest
import pyzipper

from app.client import ExhaustClient
from app.settings import Settings
from tests.integration.harness import Worker, download, eventually, read_topic, start_worker

pytestmark = pytest.mark.integration

COLUMNS = [
    {"name": "id", "alias": "ID", "type": "integer"},
    {"name": "carrier", "alias": "Carrier", "type": "string"},
    {"name": "day", "type": "date"},
    {"name": "delay", "type": "number"},
]
ROWS: list[tuple[int, str, str, int]] = [
    (i, ["UA", "AA", "DL"][i % 3], f"2026-01-{1 + i % 5:02d}", i % 90 - 10) for i in range(3000)
]


async def finished(worker: Worker, request_id: str, channel: str = "acme") -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        status, job = await worker.get(f"/v1/jobs/{request_id}", channel)
        return job if status == 200 and job["status"] in ("SUCCESS", "FAILED") else None

    job: dict[str, Any] = await eventually(done, 120, f"job {request_id} finished", interval=0.3)
    return job


async def test_a_filled_dataset_exported_over_http_with_filters_a_key_and_periods(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    client = ExhaustClient(worker.url, "acme", user="tester", timeout=60, retries=0)
    await asyncio.to_thread(client.fill, "flights", ROWS, COLUMNS, append=False)

    secret = "s3cret-pass-phrase"
    status, job = await worker.post("/v1/requests", {
        "tag": "exports", "dataset": "table-export", "request_id": "enc-1",
        "config": {"source": "flights", "sort": [{"column": "id"}]},
        "columns": ["ID", "day", "delay"],
        "filters": {"and": [{"column": "carrier", "op": "=", "value": "UA"},
                            {"column": "delay", "op": ">=", "value": 0}]},
        "output": {"format": "CSV", "partition_by": "day"},
        "encryption_key": secret,
    }, "acme")  # fmt: skip
    assert status == 202, job
    job = await finished(worker, "enc-1")
    assert job["status"] == "SUCCESS", job
    assert "sealed_key" not in job and secret not in json.dumps(job)
    [url] = job["download_urls"]
    with pyzipper.AESZipFile(io.BytesIO(await asyncio.to_thread(download, url))) as archive:
        archive.setpassword(secret.encode())
        names = sorted(archive.namelist())
        texts = {n: archive.read(n).decode() for n in names}
    assert names == [f"2026-01-{d:02d}.csv" for d in range(1, 6)]
    expected = [r for r in ROWS if r[1] == "UA" and r[3] >= 0]
    lines = [line for n in names for line in texts[n].splitlines()[1:]]
    assert texts[names[0]].splitlines()[0] == "ID,day,delay"
    assert sorted(int(line.split(",")[0]) for line in lines) == [r[0] for r in expected]
    assert job["total_rows"] == len(expected)

    # Nothing of the key in clear on any topic the service wrote.
    for topic in ("requests", "jobs", "work"):
        raw = await read_topic(settings, topic)
        assert all(secret.encode() not in (m.value or b"") for m in raw), topic

    # Another channel sees neither the job nor the dataset.
    assert (await worker.get("/v1/jobs/enc-1", "other"))[0] == 404
    status, job = await worker.post("/v1/requests", {
        "tag": "exports", "dataset": "table-export", "config": {"source": "flights"},
    }, "other")  # fmt: skip
    assert status == 202
    failed = await finished(worker, job["request_id"], "other")
    assert failed["status"] == "FAILED" and failed["error"]["code"] == "SOURCE_NOT_FOUND"


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"config": {"source": "flights", "sort": [{"column": 1}]}}, "INVALID_CONFIG"),
    ({"config": {"source": "flights"}, "filters": {"column": "id", "op": "~"}}, "INVALID_FILTER"),
    ({"config": {"source": "flights"}, "output": {"format": "XLSX"}}, "INVALID_OUTPUT"),
    ({"config": {"source": "flights"}, "output": {"compression": "GZIP"}, "encryption_key": "k-secret-1"},
     "INVALID_OUTPUT"),
    ({"config": {"source": "flights"}, "columns": "id"}, "MALFORMED_REQUEST"),
]  # fmt: skip


async def test_requests_the_engine_would_refuse_are_refused_at_submit(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    worker = await start_worker(workers, settings_factory(), "w1")
    for body, code in REFUSED:
        status, answer = await worker.post(
            "/v1/requests", {"tag": "t", "dataset": "table-export", **body}, "acme"
        )
        assert (status, answer["error"]["code"]) == (400, code), (body, answer)
    status, listing = await worker.get("/v1/jobs", "acme")
    assert status == 200 and listing["jobs"] == []  # nothing was published


async def test_a_summary_of_an_uploaded_input_file(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    from app.engine.storage import S3ObjectStore

    lines = "\n".join(json.dumps({"user": f"u{i}", "group": f"g{i % 4}", "score": i % 10})
                      for i in range(400))  # fmt: skip
    async with S3ObjectStore(settings) as store:
        await store.put_bytes("acme/inputs/scores.ndjson", lines.encode())
    status, job = await worker.post("/v1/requests", {
        "tag": "inputs", "dataset": "summary-report", "request_id": "sum-1",
        "inputs": ["acme/inputs/scores.ndjson"],
        "config": {"source": "acme/inputs/scores.ndjson", "group_by": ["group"],
                   "metrics": [{"op": "count"}, {"op": "avg", "column": "score", "as": "mean"},
                               {"op": "median", "column": "score"}]},
        "output": {"format": "JSON"},
    }, "acme")  # fmt: skip
    assert status == 202, job
    job = await finished(worker, "sum-1")
    assert job["status"] == "SUCCESS", job
    rows = json.loads(await asyncio.to_thread(download, job["download_urls"][0]))
    scores = {g: [i % 10 for i in range(400) if i % 4 == g] for g in range(4)}
    assert rows == [
        {"group": f"g{g}", "count": 100, "mean": statistics.mean(s),
         "median_score": statistics.median(s)}
        for g, s in scores.items()
    ]  # fmt: skip
