"""The USAspending download v2 profile end to end on a real worker (Kafka 4.1 + S3Proxy): the
seed's request verbatim and a filtered one, followed through /v2/download/status to
``finished``, the zip downloaded from its ``url``, its CSVs split at the row limit with the
columns in the requested order and exactly the rows the filter selects; channel isolation."""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from app import demo_data
from app.client import ExhaustClient
from app.settings import Settings
from tests.integration.harness import Worker, download, eventually, start_worker
from tests.unit.test_usaspending_api import (
    SEED_FINISHED,
    SEED_READY,
    SEED_REQUEST,
    assert_fields_like,
)

pytestmark = pytest.mark.integration
CHANNEL = "agency-portal"


async def finished(worker: Worker, file_name: str, channel: str = CHANNEL) -> dict[str, Any]:
    seen: set[str] = set()

    async def done() -> dict[str, Any] | None:
        status, body = await worker.get(f"/v2/download/status?file_name={file_name}", channel)
        assert status == 200, body
        seen.add(body["status"])
        return dict(body) if body["status"] in ("finished", "failed") else None

    body: dict[str, Any] = await eventually(done, 120, f"download {file_name}", interval=0.2)
    assert seen <= {"ready", "running", "finished", "failed"}
    return body


def csv_rows(archive: bytes) -> tuple[list[str], list[list[dict[str, str]]]]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = sorted(zipped.namelist())
        files = [list(csv.DictReader(io.StringIO(zipped.read(n).decode()))) for n in names]
    return names, files


