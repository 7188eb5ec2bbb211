"""The USAspending download v2 profile against seed 004, without a broker: the seed's requests
verbatim, every field and type of the seed's responses, the Search v2 filter translation, the
errors, channel isolation. End to end on the real stack: tests/integration/test_usaspending.py."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app import demo_data
from app.api.server import create_web_app
from app.catalog.loader import default_catalog
from app.domain import usaspending_columns
from app.domain.errors import InvalidFilter, OutOfRange, UnknownColumn
from app.domain.model import DatasetRequest, Job, JobError, OutputFile
from app.domain.usaspending import DOWNLOADS, check_columns, translate_filters
from app.engine.query import Params, Schema, check_filter_shape, compile_filter
from app.health import Health
from app.metrics import Metrics
from app.settings import Settings
from app.stream.read_model import Change, ReadModel
from tests.fakes import MemoryStore, api_context

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

    context = api_context(
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
         400, "INVALID_FILTER", "Missing necessary location field: state."),
        ({"filters": {"recipient_locations": [{"state": "VA"}]}},
         400, "INVALID_FILTER", "Missing necessary location field: country."),
        ({"filters": {"time_period": [{"start_date": "2024-13-01"}]}}, 400, "INVALID_FILTER",
         "Invalid value in 'filters|time_period|start_date'. '2024-13-01' is not a valid "
         "type (date)"),
        ({"filters": {"time_period": [{"start_date": "2007-09-30"}]}}, 422, "OUT_OF_RANGE",
         "Field 'filters|time_period|start_date' value '2007-09-30' is below min "
         "'2007-10-01'"),
        ({"filters": {"time_period": [{"start_date": "2020-01-01", "date_type": "x"}]}},
         400, "INVALID_FILTER", "Field 'filters|time_period|date_type' is outside valid "
         "values ['action_date', 'last_modified_date', 'date_signed', 'new_awards_only']"),
        ({"filters": {"keywords": ["F5"]}}, 422, "OUT_OF_RANGE",
         "Field 'filters|keywords' value 'F5' is below min '3' items"),
        ({"filters": {"award_type_codes": ["A", "Z"]}}, 400, "INVALID_FILTER",
         "Field 'filters|award_type_codes' is outside valid values ['A', 'B'"),
        ({"filters": {}, "limit": "ten"}, 400, "INVALID_CONFIG",
         "Invalid value in 'limit'. 'ten' is not a valid type (integer)"),
        ({"filters": {}, "limit": 1.5}, 400, "INVALID_CONFIG", "not a valid type (integer)"),
        ({"filters": {}, "limit": 500001}, 422, "OUT_OF_RANGE",
         "Field 'limit' value '500001' is above max '500000'"),
        ({"filters": {}, "limit": 0}, 422, "OUT_OF_RANGE", "below min '1'"),
        ({"filters": {}, "file_format": "xlsx"}, 400, "INVALID_CONFIG",
         "Field 'file_format' is outside valid values ['csv', 'tsv', 'pstxt']"),
        ({"filters": {"award_amounts": [{"lower_bound": "x"}]}}, 400, "INVALID_FILTER",
         "lower_bound"),
        ({"filters": []}, 400, "INVALID_FILTER", "JSON object"),
        ({"filters": {"keywords": ["abc"] * 300}}, 400, "INVALID_FILTER", "256 nodes"),
        ({"filters": {"recipient_locations": [{"country": "USA", "zip": "2" * 5000}]}}, 400,
         "INVALID_FILTER", "not a valid type (text)"),
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
    with pytest.raises(InvalidFilter, match=r"filters\.wishes is not supported"):
        translate_filters(awards, {"wishes": ["x"]})
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
        ({"recipient_locations": [{"state": "VA"}]}, "Missing necessary location field: country"),
        ({"recipient_locations": [{"country": "USA", "zip": "2220"}]}, "not a zip code"),
        ({"recipient_locations": [{"country": "USA", "city": "A%"}]}, "must be a city name"),
        ({"recipient_locations": [{"country": "USA", "state": "VA", "county": "059",
                                   "district_original": "11"}]}, "cannot be combined"),
        ({"recipient_locations": [{"country": "USA", "state": "VA", "district_original": "11",
                                   "district_current": "11"}]}, "cannot be combined"),
        ({"recipient_locations": [{"country": "USA", "district_current": "11"}]},
         "Missing necessary location field: state"),
        ({"recipient_locations": [{"country": "USA", "planet": "Mars"}]}, "Unexpected field"),
        ({"recipient_scope": "anywhere"}, "outside valid values"),
        ({"def_codes": ["L; DROP"]}, "not a disaster emergency fund code"),
        ({"tas_codes": [{"aid": "097"}]}, "needs aid and main"),
        ({"tas_codes": {"require": [["97"]]}}, "not an agency, federal account"),
        ({"time_period": [{"end_date": "2024-01-01"}]}, "start_date' is a required field"),
        ({"time_period": [{"start_date": "2024-02-30"}]}, "not a valid type"),
    ],
)  # fmt: skip
def test_wrong_code_and_location_filters_are_refused(search: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilter, match=re.escape(message)):
        translate_filters(DOWNLOADS["awards"], search)


def test_a_district_of_three_characters_is_out_of_range() -> None:
    with pytest.raises(OutOfRange, match="value '111' is above max '2'"):
        translate_filters(DOWNLOADS["awards"], {"recipient_locations": [
            {"country": "USA", "state": "VA", "district_original": "111"}]})  # fmt: skip


DUCK = {"string": "VARCHAR", "number": "DOUBLE", "integer": "BIGINT", "date": "DATE"}


@dataclass
class Sample:
    rows: list[dict[str, Any]]  # by usaspending-api's column names
    con: duckdb.DuckDBPyConnection  # the rows in table src (n, c1, c2, …), n the position


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sample]]:
    """The sample awards and transactions, as rows and as a DuckDB table each."""
    out: dict[str, Sample] = {}
    for sample in demo_data.awards_and_transactions():
        names = [c["alias"] for c in sample.columns]
        rows = [dict(zip(names, row, strict=True)) for row in sample.rows]
        columns = DOWNLOADS[sample.code].columns  # type: ignore[index]
        con = duckdb.connect()
        refs = ", ".join(f"c{i} {DUCK[c.type]}" for i, c in enumerate(columns, start=1))
        con.execute(f"CREATE TABLE src (n INTEGER, {refs})")
        lines = tmp_path_factory.mktemp("samples") / f"{sample.code}.jsonl"
        with lines.open("w") as text:
            for n, row in enumerate(rows):
                record = {f"c{i}": row[c.value] for i, c in enumerate(columns, start=1)}
                text.write(json.dumps({"n": n, **record}) + "\n")
        types = {"n": "INTEGER"} | {
            f"c{i}": DUCK[c.type] for i, c in enumerate(columns, start=1)
        }  # fmt: skip
        con.execute("INSERT INTO src SELECT * FROM read_json(?, columns = ?)",
                    [str(lines), types])  # fmt: skip
        out[sample.code] = Sample(rows, con)
    yield out
    for each in out.values():
        each.con.close()


def selected(kind: str, sample: Sample, search: dict[str, Any]) -> list[int]:
    """The positions of the rows a Search v2 filter keeps, through the filter compiler and
    DuckDB over a table with every column of the download."""
    columns = DOWNLOADS[kind].columns  # type: ignore[index]
    schema = Schema.of([(c.name, DUCK[c.type]) for c in columns],
                       {c.name: c.value for c in columns})  # fmt: skip
    node = translate_filters(DOWNLOADS[kind], search)  # type: ignore[index]
    assert node is not None
    check_filter_shape(node)
    params = Params()
    where = compile_filter(node, schema, params)
    found = sample.con.execute(f"SELECT n FROM src WHERE {where} ORDER BY n", params.values)
    return [r[0] for r in found.fetchall()]


def where(rows: list[dict[str, Any]], test: Any) -> list[int]:
    return [n for n, row in enumerate(rows) if test(row)]


def test_location_filters_select_the_rows_usaspending_would(
    samples: dict[str, Sample],
) -> None:
    """zip, county, congressional district, city, state and FOREIGN, as usaspending-api reads
    them, on both downloads: the rows DuckDB keeps are the rows a plain reading keeps."""
    awards, transactions = samples["awards"].rows, samples["transactions"].rows
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"recipient_locations": [{"country": "USA", "zip": "20190"}]},
         lambda r: (r.get("recipient_zip_code") or r.get("recipient_zip_4_code") or "")
         .startswith("20190")),
        ({"recipient_locations": [{"country": "USA", "state": "VA", "county": "059"}]},
         lambda r: r["recipient_state_code"] == "VA"),  # Fairfax is the sample's only VA county
        ({"recipient_locations": [{"country": "usa", "state": "wa", "district_current": "07"}]},
         lambda r: r["recipient_state_code"] == "WA"),
        ({"recipient_locations": [{"country": "USA", "state": "TX", "district_original": "17"}]},
         lambda r: False),  # the sample's Texas recipient is in the 18th
        ({"recipient_locations": [{"country": "FOREIGN"}]},
         lambda r: r["recipient_country_code"] != "USA"),
        ({"recipient_locations": [{"country": "CAN", "city": "toronto"}]},
         lambda r: r["recipient_city_name"] == "TORONTO"),
        ({"place_of_performance_locations": [{"country": "USA", "state": "FL"},
                                             {"country": "USA", "zip": "97204"}]},
         lambda r: r["primary_place_of_performance_state_code"] in ("FL", "OR")),
        ({"place_of_performance_scope": "foreign"},
         lambda r: r["primary_place_of_performance_country_code"] != "USA"),
    ]  # fmt: skip
    for search, test in cases:
        for kind, rows in (("awards", awards), ("transactions", transactions)):
            expected = where(rows, test)
            assert selected(kind, samples[kind], search) == expected, (kind, search)
    assert where(awards, lambda r: r["recipient_country_code"] != "USA"), "no foreign sample"


def accounts(row: dict[str, Any]) -> str:
    return str(row["treasury_accounts_funding_this_award"] or "")


def test_def_codes_tas_codes_and_date_types_select_the_rows_usaspending_would(
    samples: dict[str, Sample],
) -> None:
    awards, transactions = samples["awards"].rows, samples["transactions"].rows
    cases: list[tuple[str, dict[str, Any], Any]] = [
        ("awards", {"def_codes": ["M"]},
         lambda r: "M: " in r["disaster_emergency_fund_codes"]),
        ("transactions", {"def_codes": ["Z", "L"]},
         lambda r: r["disaster_emergency_fund_codes_for_overall_award"][0] in "ZL"),
        ("awards", {"tas_codes": [{"aid": "089", "main": "0222"}]},
         lambda r: accounts(r).startswith("089-")),
        ("awards", {"tas_codes": {"require": [["097"]], "exclude": [["097", "097-0100"]]}},
         lambda r: False),
        ("transactions", {"tas_codes": {"require": [["075", "075-0850", "075-X-0850-000"]]}},
         lambda r: accounts(r) == "075-X-0850-000"),
        ("awards", {"tas_codes": {"exclude": [["080"]]}},
         lambda r: not accounts(r).startswith("080-")),
        ("awards", {"time_period": [{"start_date": "2025-01-01", "date_type": "date_signed"}]},
         lambda r: r["award_base_action_date"] >= "2025-01-01"),
        ("awards", {"time_period": [{"start_date": "2024-03-01", "end_date": "2024-03-31",
                                     "date_type": "last_modified_date"}]},
         lambda r: "2024-03-01" <= r["last_modified_date"] <= "2024-03-31"),
        ("awards", {"time_period": [{"start_date": "2025-06-01"}]},  # no end_date: no bound
         lambda r: r["award_latest_action_date"] >= "2025-06-01"),
        ("transactions", {"time_period": [{"start_date": "2024-01-01", "end_date": "2024-06-30",
                                           "date_type": "new_awards_only"}]},
         lambda r: "2024-01-01" <= r["action_date"] <= "2024-06-30"
         and r["action_type_code"] == "A"),
    ]  # fmt: skip
    for kind, search, test in cases:
        rows = awards if kind == "awards" else transactions
        expected = where(rows, test)
        assert selected(kind, samples[kind], search) == expected, (kind, search)
    assert where(awards, lambda r: "M: " in r["disaster_emergency_fund_codes"])


def test_the_columns_are_usaspending_apis_in_its_order() -> None:
    """Every column of usaspending-api's contract and assistance files, each file's columns in
    its order; the seed's own examples besides; every column has a dataset name."""
    for kind, contracts, assistance in (
        ("awards", usaspending_columns.AWARD_CONTRACTS, usaspending_columns.AWARD_ASSISTANCE),
        ("transactions", usaspending_columns.TRANSACTION_CONTRACTS,
         usaspending_columns.TRANSACTION_ASSISTANCE),
    ):  # fmt: skip
        names = DOWNLOADS[kind].column_names()  # type: ignore[index]
        assert [n for n in names if n in contracts] == list(contracts)
        # The assistance file orders a few shared columns otherwise; each of its own columns
        # comes after the one it follows there.
        for before, name in itertools.pairwise(assistance):
            if name not in contracts:
                assert names.index(before) < names.index(name), name
        assert set(assistance) <= set(names)
        assert set(names) - set(contracts) - set(assistance) <= {
            "awarding_agency",
            "assistance_type",
            "award_description",
            "cfda_number",
        }
    wanted = {"product_or_service_code_description", "total_funding_amount", "award_id_uri",
              "assistance_award_unique_key", "sai_number", "1862_land_grant_college",
              "outlayed_amount_from_COVID-19_supplementals"}  # fmt: skip
    assert wanted <= set(DOWNLOADS["awards"].column_names())
    assert {"assistance_transaction_unique_key", "contract_transaction_unique_key"} <= set(
        DOWNLOADS["transactions"].column_names()
    )
