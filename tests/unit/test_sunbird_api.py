"""The Sunbird profile's HTTP surface against seed 002, without a broker: envelopes, field names
and types, Sunbird's validation messages and date rules, channel isolation. The same flows run
end to end on the real stack in tests/integration/test_sunbird.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from app.api import sunbird
from app.api.server import create_web_app
from app.catalog.loader import default_catalog
from app.domain import standard
from app.domain.model import DatasetRequest, Job, JobError, OutputFile
from app.health import Health
from app.metrics import Metrics
from app.sealing import Sealer
from app.settings import Settings
from app.stream.read_model import Change, ReadModel
from tests.corpus import load
from tests.fakes import MemoryStore, api_context

Client = TestClient[web.Request, web.Application]
SEALER = Sealer(Fernet.generate_key())
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)  # the profile's clock, pinned
TODAY = NOW.date()

# Seed 002, "Sample Request", verbatim.
SEED_SUBMIT = {
    "id": "ekstep.analytics.job.request.submit",
    "ver": "1.0",
    "ts": "2016-12-07T12:40:40+05:30",
    "params": {"msgid": "4f04da60-1e24-4d31-aa7b-1daf91c46341"},
    "request": {
        "tag": "do_11299034610144870411_0131092891882700800",
        "requestedBy": "95e4942d-cbe8-477d-aebd-ad8e6de4bfc8",
        "dataset": "userinfo-exhaust",
        "encryptionKey": "xxx-yyy",
        "datasetConfig": {"batchId": "0131092891882700800"},
    },
}
# Seed 002, the sample response of GET /dataset/v1/request/read, verbatim.
SEED_READ = json.loads("""{
    "id": "ekstep.analytics.job.request.info",
    "ver": "1.0",
    "ts": "2016-12-07T12:43:23.890+00:00",
    "params": {
        "resmsgid": "4f04da60-1e24-4d31-aa7b-1daf91c46341",
        "status": "successful"
    },
    "responseCode": "OK",
    "result": {
        "attempts": 0,
        "lastUpdated": 1600845394119,
        "tag": "do_11299034610144870411_0131092891882700800:ORG_001",
        "expiresAt": 1598632215685,
        "datasetConfig": {
            "batchId": "0131092891882700800"
        },
        "downloadUrls": [
          "https://dev.blob.core.windows.net/reports/6a54bfa283de43a89086e69e2efdc9eb6750493d/reports-019243943994839.csv?sv=2017-04-17&se=2071-04-26T08%3A30%3A30Z&sr=b&sp=r&sig=61LYReUgK/v/vewwec/LhoV64r7SvHbYGnGzE9FiGbY%3D"
        ],
        "requestedBy": "95e4942d-cbe8-477d-aebd-ad8e6de4bfc8",
        "jobStats": {
            "dtJobSubmitted": 1600845394119,
            "dtJobCompleted": 1600845394119,
            "executionTime": 200
        },
        "status": "SUCCESS",
        "dataset": "progress-exhaust",
        "requestId": "AF7B9BE5D0D075EA0DB8C6D12E192D5F",
        "requestedChannel": "ORG_001"
    }
}""")
TAG = "do_11299034610144870411_0131092891882700800"
STORED = f"{TAG}:ORG_001"


def shape(value: Any) -> Any:
    """Names and JSON types of ``value``, recursively (list items by their first)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def assert_like_seed(answer: dict[str, Any], seed: dict[str, Any]) -> None:
    """Every field of the seed is in the answer with the seed's JSON type."""
    for key, value in seed.items():
        assert key in answer, key
        if isinstance(value, dict):
            assert_like_seed(answer[key], value)
        elif isinstance(value, list) and value:
            assert isinstance(answer[key], list) and answer[key], key
            assert shape(answer[key][0]) == shape(value[0]), key
        else:
            assert type(answer[key]) is type(value), (key, answer[key], value)