async def test_downloads_of_the_seed_end_to_end(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(usaspending_rows_per_file=250, standard_catch_up_days=0)
    worker = await start_worker(workers, settings, "w1")
    client = ExhaustClient(worker.url, CHANNEL, user="tester", timeout=60, retries=0)
    awards, transactions = demo_data.awards_and_transactions()
    for sample in (awards, transactions):
        await asyncio.to_thread(client.fill, sample.code, sample.rows, sample.columns, append=False)

    # The seed's request, verbatim: every award, two columns in the order asked.
    status, ready = await worker.post("/v2/download/awards", SEED_REQUEST, CHANNEL)
    assert status == 200, ready
    assert_fields_like(ready, SEED_READY, "POST")
    assert ready["status"] == "ready" and ready["file_name"].endswith("_awards.zip")
    status, by_url = await worker.get(ready["status_url"].removeprefix(worker.url), CHANNEL)
    assert status == 200 and by_url["file_name"] == ready["file_name"]
    done = await finished(worker, ready["file_name"])
    assert_fields_like(done, SEED_FINISHED)
    assert done["status"] == "finished", done
    assert done["total_rows"] == len(awards.rows) and done["total_columns"] == 2
    assert float(done["seconds_elapsed"]) > 0 and done["message"] is None
    archive = await asyncio.to_thread(download, done["url"])
    assert done["total_size"] == len(archive) / 1000  # kilobytes, as usaspending-api
    names, files = csv_rows(archive)
    assert len(names) == 2 and [len(f) for f in files] == [250, 150]  # split at the row limit
    assert list(files[0][0]) == ["award_type", "awarding_agency_code"]
    codes = sorted(r["awarding_agency_code"] for f in files for r in f)
    at = [c["name"] for c in awards.columns].index("awarding_agency_code")
    assert codes == sorted(r[at] for r in awards.rows)

    # A Search v2 filter: transactions of two agencies in FY2025 above $1M, chosen columns.
    search = {
        "filters": {
            "time_period": [{"start_date": "2024-10-01", "end_date": "2025-09-30"}],
            "agencies": [
                {"type": "awarding", "tier": "toptier", "name": "Department of Energy"},
                {"type": "awarding", "tier": "toptier", "name": "Department of Defense"},
            ],
            "award_amounts": [{"lower_bound": 1000000}],
            "keywords": ["solar", "grid"],
        },
        "columns": ["action_date", "federal_action_obligation", "awarding_agency_name",
                    "transaction_description"],
    }  # fmt: skip
    status, ready = await worker.post("/v2/download/transactions", search, CHANNEL)
    assert status == 200, ready
    done = await finished(worker, ready["file_name"])
    assert done["status"] == "finished", done
    _, files = csv_rows(await asyncio.to_thread(download, done["url"]))
    got = sorted((r["action_date"], float(r["federal_action_obligation"]))
                 for f in files for r in f)  # fmt: skip
    names_of = [c["name"] for c in transactions.columns]

    def col(row: list[Any], name: str) -> Any:
        return row[names_of.index(name)]

    expected = sorted(
        (col(r, "action_date"), col(r, "federal_action_obligation")) for r in transactions.rows
        if "2024-10-01" <= col(r, "action_date") <= "2025-09-30"
        and col(r, "awarding_agency_name") in ("Department of Energy", "Department of Defense")
        and col(r, "federal_action_obligation") >= 1_000_000
        and any(w in col(r, "transaction_description").lower() for w in ("solar", "grid"))
    )  # fmt: skip
    assert got == expected and expected, (len(got), len(expected))
    assert list(files[0][0]) == search["columns"]

    # Another channel: the download does not exist, and its own download has no data.
    status, other = await worker.get(f"/v2/download/status?file_name={ready['file_name']}", "other")
    assert status == 404 and "not found" in other["detail"]
    status, theirs = await worker.post("/v2/download/awards", SEED_REQUEST, "other")
    assert status == 200
    failed = await finished(worker, theirs["file_name"], "other")
    assert failed["status"] == "failed" and "awards" in failed["message"]
    assert failed["total_rows"] is None

    # Unsupported filter parts and unknown files are refused with a message.
    status, refused = await worker.post(
        "/v2/download/awards", {"filters": {"recipient_locations": []}, "columns": []}, CHANNEL
    )
    assert status == 400 and "recipient_locations" in refused["detail"]
    status, missing = await worker.get("/v2/download/status?file_name=0_nope_awards.zip", CHANNEL)
    assert status == 404 and "not found" in missing["detail"]


def zip_members(archive: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        return {n: zipped.read(n).decode() for n in sorted(zipped.namelist())}


async def test_an_unchanged_usaspending_client_on_the_real_stack(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    """As usaspending-api's clients call it: no X-Channel-ID (the operator mapped anonymous
    callers to a channel), columns of the real lookups, a location filter by zip, county and
    congressional district, ``limit`` and ``file_format: pstxt`` honoured, its error bodies."""
    settings = settings_factory(
        anonymous_channels={"usaspending": "public-spending"}, standard_catch_up_days=0
    )
    worker = await start_worker(workers, settings, "w1")
    client = ExhaustClient(worker.url, "public-spending", user="tester", timeout=60, retries=0)
    awards, transactions = demo_data.awards_and_transactions()
    for sample in (awards, transactions):
        await asyncio.to_thread(client.fill, sample.code, sample.rows, sample.columns, append=False)
    by_name = [c["alias"] for c in awards.columns]
    rows = [dict(zip(by_name, r, strict=True)) for r in awards.rows]

    columns = ["assistance_award_unique_key", "award_id_uri", "sai_number",
               "total_funding_amount", "product_or_service_code_description",
               "1862_land_grant_college", "obligated_amount_from_COVID-19_supplementals",
               "recipient_zip_code", "prime_award_summary_recipient_cd_current"]  # fmt: skip
    body = {
        "filters": {
            "award_type_codes": ["02", "03", "04", "05"],
            "recipient_locations": [{"country": "USA", "zip": "20190"},
                                    {"country": "USA", "state": "WA", "county": "033"},
                                    {"country": "USA", "state": "TX", "district_current": "18"}],
        },
        "columns": columns,
        "file_format": "pstxt",
        "limit": 7,
    }  # fmt: skip
    status, ready = await worker.post("/v2/download/awards", body)  # no X-Channel-ID
    assert status == 200, ready
    assert ready["download_request"]["file_format"] == "pstxt"
    done = await finished(worker, ready["file_name"], channel="")
    assert done["status"] == "finished", done
    members = zip_members(await asyncio.to_thread(download, done["url"]))
    assert [n.endswith(".txt") for n in members] == [True]
    lines = next(iter(members.values())).splitlines()
    assert lines[0].split("|") == columns  # the real headers, pipe-delimited
    matching = [r for r in rows if r["award_type_code"] in ("02", "03", "04", "05")
                and r["recipient_state_code"] in ("VA", "WA", "TX")]  # fmt: skip
    assert len(matching) > 7 and done["total_rows"] == len(lines) - 1 == 7  # the limit
    keys = {line.split("|")[0] for line in lines[1:]}
    assert keys <= {r["assistance_award_unique_key"] for r in matching}
    assert all(line.split("|")[2].startswith("SAI-") for line in lines[1:])

    # Errors as usaspending-api answers them, also anonymously.
    for wrong, code, words in [
        ({"filters": {"keywords": ["F5"]}}, 422, "is below min '3' items"),
        ({"filters": {}, "limit": 500_001}, 422, "is above max '500000'"),
        ({"filters": {}, "file_format": "xls"}, 400, "is outside valid values"),
        ({"filters": {"time_period": [{"start_date": "2001-01-01"}]}}, 422, "below min"),
    ]:
        status, refused = await worker.post("/v2/download/transactions", wrong)
        assert status == code and words in refused["detail"], refused

    # The mapped channel is the channel: its downloads are not another channel's.
    status, other = await worker.get(f"/v2/download/status?file_name={ready['file_name']}", "x")
    assert status == 404, other


async def test_without_a_mapping_or_with_api_keys_anonymous_is_refused(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    plain = await start_worker(workers, settings_factory(), "w1")
    status, refused = await plain.post("/v2/download/awards", SEED_REQUEST)
    assert status == 403 and "X-Channel-ID" in refused["detail"], refused
    keyed = await start_worker(workers, settings_factory(
        anonymous_channels={"usaspending": "public-spending"},
        api_keys='{"key-of-public-spending": "public-spending"}'), "w2")  # fmt: skip
    status, refused = await keyed.post("/v2/download/awards", SEED_REQUEST)
    assert status == 403 and "API key" in refused["detail"], refused
