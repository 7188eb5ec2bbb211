"""The Sunbird profile end to end on a real worker (Kafka 4.1 + S3Proxy): the seed's sample
requests replayed verbatim, the answers checked field by field against the seed's samples, the
files downloaded through the links handed out; standard datasets written by the scheduler and by
``exhaust backfill`` and listed by day; channel isolation on every read and link."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import pyzipper

from app import demo_data
from app.client import ExhaustClient
from app.domain import standard
from app.engine.storage import S3ObjectStore
from app.settings import Settings
from tests.integration.harness import ROOT, Worker, download, eventually, start_worker
from tests.unit.test_sunbird_api import SEED_READ, SEED_SUBMIT, TAG, assert_like_seed

pytestmark = pytest.mark.integration
CHANNEL = "ORG_001"


async def read_job(worker: Worker, request_id: str, channel: str = CHANNEL) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        status, body = await worker.get(
            f"/dataset/v1/request/read/{TAG}?requestId={request_id}", channel
        )
        if status == 200 and body["result"]["status"] in ("SUCCESS", "FAILED"):
            return dict(body)
        return None

    body: dict[str, Any] = await eventually(done, 120, f"job {request_id}", interval=0.3)
    return body


def today() -> dt.date:
    """Taken when a test starts (not at import: a run may cross midnight)."""
    return dt.datetime.now(dt.UTC).date()


async def fill_sunbird(worker: Worker, day: dt.date) -> list[demo_data.SampleDataset]:
    client = ExhaustClient(worker.url, CHANNEL, user="tester", timeout=60, retries=0)
    datasets = demo_data.sunbird(day, history_days=5)
    for sample in datasets:
        await asyncio.to_thread(client.fill, sample.code, sample.rows, sample.columns, append=False)
    return datasets


async def test_the_seeds_on_demand_requests_end_to_end(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(standard_catch_up_days=0)
    worker = await start_worker(workers, settings, "w1")
    datasets = {d.code: d for d in await fill_sunbird(worker, today())}

    # The seed's sample submission, verbatim.
    status, submitted = await worker.post("/dataset/v1/request/submit", SEED_SUBMIT, CHANNEL)
    assert status == 200, submitted
    assert submitted["params"] == submitted["params"] | {
        "msgid": "4f04da60-1e24-4d31-aa7b-1daf91c46341", "status": "successful"
    }  # fmt: skip
    request_id = submitted["result"]["requestId"]
    assert len(request_id) == 32 and request_id == request_id.upper()

    body = await read_job(worker, request_id)
    assert_like_seed(body, SEED_READ)
    result = body["result"]
    assert result["status"] == "SUCCESS", result
    assert result["tag"] == f"{TAG}:{CHANNEL}" and result["requestedChannel"] == CHANNEL
    assert result["dataset"] == "userinfo-exhaust" and result["attempts"] >= 1
    assert result["jobStats"]["dtJobCompleted"] >= result["jobStats"]["dtJobSubmitted"]
    assert result["expiresAt"] > result["lastUpdated"]
    [url] = result["downloadUrls"]
    archive = pyzipper.AESZipFile(io.BytesIO(await asyncio.to_thread(download, url)))
    [name] = archive.namelist()
    with pytest.raises(RuntimeError):
        archive.read(name)  # no key, no data
    archive.setpassword(b"xxx-yyy")
    rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
    batch = "0131092891882700800"
    enrolled = {r[4] for r in datasets["course-enrolments"].rows if r[0] == batch}
    assert {r["User UUID"] for r in rows} == enrolled
    emails = {u[0]: u[2] for u in datasets["users"].rows}
    assert all(r["Email ID"] == emails[r["User UUID"]] for r in rows)

    # The same request again the same day is the same job.
    status, again = await worker.post("/dataset/v1/request/submit", SEED_SUBMIT, CHANNEL)
    assert status == 200 and again["result"]["requestId"] == request_id
    assert again["result"]["status"] == "SUCCESS"

    # progress-exhaust of the same batch under the same tag; then the list, newest first.
    fields = {k: v for k, v in SEED_SUBMIT["request"].items() if k != "encryptionKey"}  # type: ignore[attr-defined]
    progress = {**SEED_SUBMIT, "request": {**fields, "dataset": "progress-exhaust"}}
    status, second = await worker.post("/dataset/v1/request/submit", progress, CHANNEL)
    assert status == 200, second
    done = await read_job(worker, second["result"]["requestId"])
    assert done["result"]["status"] == "SUCCESS", done
    text = (await asyncio.to_thread(download, done["result"]["downloadUrls"][0])).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(enrolled)
    assert list(table[0])[:5] == ["Collection Id", "Collection Name", "Batch Id", "Batch Name",
                                  "User UUID"]  # fmt: skip
    status, listing = await worker.get(f"/dataset/v1/request/list/{TAG}", CHANNEL)
    assert status == 200
    assert listing["result"]["count"] == 2
    assert [j["requestId"] for j in listing["result"]["jobs"]] == [
        second["result"]["requestId"], request_id
    ]  # fmt: skip

    # Another channel: not found, an empty list, and its own request fails on its own data.
    status, other = await worker.get(
        f"/dataset/v1/request/read/{TAG}?requestId={request_id}", "ORG_002"
    )
    assert status == 404 and other["params"]["status"] == "failed"
    status, empty = await worker.get(f"/dataset/v1/request/list/{TAG}", "ORG_002")
    assert empty["result"] == {"count": 0, "jobs": []}
    status, theirs = await worker.post("/dataset/v1/request/submit", progress, "ORG_002")
    assert status == 200 and theirs["result"]["requestId"] != second["result"]["requestId"]
    failed = await read_job(worker, theirs["result"]["requestId"], "ORG_002")
    assert failed["result"]["status"] == "FAILED" and failed["result"]["downloadUrls"] == []
    assert "course-enrolments" in failed["result"]["statusMessage"]


async def test_standard_datasets_by_the_scheduler_and_backfill_listed_by_day(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(
        standard_catch_up_days=2, standard_delay_seconds=0, scheduler_interval_seconds=1,
        public_base_url="https://cdn.abc.com/data-store",
    )  # fmt: skip
    worker = await start_worker(workers, settings, "w1")
    TODAY = today()  # noqa: N806  (the test's fixed day)
    datasets = {d.code: d for d in await fill_sunbird(worker, TODAY)}
    days = [TODAY - dt.timedelta(days=n) for n in (2, 1)]

    # The scheduler submits the last two days once the channel holds summary-events.
    async def listed() -> dict[str, Any] | None:
        status, body = await worker.get(
            f"/dataset/get/summary-rollup?from={days[0]}&to={days[1]}", CHANNEL
        )
        assert status == 200, body
        return body if len(body["result"]["periodWiseFiles"]) == 2 else None

    body = await eventually(listed, 120, "two days of summary-rollup", interval=0.5)
    result = body["result"]
    assert sorted(result["periodWiseFiles"]) == [d.isoformat() for d in days]
    assert result["expiresAt"] > 0 and len(result["files"]) == 2
    for day in days:
        [url] = result["periodWiseFiles"][day.isoformat()]
        assert f"/{CHANNEL}/summary-rollup/" in url and url.split("?")[0].endswith(f"/{day}.csv")
        rows = list(csv.DictReader(io.StringIO((await asyncio.to_thread(download, url)).decode())))
        events = [e for e in datasets["summary-events"].rows if e[0].startswith(day.isoformat())]
        expected = Counter((e[3], e[4]) for e in events)
        assert {(r["Content Id"], r["App Id"]): int(r["Total Sessions"]) for r in rows} == expected

    # Backfill an older day from the command line; it is listed next to the others.
    old = TODAY - dt.timedelta(days=4)
    env = {**__import__("os").environ, **settings.as_env()}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "backfill", "summary-rollup", "--from", str(old),
         "--to", str(old), "--channel", CHANNEL, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [job] = json.loads(done.stdout)["jobs"]
    assert job["request_id"] == standard.standard_request_id("summary-rollup", CHANNEL, old)

    async def backfilled() -> dict[str, Any] | None:
        status, body = await worker.get(f"/dataset/get/summary-rollup?since={old}", CHANNEL)
        assert status == 200, body
        return body if old.isoformat() in body["result"]["periodWiseFiles"] else None

    await eventually(backfilled, 120, "the backfilled day", interval=0.5)

    # Public rollup: plain links under the public base URL, without user ids.
    status, public = await worker.get(
        f"/public/dataset/get/public-summary-rollup?from={days[0]}&to={days[1]}", CHANNEL
    )
    assert status == 200, public
    for day in days:
        [url] = public["result"]["periodWiseFiles"][day.isoformat()]
        assert url.startswith(f"https://cdn.abc.com/data-store/{CHANNEL}/public-summary-rollup/")
        assert url.endswith(f"/{day}.csv") and "?" not in url
        # The base URL serves the bucket's public/ prefix, where the file is, and nothing else.
        async with S3ObjectStore(settings) as store:
            path = url.removeprefix("https://cdn.abc.com/data-store/")
            assert await store.size("public/" + path) is not None
            assert await store.size(path) is None

    # Another channel (no data of its own) sees nothing of these.
    status, other = await worker.get(f"/dataset/get/summary-rollup?since={old}", "ORG_002")
    assert status == 200 and other["result"] == {"files": [], "periodWiseFiles": {},
                                                 "expiresAt": 0}  # fmt: skip
    status, other = await worker.get("/public/dataset/get/public-summary-rollup", "ORG_002")
    assert "files" not in other["result"]


async def test_an_unchanged_sunbird_client_on_the_real_stack(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    """As Sunbird's own service answers (its JobAPIService, CommonUtil and configuration): the
    request id a client computes (body's requestedBy, the server's day, |type), params.err, an
    unknown job and a changed config answered Sunbird's way when switched so, and the public
    route without a channel header, with date_range and date."""
    import hashlib
    import zoneinfo

    settings = settings_factory(
        standard_catch_up_days=0, sunbird_unknown_job="200", sunbird_config_conflict="existing",
        sunbird_request_day_timezone="Asia/Kolkata", public_base_url="https://cdn.abc.com/ds",
        anonymous_channels={"sunbird-public": CHANNEL},
    )  # fmt: skip
    worker = await start_worker(workers, settings, "w1")
    await fill_sunbird(worker, today())
    request = {
        **SEED_SUBMIT["request"],  # type: ignore[dict-item]
        "datasetConfig": {"batchId": "0131092891882700800", "type": "userinfo-exhaust"},
    }
    day = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Kolkata")).date().isoformat()
    key = "|".join(("userinfo-exhaust", TAG, str(request["requestedBy"]), CHANNEL, day,
                    "userinfo-exhaust"))  # fmt: skip
    status, submitted = await worker.post("/dataset/v1/request/submit",
                                          {**SEED_SUBMIT, "request": request}, CHANNEL)  # fmt: skip
    assert status == 200, submitted
    request_id = submitted["result"]["requestId"]
    assert request_id == hashlib.md5(key.encode()).hexdigest().upper()
    done = await read_job(worker, request_id)
    assert done["result"]["status"] == "SUCCESS", done

    # The same id with another config: the job it names, as Sunbird answers.
    changed = {**request, "datasetConfig": {"batchId": "0131092891882700801",
                                            "type": "userinfo-exhaust"}}  # fmt: skip
    status, again = await worker.post("/dataset/v1/request/submit",
                                      {**SEED_SUBMIT, "request": changed}, CHANNEL)  # fmt: skip
    assert status == 200 and again["result"]["requestId"] == request_id
    assert again["result"]["datasetConfig"]["batchId"] == "0131092891882700800"

    # An unknown job: 200, failed, responseCode OK; a refusal: err is the response code.
    status, unknown = await worker.get(f"/dataset/v1/request/read/{TAG}?requestId=NOPE", CHANNEL)
    assert status == 200 and unknown["responseCode"] == "OK"
    assert (unknown["params"]["status"], unknown["params"]["err"]) == ("failed", "OK")
    bad = {**SEED_SUBMIT, "request": {**request, "datasetConfig": {}}}
    status, refused = await worker.post("/dataset/v1/request/submit", bad, CHANNEL)
    assert status == 400 and refused["params"]["err"] == "CLIENT_ERROR"
    assert refused["params"]["errmsg"] == "datasetConfig is empty"

    # The public route: no channel header, Sunbird's date_range and date.
    for query in ("date_range=LAST_7_DAYS", f"date={today().isoformat()}"):
        status, public = await worker.get(f"/public/dataset/get/public-summary-rollup?{query}")
        assert status == 200 and public["params"]["status"] == "successful", (query, public)
    status, wrong = await worker.get("/public/dataset/get/public-summary-rollup?date_range=X")
    assert status == 400 and wrong["params"]["errmsg"].startswith("Provided dateRange X is not")
    status, _ = await worker.get("/dataset/get/summary-rollup")  # no mapping there
    assert status == 403