def job(
    request_id: str,
    channel: str,
    *,
    tag: str = STORED,
    dataset: str = "progress-exhaust",
    status: str = "SUCCESS",
    submitted_at: int = 1600845394000,
    config: str = '{"batchId": "0131092891882700800"}',
    period: str | None = None,
    error: JobError | None = None,
) -> Job:
    done = status in ("SUCCESS", "FAILED")
    name = f"{period}.csv" if period else "progress-exhaust.csv"
    return Job(
        request_id=request_id, tag=tag, dataset=dataset, channel=channel,
        requested_by="95e4942d-cbe8-477d-aebd-ad8e6de4bfc8", status=status,  # type: ignore[arg-type]
        last_updated=submitted_at + 119, config=config, fingerprint="f", attempt=1,
        max_attempts=3, submitted_at=submitted_at,
        completed_at=submitted_at + 119 if done else None,
        execution_ms=200 if done else None, error=error,
        outputs=[OutputFile(key=f"{'public/' if dataset.startswith('public-') else ''}"
                                f"{channel}/{dataset}/{request_id}/1/{name}", rows=3, bytes=10,
                            sha256="x", period=period)] if status == "SUCCESS" else [],
    )  # fmt: skip


def day(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Client, list[DatasetRequest]]]:
    """The profile over a read model of sample jobs; ``request.param``: settings to change."""
    monkeypatch.setattr(sunbird, "utc_now", lambda: NOW)  # no test may straddle midnight
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    rollup = [
        job(standard.standard_request_id("summary-rollup", "ORG_001", day(n)), "ORG_001",
            tag="summary-rollup:ORG_001", dataset="summary-rollup", period=day(n).isoformat(),
            config=json.dumps({"date": day(n).isoformat()}))
        for n in (1, 2, 5)
    ] + [
        job(standard.standard_request_id("public-summary-rollup", "ORG_001", day(1)), "ORG_001",
            tag="public-summary-rollup:ORG_001", dataset="public-summary-rollup",
            period=day(1).isoformat(), config=json.dumps({"date": day(1).isoformat()})),
        job(standard.standard_request_id("summary-rollup", "EVIL", day(1)), "EVIL",
            tag="summary-rollup:EVIL", dataset="summary-rollup", period=day(1).isoformat()),
    ]  # fmt: skip
    jobs = [
        job("AF7B9BE5D0D075EA0DB8C6D12E192D5F", "ORG_001"),
        job("B2", "ORG_001", status="FAILED", submitted_at=1600845395000,
            error=JobError("SOURCE_NOT_FOUND", "no dataset 'users' in channel 'ORG_001'")),
        job("B3", "ORG_001", status="PROCESSING", submitted_at=1600845396000),
        job("THEIRS", "EVIL", tag=f"{TAG}:EVIL"),
        *rollup,
    ]  # fmt: skip
    read_model.apply([Change(0, n, j.request_id, j) for n, j in enumerate(jobs)])
    submitted: list[DatasetRequest] = []

    async def submit(request: DatasetRequest) -> None:
        submitted.append(request)

    context = api_context(
        settings=Settings(public_base_url="https://cdn.abc.com/data-store",
                          **getattr(request, "param", {})), health=Health(),
        metrics=Metrics(), catalog=default_catalog(), read_model=read_model, store=MemoryStore(),
        submit=submit, sealer=SEALER,
    )  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as test_client:
        yield test_client, submitted
    read_model.close()


HEADERS = {"X-Channel-ID": "ORG_001", "X-Authenticated-Userid": "95e4942d"}


