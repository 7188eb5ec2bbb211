"""The USAspending download v2 profile against seed 004, without a broker: the seed's requests
verbatim, every field and type of the seed's responses, the Search v2 filter translation, the
errors, channel isolation. End to end on the real stack: tests/integration/test_usaspending.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.api.jobs import ApiContext, create_web_app
from app.catalog.types import default_catalog
from app.domain.errors import InvalidFilter, UnknownColumn
from app.domain.model import DatasetRequest, Job, JobError, OutputFile
from app.domain.usaspending import DOWNLOADS, check_columns, translate_filters
from app.engine.query import Params, Schema, check_filter_shape, compile_filter
from app.health import Health
from app.metrics import Metrics
from app.settings import Settings
from app.stream.read_model import Change, ReadModel
from tests.fakes import MemoryStore

Client = TestClient[web.Request, web.Application]

# Seed 004, verbatim.
SEED_COLUMNS = json.loads("""{
    "columns": [{
            "title": "Assistance Type",
            "value": "assistance_type"
        },
        {
            "title": "Awarding Agency",
            "value": "awarding_agency"
        }
    ]
}""")
SEED_REQUEST = json.loads("""{
    "filters": {},
    "columns": [
        "award_type",
        "awarding_agency_code"
    ]
}""")
SEED_READY = json.loads("""{
   "status":"ready",
   "total_rows":null,
   "file_name":"5757660_968336105_awards.zip",
   "total_size":null,
   "total_columns":null,
   "message":null,
   "url":"/Volumes/exlinux/Users/catherine/werk/dataact/usaspending-api/downloads/5757660_968336105_awards.zip",
   "seconds_elapsed":null
}""")
SEED_FINISHED = json.loads("""{
   "status":"finished",
   "total_rows":3317,
   "file_name":"5757388_622958899_transactions.zip",
   "total_size":3334.475,
   "total_columns":214,
   "message":null,
   "url":"/Volumes/exlinux/Users/catherine/werk/dataact/usaspending-api/downloads/5757388_622958899_transactions.zip",
   "seconds_elapsed":"0.438393"
}""")
NAME = "1796075623279_0a1b2c3d_transactions.zip"
HEADERS = {"X-Channel-ID": "acme"}


# What usaspending-api answers beside the seed's fields (its base_download_viewset.py).
REAL_EXTRAS = {"POST": {"status_url", "file_url", "download_request"}, "status": {"file_url"}}


def assert_fields_like(answer: dict[str, Any], seed: dict[str, Any], call: str = "status") -> None:
    """The seed's fields, each with the seed's JSON type (null stays null), and exactly the
    real API's other fields."""
    expected = set(seed) | REAL_EXTRAS[call]
    assert set(answer) == expected, sorted(set(answer) ^ expected)
    for key, value in seed.items():
        assert type(answer[key]) is type(value), (key, answer[key], value)


def download_job(request_id: str, channel: str, status: str, **kw: Any) -> Job:
    done = status in ("SUCCESS", "FAILED")
    return Job(
        request_id=request_id, tag=request_id, dataset="usaspending-transactions",
        channel=channel, requested_by="u", status=status,  # type: ignore[arg-type]
        last_updated=2, config="{}", fingerprint="f", attempt=1, max_attempts=3, submitted_at=1,
        started_at=1_000, completed_at=1_438 if done else None,
        execution_ms=438 if status == "SUCCESS" else None,
        total_rows=3317 if status == "SUCCESS" else None,
        total_columns=214 if status == "SUCCESS" else None,
        total_bytes=3_414_502 if status == "SUCCESS" else None,
        outputs=[OutputFile(key=f"{channel}/usaspending-transactions/{request_id}/1/"
                                "transactions.zip", rows=3317, bytes=3_414_502, sha256="x")]
        if status == "SUCCESS" else [],
        **kw,
    )  # fmt: skip


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[Client, list[DatasetRequest]]]:
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    jobs = [
        download_job(NAME, "acme", "SUCCESS"),
        download_job("1_running_transactions.zip", "acme", "PROCESSING"),
        download_job("2_failed_transactions.zip", "acme", "FAILED",
                     error=JobError("SOURCE_NOT_FOUND", "no dataset 'transactions'")),
        download_job("3_ready_transactions.zip", "acme", "SUBMITTED"),
    ]  # fmt: skip
    read_model.apply([Change(0, n, j.request_id, j) for n, j in enumerate(jobs)])
    submitted: list[DatasetRequest] = []

    async def submit(request: DatasetRequest) -> None:
        submitted.append(request)

    context = ApiContext(
        settings=Settings(usaspending_rows_per_file=1000), health=Health(), metrics=Metrics(),
        catalog=default_catalog(), read_model=read_model, store=MemoryStore(), submit=submit,
    )  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as test_client:
        yield test_client, submitted
    read_model.close()