async def test_the_seeds_sample_submission_is_accepted_in_the_seeds_envelope(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client
    response = await http.post("/dataset/v1/request/submit", json=SEED_SUBMIT, headers=HEADERS)
    assert response.status == 200
    body = await response.json()
    assert body["id"] == "ekstep.analytics.job.request.submit" and body["ver"] == "1.0"
    assert body["params"]["msgid"] == "4f04da60-1e24-4d31-aa7b-1daf91c46341"
    assert body["params"]["status"] == "successful" and body["responseCode"] == "OK"
    dt.datetime.fromisoformat(body["ts"])
    result = body["result"]
    key = "|".join(("userinfo-exhaust", TAG, "95e4942d-cbe8-477d-aebd-ad8e6de4bfc8", "ORG_001",
                    TODAY.isoformat()))  # fmt: skip
    assert result["requestId"] == hashlib.md5(key.encode()).hexdigest().upper()
    assert result["tag"] == STORED and result["requestedChannel"] == "ORG_001"
    assert result["status"] == "SUBMITTED" and result["dataset"] == "userinfo-exhaust"
    assert result["datasetConfig"] == {"batchId": "0131092891882700800"}
    assert result["downloadUrls"] == [] and result["attempts"] == 0
    assert set(result) >= set(SEED_READ["result"])
    assert isinstance(result["jobStats"]["dtJobSubmitted"], int)
    [published] = submitted
    assert published.request_id == result["requestId"] and published.tag == STORED
    assert published.encryption_key is not None and "xxx-yyy" not in published.encryption_key
    assert SEALER.open(published.encryption_key) == "xxx-yyy"
    assert "xxx-yyy" not in json.dumps(body)


async def test_sunbirds_validation_messages_come_in_the_failed_envelope(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client

    def with_request(**changes: Any) -> dict[str, Any]:
        return {**SEED_SUBMIT, "request": {**SEED_SUBMIT["request"], **changes}}  # type: ignore[dict-item]

    cases = [
        (with_request(tag=""), 400, "INVALID_CONFIG", "tag is empty"),
        (with_request(dataset=None), 400, "INVALID_CONFIG", "dataset is empty"),
        (with_request(datasetConfig={}), 400, "INVALID_CONFIG", "datasetConfig is empty"),
        (with_request(dataset="assessment-report"), 400, "UNKNOWN_DATASET", "assessment-report"),
        (with_request(encryptionKey=None), 400, "ENCRYPTION_KEY_REQUIRED", "encryption"),
        (with_request(encryptionKey=""), 400, "INVALID_ENCRYPTION_KEY", "encryption_key"),
        (with_request(encryptionKey="abc"), 400, "INVALID_ENCRYPTION_KEY", "encryption_key"),
        (with_request(datasetConfig={"batch": 1}), 400, "INVALID_CONFIG", "batchId"),
        (with_request(tag="a/b"), 400, "INVALID_IDENTIFIER", "tag"),
        ({"id": "x"}, 400, "MALFORMED_REQUEST", "request is required"),
    ]
    for body, status, code, words in cases:
        response = await http.post("/dataset/v1/request/submit", json=body, headers=HEADERS)
        answer = await response.json()
        assert response.status == status, (body, answer)
        assert answer["id"] == "ekstep.analytics.job.request.submit"
        # As Sunbird: err is the response code, errmsg the message; our code in a header.
        assert answer["params"]["status"] == "failed" and answer["params"]["err"] == "CLIENT_ERROR"
        assert response.headers["X-Exhaust-Error-Code"] == code
        assert words in answer["params"]["errmsg"], answer
        assert answer["responseCode"] == "CLIENT_ERROR" and answer["result"] is None
    no_channel = await http.post("/dataset/v1/request/submit", json=SEED_SUBMIT)
    assert no_channel.status == 403
    assert (await no_channel.json())["responseCode"] == "FORBIDDEN"
    assert submitted == []


async def test_read_answers_the_seeds_fields_with_the_seeds_types(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    response = await http.get(
        f"/dataset/v1/request/read/{TAG}?requestId=AF7B9BE5D0D075EA0DB8C6D12E192D5F",
        headers=HEADERS,
    )
    assert response.status == 200
    body = await response.json()
    assert_like_seed(body, SEED_READ)
    assert body["id"] == SEED_READ["id"] and body["params"]["status"] == "successful"
    result = body["result"]
    assert result["tag"] == STORED and result["status"] == "SUCCESS"
    assert result["jobStats"] == {"dtJobSubmitted": 1600845394000,
                                  "dtJobCompleted": 1600845394119, "executionTime": 200}  # fmt: skip
    assert result["downloadUrls"][0].startswith("memory://ORG_001/progress-exhaust/")
    # The stored form of the tag is accepted too.
    again = await http.get(
        f"/dataset/v1/request/read/{STORED}?requestId=AF7B9BE5D0D075EA0DB8C6D12E192D5F",
        headers=HEADERS,
    )
    assert (await again.json())["result"]["requestId"] == "AF7B9BE5D0D075EA0DB8C6D12E192D5F"
    failed = await (
        await http.get(f"/dataset/v1/request/read/{TAG}?requestId=B2", headers=HEADERS)
    ).json()
    assert failed["result"]["status"] == "FAILED" and failed["result"]["downloadUrls"] == []
    assert "no dataset 'users'" in failed["result"]["statusMessage"]


async def test_another_channels_job_or_a_wrong_tag_is_not_found(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    for path, headers in [
        (f"/dataset/v1/request/read/{TAG}?requestId=THEIRS", HEADERS),
        (f"/dataset/v1/request/read/{TAG}:EVIL?requestId=THEIRS", HEADERS),
        ("/dataset/v1/request/read/other?requestId=AF7B9BE5D0D075EA0DB8C6D12E192D5F", HEADERS),
        (f"/dataset/v1/request/read/{TAG}?requestId=AF7B9BE5D0D075EA0DB8C6D12E192D5F",
         {"X-Channel-ID": "EVIL"}),
    ]:  # fmt: skip
        response = await http.get(path, headers=headers)
        body = await response.json()
        assert response.status == 404, path
        assert body["responseCode"] == "RESOURCE_NOT_FOUND" and body["params"]["status"] == "failed"
        assert body["params"]["errmsg"] == "no job available with the given request_id and tag"
    missing = await http.get(f"/dataset/v1/request/read/{TAG}", headers=HEADERS)
    assert missing.status == 400 and (await missing.json())["params"]["errmsg"] == (
        "requestId is empty"
    )
    listing = await (
        await http.get(f"/dataset/v1/request/list/{TAG}", headers={"X-Channel-ID": "EVIL"})
    ).json()
    assert [j["requestId"] for j in listing["result"]["jobs"]] == ["THEIRS"]


async def test_list_is_newest_first_with_limit_and_a_status_filter(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    body = await (await http.get(f"/dataset/v1/request/list/{TAG}", headers=HEADERS)).json()
    assert body["id"] == "ekstep.analytics.job.request.list"
    assert body["result"]["count"] == 3
    assert [j["requestId"] for j in body["result"]["jobs"]] == [
        "B3", "B2", "AF7B9BE5D0D075EA0DB8C6D12E192D5F"
    ]  # fmt: skip
    assert [j["status"] for j in body["result"]["jobs"]] == ["PROCESSING", "FAILED", "SUCCESS"]
    limited = await (
        await http.get(f"/dataset/v1/request/list/{TAG}?limit=1", headers=HEADERS)
    ).json()
    assert limited["result"]["count"] == 1
    failed = await (
        await http.get(f"/dataset/v1/request/list/{TAG}?status=FAILED", headers=HEADERS)
    ).json()
    assert [j["requestId"] for j in failed["result"]["jobs"]] == ["B2"]
    for query in ("limit=0", "limit=x", "status=DONE"):
        response = await http.get(f"/dataset/v1/request/list/{TAG}?{query}", headers=HEADERS)
        assert response.status == 400, query
        assert (await response.json())["params"]["status"] == "failed"


async def test_dataset_get_lists_the_channels_files_by_day(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    first, last = day(5), day(1)
    response = await http.get(
        f"/dataset/get/summary-rollup?from={first}&to={last}", headers=HEADERS
    )
    body = await response.json()
    assert response.status == 200, body
    assert body["id"] == "org.ekstep.analytics.telemetry"
    assert body["params"]["status"] == "successful" and body["params"]["client_key"] is None
    result = body["result"]
    assert sorted(result["periodWiseFiles"]) == [day(5).isoformat(), day(2).isoformat(),
                                                 day(1).isoformat()]  # fmt: skip
    assert len(result["files"]) == 3 and isinstance(result["expiresAt"], int)
    assert all("ORG_001/summary-rollup/" in url for url in result["files"])
    assert result["periodWiseFiles"][day(2).isoformat()][0].endswith(
        f"{day(2).isoformat()}.csv?expires=3600"
    )
    since = await (
        await http.get(f"/dataset/get/summary-rollup?since={day(2)}", headers=HEADERS)
    ).json()
    assert sorted(since["result"]["periodWiseFiles"]) == [day(2).isoformat(), day(1).isoformat()]
    # Sunbird's default range is yesterday .. today.
    default = await (await http.get("/dataset/get/summary-rollup", headers=HEADERS)).json()
    assert list(default["result"]["periodWiseFiles"]) == [day(1).isoformat()]
    # Another channel sees only its own file.
    evil = await (
        await http.get(
            f"/dataset/get/summary-rollup?from={first}", headers={"X-Channel-ID": "EVIL"}
        )
    ).json()
    assert evil["result"]["files"] and all("EVIL/" in u for u in evil["result"]["files"])
    none = await (
        await http.get(f"/dataset/get/summary-channel-exhaust?from={first}", headers=HEADERS)
    ).json()
    assert none["result"] == {"files": [], "periodWiseFiles": {}, "expiresAt": 0}


async def test_dataset_get_applies_sunbirds_date_rules(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    tomorrow = TODAY + dt.timedelta(days=1)
    cases = [
        (f"from={day(1)}&to={tomorrow}", "'to' should be LESSER OR EQUAL TO today's date.."),
        (f"from={day(1)}&to={day(3)}",
         "Date range should not be -ve. Please check your 'from' & 'to'"),
        (f"from={day(30)}&to={day(1)}", "Date range should be < 10 days"),
        ("from=yesterday", "from must be a date (yyyy-mm-dd)"),
    ]  # fmt: skip
    for query, message in cases:
        response = await http.get(f"/dataset/get/summary-rollup?{query}", headers=HEADERS)
        body = await response.json()
        assert response.status == 400, query
        assert body["params"]["status"] == "failed" and message in body["params"]["errmsg"]
    unknown = await (await http.get("/dataset/get/progress-exhaust", headers=HEADERS)).json()
    assert unknown["params"]["errmsg"] == (
        "Provided dataset is invalid. Please use any one from this list - "
        "['summary-channel-exhaust', 'summary-rollup']"
    )


async def test_public_dataset_get_gives_plain_links_of_public_types_only(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    response = await http.get(
        f"/public/dataset/get/public-summary-rollup?from={day(3)}&to={day(1)}",
        headers={"X-Channel-ID": "ORG_001"},
    )
    body = await response.json()
    assert response.status == 200, body
    url = (
        f"https://cdn.abc.com/data-store/ORG_001/public-summary-rollup/"
        f"{standard.standard_request_id('public-summary-rollup', 'ORG_001', day(1))}/1/"
        f"{day(1).isoformat()}.csv"
    )
    assert body["result"] == {"files": [url], "periodWiseFiles": {day(1).isoformat(): [url]}}
    private = await http.get("/public/dataset/get/summary-rollup", headers=HEADERS)
    assert private.status == 400
    other = await (
        await http.get("/public/dataset/get/public-summary-rollup",
                       headers={"X-Channel-ID": "EVIL"})
    ).json()  # fmt: skip
    assert other["result"] == {
        "message": "Files are not available for requested date. Might not yet generated. "
        "Please come back later"
    }


@pytest.mark.parametrize("value", load("dates"))
async def test_impossible_dates_are_sunbirds_client_errors(
    client: tuple[Client, list[DatasetRequest]], value: str
) -> None:
    http, _ = client
    for query in (f"from={value}", f"since={value}", f"to={value}"):
        response = await http.get(f"/dataset/get/summary-rollup?{query}", headers=HEADERS)
        body = await response.json()
        if value == "":  # an empty parameter is the default day
            assert response.status == 200, body
            continue
        assert response.status == 400 and body["responseCode"] == "CLIENT_ERROR", (query, body)


def digest(*parts: str) -> str:
    return hashlib.md5("|".join(parts).encode()).hexdigest().upper()


async def test_request_ids_are_computed_as_sunbird_computes_them(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    """JobAPIService._getRequestId: dataset|tag|requestedBy (of the body)|channel|day, and
    |type when the datasetConfig has one; a client computing it finds its job."""
    http, submitted = client
    typed = {
        **SEED_SUBMIT,
        "request": {
            **SEED_SUBMIT["request"],  # type: ignore[dict-item]
            "datasetConfig": {"batchId": "0131092891882700800", "type": "userinfo-exhaust"},
        },
    }
    response = await http.post("/dataset/v1/request/submit", json=typed, headers=HEADERS)
    assert response.status == 200, await response.text()
    requested_by = "95e4942d-cbe8-477d-aebd-ad8e6de4bfc8"
    expected = digest("userinfo-exhaust", TAG, requested_by, "ORG_001", TODAY.isoformat(),
                      "userinfo-exhaust")  # fmt: skip
    assert (await response.json())["result"]["requestId"] == expected
    # Only the gateway's header names the user: Sunbird hashes the body's (absent) requestedBy.
    bare = {**SEED_SUBMIT, "request": {k: v for k, v in SEED_SUBMIT["request"].items()  # type: ignore[attr-defined]
                                       if k != "requestedBy"}}  # fmt: skip
    response = await http.post("/dataset/v1/request/submit", json=bare, headers=HEADERS)
    body = await response.json()
    assert body["result"]["requestId"] == digest("userinfo-exhaust", TAG, "", "ORG_001",
                                                 TODAY.isoformat())  # fmt: skip
    assert body["result"]["requestedBy"] == "95e4942d"  # the job still names its requester
    assert [r.request_id for r in submitted] == [expected, body["result"]["requestId"]]


@pytest.mark.parametrize("client", [{"sunbird_request_day_timezone": "Asia/Kolkata"}],
                         indirect=True)  # fmt: skip
async def test_the_day_of_a_request_id_is_the_servers_day(
    client: tuple[Client, list[DatasetRequest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, _ = client
    evening = dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)  # already Dec 1st in Kolkata
    monkeypatch.setattr(sunbird, "utc_now", lambda: evening)
    response = await http.post("/dataset/v1/request/submit", json=SEED_SUBMIT, headers=HEADERS)
    assert (await response.json())["result"]["requestId"] == digest(
        "userinfo-exhaust", TAG, "95e4942d-cbe8-477d-aebd-ad8e6de4bfc8", "ORG_001", "2026-12-01"
    )


async def test_list_defaults_to_a_hundred_jobs(tmp_path: Path) -> None:
    """Sunbird's data_exhaust.list.limit is 100: 120 jobs of a tag list 100 without ?limit."""
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    read_model.apply([Change(0, n, f"J{n}", job(f"J{n}", "ORG_001", submitted_at=1600845394000
                                                 + n)) for n in range(120)])  # fmt: skip
    context = api_context(
        settings=Settings(), health=Health(), metrics=Metrics(), catalog=default_catalog(),
        read_model=read_model, store=MemoryStore(), submit=lambda r: asyncio.sleep(0),
    )  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as http:
        body = await (await http.get(f"/dataset/v1/request/list/{TAG}", headers=HEADERS)).json()
    read_model.close()
    assert body["result"]["count"] == 100 and body["result"]["jobs"][0]["requestId"] == "J119"


@pytest.mark.parametrize("client", [{"sunbird_unknown_job": "200"}], indirect=True)
async def test_an_unknown_job_can_be_answered_as_sunbird_does(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    response = await http.get(f"/dataset/v1/request/read/{TAG}?requestId=NOPE", headers=HEADERS)
    body = await response.json()
    assert response.status == 200
    assert body["params"] | {"resmsgid": "x"} == {
        "resmsgid": "x", "msgid": None, "status": "failed", "err": "OK",
        "errmsg": "no job available with the given request_id and tag"}  # fmt: skip
    assert body["responseCode"] == "OK" and body["result"] is None


async def test_an_unknown_job_is_404_by_default(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    response = await http.get(f"/dataset/v1/request/read/{TAG}?requestId=NOPE", headers=HEADERS)
    body = await response.json()
    assert response.status == 404 and body["params"]["err"] == "RESOURCE_NOT_FOUND"
    assert response.headers["X-Exhaust-Error-Code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("query", "first", "last"),
    [
        ("date_range=LAST_DAY", day(1), TODAY),
        ("date_range=LAST_7_DAYS", day(7), TODAY),
        ("date_range=LAST_30_DAYS", day(30), TODAY),
        # 2026-11-30 is a Monday: last week is Monday the 23rd to this Monday.
        ("date_range=LAST_WEEK", dt.date(2026, 11, 23), dt.date(2026, 11, 30)),
        (f"date={day(3)}", day(3), day(3)),
        (f"date_range=LAST_2_DAYS&date={day(9)}&from={day(9)}", day(2), TODAY),
        (f"from={day(25)}&to={day(1)}", day(25), day(1)),  # 24 days: within the public 30
    ],
)
def test_public_date_parameters_are_sunbirds(query: str, first: dt.date, last: dt.date,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from urllib.parse import parse_qsl

    from multidict import MultiDict

    monkeypatch.setattr(sunbird, "utc_now", lambda: NOW)
    assert sunbird.date_range(MultiDict(parse_qsl(query)), Settings(), public=True) == (first, last)


async def test_public_dataset_get_refuses_as_sunbird_does(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    cases = [
        ("date_range=LAST_YEAR", "Provided dateRange LAST_YEAR is not valid. Please use any one "
         "from this list - List(LAST_DAY, LAST_2_DAYS, LAST_7_DAYS, LAST_14_DAYS, LAST_30_DAYS, "
         "LAST_WEEK)"),
        (f"from={day(40)}&to={day(1)}", "Date range should be < 30 days"),
        (f"from={day(75)}&to={day(60)}", "Date range cannot be older than 2 months"),
        ("date=yesterday", "date must be a date"),
    ]  # fmt: skip
    for query, message in cases:
        response = await http.get(f"/public/dataset/get/public-summary-rollup?{query}",
                                  headers={"X-Channel-ID": "ORG_001"})  # fmt: skip
        body = await response.json()
        assert response.status == 400, (query, body)
        assert message in body["params"]["errmsg"], (query, body)
    # The channel's own route keeps its 10 days.
    response = await http.get(f"/dataset/get/summary-rollup?from={day(20)}", headers=HEADERS)
    assert (await response.json())["params"]["errmsg"] == "Date range should be < 10 days"


@pytest.mark.parametrize("client", [{"anonymous_channels": {"sunbird-public": "ORG_001"}}],
                         indirect=True)  # fmt: skip
async def test_public_datasets_need_no_channel_header_once_mapped(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    response = await http.get(f"/public/dataset/get/public-summary-rollup?date={day(1)}")
    body = await response.json()
    assert response.status == 200 and len(body["result"]["files"]) == 1, body
    # The mapping opens the public route only.
    assert (await http.get("/dataset/get/summary-rollup")).status == 403


@pytest.mark.parametrize("mode", ["409", "existing"])
async def test_the_same_id_with_another_config_is_409_or_the_existing_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Sunbird answers a second submission of the day's id with the job it has, whatever the
    config; this profile refuses it (409) unless told to answer as Sunbird."""
    monkeypatch.setattr(sunbird, "utc_now", lambda: NOW)
    request_id = digest("userinfo-exhaust", TAG, "95e4942d-cbe8-477d-aebd-ad8e6de4bfc8",
                        "ORG_001", TODAY.isoformat())  # fmt: skip
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    held = job(request_id, "ORG_001", status="PROCESSING", dataset="userinfo-exhaust",
               config=json.dumps({"batchId": "another"}))  # fmt: skip
    read_model.apply([Change(0, 0, request_id, held)])
    submitted: list[DatasetRequest] = []

    async def submit(request: DatasetRequest) -> None:
        submitted.append(request)

    context = api_context(
        settings=Settings(sunbird_config_conflict=mode), health=Health(), metrics=Metrics(),
        catalog=default_catalog(), read_model=read_model, store=MemoryStore(), submit=submit,
        sealer=SEALER,
    )  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as http:
        response = await http.post("/dataset/v1/request/submit", json=SEED_SUBMIT,
                                   headers=HEADERS)  # fmt: skip
        body = await response.json()
    read_model.close()
    if mode == "409":
        assert response.status == 409 and body["params"]["status"] == "failed"
        assert response.headers["X-Exhaust-Error-Code"] == "REQUEST_CONFLICT"
    else:
        assert response.status == 200 and body["result"]["requestId"] == request_id
        assert body["result"]["datasetConfig"] == {"batchId": "another"}
        assert body["result"]["status"] == "PROCESSING"
    assert submitted == []