async def test_columns_answer_the_seeds_shape_for_both_types(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    for kind in ("award", "transaction"):
        response = await http.get(f"/v2/download/columns?type={kind}", headers=HEADERS)
        body = await response.json()
        assert response.status == 200 and set(body) == set(SEED_COLUMNS)
        assert all(set(c) == {"title", "value"} for c in body["columns"])
        assert all(isinstance(c["title"], str) and isinstance(c["value"], str)
                   for c in body["columns"])  # fmt: skip
        values = [c["value"] for c in body["columns"]]
        assert "awarding_agency_code" in values and "recipient_name" in values
        assert all(c in body["columns"] for c in SEED_COLUMNS["columns"])  # the seed's examples
    bad = await http.get("/v2/download/columns?type=grant", headers=HEADERS)
    assert bad.status == 400 and "award, transaction" in (await bad.json())["detail"]


async def test_the_seeds_request_is_ready_with_the_seeds_fields(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client
    for kind in ("awards", "transactions"):
        response = await http.post(f"/v2/download/{kind}", json=SEED_REQUEST, headers=HEADERS)
        body = await response.json()
        assert response.status == 200, body
        assert_fields_like(body, SEED_READY, "POST")
        assert body["status"] == "ready" and body["file_url"] == body["url"]
        assert body["status_url"].endswith(f"/v2/download/status?file_name={body['file_name']}")
        assert body["download_request"] == {"columns": ["award_type", "awarding_agency_code"],
                                            "filters": {}}  # fmt: skip
        assert re.fullmatch(rf"\d{{13}}_[0-9a-f]{{8}}_{kind}\.zip", body["file_name"])
        assert body["url"].startswith(f"memory://acme/usaspending-{kind}/{body['file_name']}/1/")
    awards, transactions = submitted
    assert awards.request_id is not None and awards.request_id.endswith("_awards.zip")
    assert awards.dataset == "usaspending-awards" and awards.channel == "acme"
    assert awards.columns == ["award_type", "awarding_agency_code"] and awards.filters is None
    assert awards.output is not None and awards.output["compression"] == "ZIP"
    assert awards.output["rows_per_file"] == 1000
    assert transactions.dataset == "usaspending-transactions"


async def test_status_answers_every_field_of_the_seed_with_its_types(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    body = await (await http.get(f"/v2/download/status?file_name={NAME}", headers=HEADERS)).json()
    assert_fields_like(body, SEED_FINISHED)
    assert body["status"] == "finished" and body["total_rows"] == 3317
    assert body["total_size"] == 3414.502 and body["total_columns"] == 214  # bytes / 1000
    assert body["file_url"] == body["url"]
    assert body["seconds_elapsed"] == "0.438000" and body["message"] is None
    assert body["url"].startswith(f"memory://acme/usaspending-transactions/{NAME}/1/")

    running = await (
        await http.get("/v2/download/status?file_name=1_running_transactions.zip", headers=HEADERS)
    ).json()
    assert running["status"] == "running" and running["total_rows"] is None
    assert isinstance(running["seconds_elapsed"], str) and float(running["seconds_elapsed"]) > 0
    failed = await (
        await http.get("/v2/download/status?file_name=2_failed_transactions.zip", headers=HEADERS)
    ).json()
    assert failed["status"] == "failed" and "no dataset" in failed["message"]
    ready = await (
        await http.get("/v2/download/status?file_name=3_ready_transactions.zip", headers=HEADERS)
    ).json()
    assert_fields_like(ready, SEED_READY)


async def test_status_errors_and_channel_isolation(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    missing = await http.get("/v2/download/status", headers=HEADERS)
    assert missing.status == 400 and "file_name" in (await missing.json())["detail"]
    for name, headers in [("nope_awards.zip", HEADERS), (NAME, {"X-Channel-ID": "evil"}),
                          ("../x", HEADERS)]:  # fmt: skip
        response = await http.get(f"/v2/download/status?file_name={name}", headers=headers)
        body = await response.json()
        assert response.status == 404, name
        assert body["code"] == "NOT_FOUND" and "not found" in body["detail"]
    no_channel = await http.get(f"/v2/download/status?file_name={NAME}")
    assert no_channel.status == 403


async def test_refused_downloads_name_what_is_wrong(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client
    cases = [
        ({"columns": []}, 400, "INVALID_CONFIG", "filters"),
        ({"filters": {}, "columns": ["award_type", "nope"]}, 400, "UNKNOWN_COLUMN", "nope"),
        ({"filters": {"place_of_performance_locations": [{"country": "USA", "county": "059"}]}},
         400, "INVALID_FILTER", "filters.place_of_performance_locations[0].county is not supported"),
        ({"filters": {"def_codes": ["L"]}}, 400, "INVALID_FILTER",
         "filters.def_codes is not supported"),
        ({"filters": {"time_period": [{"start_date": "2024-01-01"}]}}, 400, "INVALID_FILTER",
         "time_period[0]"),
        ({"filters": {"award_amounts": [{"lower_bound": "x"}]}}, 400, "INVALID_FILTER",
         "lower_bound"),
        ({"filters": []}, 400, "INVALID_FILTER", "JSON object"),
    ]  # fmt: skip
    for body, status, code, words in cases:
        response = await http.post("/v2/download/awards", json=body, headers=HEADERS)
        answer = await response.json()
        assert (response.status, answer["code"]) == (status, code), (body, answer)
        assert words in answer["detail"], answer
    assert submitted == []


def test_the_supported_filter_parts_translate_to_typed_filters() -> None:
    awards, transactions = DOWNLOADS["awards"], DOWNLOADS["transactions"]
    search = {
        "time_period": [{"start_date": "2024-10-01", "end_date": "2025-09-30"}],
        "award_type_codes": ["A", "B"],
        "agencies": [{"type": "awarding", "tier": "toptier", "name": "Department of Energy"},
                     {"type": "funding", "tier": "subtier", "name": "Department of the Navy"}],
        "recipient_search_text": ["acme"],
        "award_amounts": [{"lower_bound": 1000000}, {"lower_bound": 10, "upper_bound": 99}],
        "keywords": ["solar"],
        "naics_codes": {"require": ["541511"]},
        "psc_codes": ["R425"],
        "program_numbers": ["10.001"],
    }  # fmt: skip
    node = translate_filters(transactions, search)
    assert node is not None
    check_filter_shape(node)
    parts = node["and"]
    assert parts[0] == {"column": "action_date", "op": "between",
                        "value": ["2024-10-01", "2025-09-30"]}  # fmt: skip
    assert parts[1] == {"column": "award_type_code", "op": "in", "value": ["A", "B"]}
    assert parts[2] == {"or": [
        {"column": "awarding_agency_name", "op": "=", "value": "Department of Energy"},
        {"column": "funding_sub_agency_name", "op": "=", "value": "Department of the Navy"}]}  # fmt: skip
    assert parts[3] == {"or": [{"column": "recipient_name", "op": "ilike", "value": "%acme%"},
                               {"column": "recipient_uei", "op": "=", "value": "ACME"}]}  # fmt: skip
    assert parts[4]["or"][0] == {"column": "federal_action_obligation", "op": ">=",
                                 "value": 1000000}  # fmt: skip
    assert parts[5] == {"column": "transaction_description", "op": "ilike", "value": "%solar%"}
    assert parts[6:] == [
        {"column": "naics_code", "op": "like", "value": "541511%"},
        {"column": "product_or_service_code", "op": "like", "value": "R425%"},
        {"column": "cfda_number", "op": "in", "value": ["10.001"]},
    ]
    award_node = translate_filters(awards, {"time_period": search["time_period"],
                                            "award_amounts": [{"upper_bound": 5}]})  # fmt: skip
    assert award_node == {"and": [
        {"and": [{"column": "award_base_action_date", "op": "<=", "value": "2025-09-30"},
                 {"column": "award_latest_action_date", "op": ">=", "value": "2024-10-01"}]},
        {"column": "total_obligated_amount", "op": "<=", "value": 5},
    ]}  # fmt: skip
    assert translate_filters(awards, {}) is None
    with pytest.raises(InvalidFilter, match=r"filters\.tas_codes is not supported"):
        translate_filters(awards, {"tas_codes": ["x"]})
    with pytest.raises(UnknownColumn, match="assistance_kind"):
        check_columns(awards, ["assistance_kind"])
    assert check_columns(awards, []) is None


CODES = ["111110", "111120", "112111", "541511", "541512", "541611", None]
PSCS = ["AB12", "B502", "B510", "R425", "R499", "1510", "7030", None]


def kept(column: str, values: list[str | None], search: dict[str, Any]) -> list[str | None]:
    """The values a Search v2 filter keeps, through the filter compiler and DuckDB."""
    schema = Schema.of([(column, "VARCHAR")])
    params = Params()
    node = translate_filters(DOWNLOADS["awards"], search)
    check_filter_shape(node)
    where = compile_filter(node, schema, params)
    with duckdb.connect() as con:
        con.execute("CREATE TABLE src (c1 VARCHAR)")
        con.executemany("INSERT INTO src VALUES (?)", [[v] for v in values])
        rows = con.execute(f"SELECT c1 FROM src WHERE {where} ORDER BY rowid",
                           params.values).fetchall()  # fmt: skip
    return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("naics", "expected"),
    [
        (["11"], ["111110", "111120", "112111"]),  # the legacy list: required prefixes
        (["5415"], ["541511", "541512"]),
        ([541611], ["541611"]),
        ({"require": ["11"], "exclude": ["1111"]}, ["112111"]),
        ({"require": ["11", "111110"], "exclude": ["1111"]}, ["111110", "112111"]),
        ({"exclude": ["54"]}, ["111110", "111120", "112111", None]),  # nothing required
        ({"exclude": ["1111"], "require": ["111120"]}, ["111120"]),
        ({"require": ["54"], "exclude": ["54"]}, []),
    ],
)
def test_naics_codes_follow_the_references_hierarchy(naics: Any, expected: list[Any]) -> None:
    assert kept("naics_code", CODES, {"naics_codes": naics}) == expected


@pytest.mark.parametrize(
    ("psc", "expected"),
    [
        (["R4"], ["R425", "R499"]),
        (["B502", "15"], ["B502", "1510"]),
        ({"require": [["Product"]]}, ["1510", "7030"]),
        ({"require": [["Service"]], "exclude": [["Service", "R", "R4", "R499"]]},
         ["B502", "B510", "R425"]),
        ({"require": [["Research and Development"]]}, ["AB12"]),
        ({"exclude": [["Service", "B"]]}, ["AB12", "R425", "R499", "1510", "7030", None]),
    ],
)  # fmt: skip
def test_psc_codes_follow_the_references_hierarchy(psc: Any, expected: list[Any]) -> None:
    assert kept("product_or_service_code", PSCS, {"psc_codes": psc}) == expected


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"naics_codes": ["123"]}, "lengths of 2, 4, and 6"),
        ({"naics_codes": {"require": [], "exclude": []}}, "not both empty"),
        ({"naics_codes": {"include": ["11"]}}, "require"),
        ({"psc_codes": ["r425"]}, "uppercased alphanumeric"),
        ({"psc_codes": {"require": [["R", "R4"]]}}, "Tier1 PSC filter values"),
        ({"recipient_locations": [{"state": "VA"}]}, "country is required"),
        ({"recipient_locations": [{"country": "USA", "zip": "22201"}]}, "zip is not supported"),
        ({"recipient_locations": [{"country": "USA", "city": "A%"}]}, "city must be"),
        ({"place_of_performance_locations": [{"country": "CAN"}]}, "only USA locations"),
        ({"recipient_scope": "anywhere"}, "domestic or foreign"),
    ],
)
def test_wrong_code_and_location_filters_are_refused(search: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        translate_filters(DOWNLOADS["awards"], search)


def test_locations_and_scope_translate_to_the_location_columns() -> None:
    awards = DOWNLOADS["awards"]
    node = translate_filters(awards, {
        "recipient_locations": [{"country": "USA", "state": "VA", "city": "Arlington"},
                                {"country": "CAN"}],
        "place_of_performance_locations": [{"country": "USA", "state": "TX"}, {"country": "USA"}],
        "recipient_scope": "domestic",
    })  # fmt: skip
    assert node == {"and": [
        {"or": [{"and": [{"column": "recipient_country_code", "op": "=", "value": "USA"},
                         {"column": "recipient_state_code", "op": "=", "value": "VA"},
                         {"column": "recipient_city_name", "op": "ilike", "value": "Arlington"}]},
                {"column": "recipient_country_code", "op": "=", "value": "CAN"}]},
        {"or": [{"column": "primary_place_of_performance_state_code", "op": "=", "value": "TX"},
                {"column": "primary_place_of_performance_state_code", "op": "not_null"}]},
        {"column": "recipient_country_code", "op": "=", "value": "USA"},
    ]}  # fmt: skip
    assert set(awards.column_names()) >= {
        "recipient_country_code", "recipient_state_code", "recipient_city_name",
        "primary_place_of_performance_state_code",
    }  # fmt: skip
