"""insert-data to a typed Parquet segment: bounded inflation, strict types, the first bad row."""

from __future__ import annotations

import base64
import csv
import datetime
import decimal
import gzip
import json
import resource
import zlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from app.client import CsvChunks
from app.domain.errors import ExhaustError
from app.domain.managed_datasets import Column, parse_columns
from app.engine.fill_decoder import Limits, convert, convert_file, spool_insert_data, typed_segment

LIMITS = Limits(max_decompressed_bytes=10**8, max_rows=1000, max_value_bytes=100)


def columns(*declared: dict[str, Any]) -> list[Column]:
    return parse_columns(list(declared), 100)


def run(
    tmp_path: Path, rows: Any, cols: list[Column], limits: Limits = LIMITS, keep: bool = False
) -> list[Any]:
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(rows))
    out = tmp_path / "out.parquet"
    count = convert(source, cols, out, limits, keep)
    found = duckdb.connect().execute(f"SELECT * FROM read_parquet('{out}')").fetchall()
    assert count == len(found)
    return found


def refusal(tmp_path: Path, rows: Any, cols: list[Column], limits: Limits = LIMITS) -> ExhaustError:
    with pytest.raises(ExhaustError) as caught:
        run(tmp_path, rows, cols, limits)
    return caught.value


def test_compressed_insert_data_is_base64_of_gzip(tmp_path: Path) -> None:
    text = json.dumps([["1", "a"]] * 100)
    packed = base64.b64encode(gzip.compress(text.encode())).decode()
    size = spool_insert_data(packed, True, tmp_path / "rows.json", 10**6)
    assert (tmp_path / "rows.json").read_text() == text and size == len(text)
    assert spool_insert_data(text, False, tmp_path / "plain.json", 10**6) == len(text)


@pytest.mark.parametrize(
    ("data", "code"),
    [("not base64!", "INVALID_INSERT_DATA"),
     (base64.b64encode(b"not gzip").decode(), "INVALID_INSERT_DATA"),
     (base64.b64encode(gzip.compress(b"[1]", mtime=0)[:-8]).decode(), "INVALID_INSERT_DATA")],
)  # fmt: skip
def test_broken_compressed_data_is_refused(tmp_path: Path, data: str, code: str) -> None:
    with pytest.raises(ExhaustError) as caught:
        spool_insert_data(data, True, tmp_path / "rows.json", 10**6)
    assert caught.value.code == code


def test_a_gzip_bomb_is_refused_before_it_is_inflated_in_full(tmp_path: Path) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"0" * (1 << 20)
    packed = b"".join(packer.compress(zeros) for _ in range(2048)) + packer.flush()  # 2 GiB
    bomb = base64.b64encode(packed).decode()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ExhaustError) as caught:
        spool_insert_data(bomb, True, tmp_path / "rows.json", 8 * 1024 * 1024)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert caught.value.code == "DECOMPRESSED_TOO_LARGE"
    assert (tmp_path / "rows.json").stat().st_size <= 8 * 1024 * 1024
    assert grown_kib < 32 * 1024, f"peak RSS grew {grown_kib} KiB"


def test_values_are_converted_to_their_declared_types(tmp_path: Path) -> None:
    cols = columns(
        {"name": "i", "type": "integer"},
        {"name": "n", "type": "number"},
        {"name": "d", "type": "number", "subtype": "decimal(6,2)"},
        {"name": "b", "type": "boolean"},
        {"name": "day", "type": "date", "format": "%d/%m/%Y"},
        {"name": "iso", "type": "date"},
        {"name": "at", "type": "datetime"},
        {"name": "s", "type": "string"},
        {"name": "u", "type": "string", "subtype": "uuid"},
    )
    rows = [
        [" 42 ", "1.5e3", "12.34", "Yes", "31/12/2020", "2020-12-31", "2020-01-01T10:00:00+02:00", "", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"],
        ["-7", ".5", "-1", "f", "", None, "2020-01-01 10:00:00", "x", None],
    ]  # fmt: skip
    assert run(tmp_path, rows, cols) == [
        (42, 1500.0, decimal.Decimal("12.34"), True, datetime.date(2020, 12, 31),
         datetime.date(2020, 12, 31), datetime.datetime(2020, 1, 1, 8, 0), None,
         "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        (-7, 0.5, decimal.Decimal("-1.00"), False, None, None,
         datetime.datetime(2020, 1, 1, 10, 0), "x", None),
    ]  # fmt: skip


def test_rows_may_be_objects_keyed_by_column_name(tmp_path: Path) -> None:
    cols = columns({"name": "id", "type": "integer"}, {"name": "name", "type": "string"})
    rows = [{"id": 1, "name": "Ada"}, {"name": "Alan", "id": "2"}, {"id": 3}]
    assert run(tmp_path, rows, cols) == [(1, "Ada"), (2, "Alan"), (3, None)]


@pytest.mark.parametrize(
    ("column", "value"),
    [({"type": "integer"}, "1.5"), ({"type": "integer"}, "0x10"), ({"type": "integer"}, "1_000"),
     ({"type": "integer", "subtype": "int8"}, "200"), ({"type": "number"}, "NaN"),
     ({"type": "number"}, "1,5"), ({"type": "boolean"}, "maybe"),
     ({"type": "date", "format": "%d/%m/%Y"}, "31/02/2020"), ({"type": "date"}, "yesterday"),
     ({"type": "datetime"}, "10:00"), ({"type": "string", "subtype": "uuid"}, "not-a-uuid")],
)  # fmt: skip
def test_a_value_that_does_not_fit_is_refused_naming_row_and_column(
    tmp_path: Path, column: dict[str, Any], value: str
) -> None:
    cols = columns({"name": "id", "type": "string"}, {"name": "x", **column})
    error = refusal(tmp_path, [["a", None], ["b", ""], ["c", value], ["d", value]], cols)
    assert error.code == "INVALID_ROW"
    assert error.to_dict()["row"] == 3 and error.to_dict()["column"] == "x"
    assert f"row 3, column 'x': {value!r}" in error.message


def test_malformed_rows_and_documents_are_refused(tmp_path: Path) -> None:
    cols = columns({"name": "a", "type": "string"}, {"name": "b", "type": "string"})
    assert (
        refusal(tmp_path, [["1", "2"], ["1"]], cols).message == "row 2 is not an array of 2 values"
    )
    assert refusal(tmp_path, [{"a": "1"}, ["1", "2"]], cols).message == "row 2 is not an object"
    assert refusal(tmp_path, {"a": 1}, cols).code == "INVALID_INSERT_DATA"
    (tmp_path / "cut.json").write_text('[["1", "2"], ["3"')
    with pytest.raises(ExhaustError) as caught:
        convert(tmp_path / "cut.json", cols, tmp_path / "out.parquet", LIMITS)
    assert caught.value.code == "INVALID_INSERT_DATA"
    assert "rows.json" not in caught.value.message and "cut.json" not in caught.value.message


def test_limits_on_rows_and_value_sizes(tmp_path: Path) -> None:
    cols = columns({"name": "s", "type": "string"})
    assert refusal(tmp_path, [["x"]] * 1001, cols).code == "TOO_MANY_ROWS"
    error = refusal(tmp_path, [["x"], ["y" * 101]], cols)
    assert (error.code, error.to_dict()["row"]) == ("VALUE_TOO_LARGE", 2)


def test_no_rows_is_an_empty_segment_with_the_declared_types(tmp_path: Path) -> None:
    cols = columns(
        {"name": "i", "type": "integer", "subtype": "int32"}, {"name": "d", "type": "date"}
    )
    assert run(tmp_path, [], cols) == []
    types = (
        duckdb.connect().execute(f"DESCRIBE SELECT * FROM '{tmp_path / 'out.parquet'}'").fetchall()
    )
    assert [(t[0], t[1]) for t in types] == [("i", "INTEGER"), ("d", "DATE")]


def test_request_text_never_reaches_the_sql(tmp_path: Path) -> None:
    hostile = "%d'); DROP TABLE x; --"
    cols = columns({"name": "d", "type": "date", "format": hostile})
    error = refusal(tmp_path, [["2020-01-01"]], cols)
    assert error.code == "INVALID_ROW"  # the format was a bound parameter, not SQL


def test_an_empty_cell_means_the_same_whichever_way_the_csv_arrives(tmp_path: Path) -> None:
    """The seed's recipe sends CSV rows as arrays of strings (an empty cell is ""); the CLI and
    the client read the CSV with DuckDB (an empty cell is null). Both give the same dataset,
    cell for cell, and the same as DuckDB's own reading of the file: empty is NULL in every
    type. "empty-strings": "keep" keeps "" in string columns."""
    csv_path = tmp_path / "flights.csv"
    csv_path.write_text("id,tailnum,dep_delay,day\n1,N101,5,2013-01-01\n2,,,\n3,N303,,2013-01-03\n")
    cols = columns({"name": "id", "type": "integer"}, {"name": "tailnum", "type": "string"},
                   {"name": "dep_delay", "type": "number"}, {"name": "day", "type": "date"})  # fmt: skip
    with csv_path.open(newline="") as handle:
        recipe = list(csv.reader(handle))[1:]  # the seed's way: strings, "" when empty
    with CsvChunks(csv_path, 100, [{"name": c.name, "type": "string"} for c in cols]) as chunks:
        [(_, text)] = list(chunks)  # the client's way
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    by_recipe = run(tmp_path / "a", recipe, cols)
    by_client = run(tmp_path / "b", json.loads(text), cols)
    duck = (
        duckdb.connect()
        .execute(f"SELECT id, tailnum, dep_delay::DOUBLE, day FROM read_csv('{csv_path}')")
        .fetchall()
    )
    assert by_recipe == by_client == [tuple(row) for row in duck]
    assert [row[1] for row in by_recipe] == ["N101", None, "N303"]  # is_null finds row 2
    kept = run(tmp_path / "a", recipe, cols, keep=True)
    assert [row[1] for row in kept] == ["N101", "", "N303"] and kept[1][2] is None


FILE_COLUMNS = [{"name": "n", "type": "integer"}, {"name": "x", "type": "number"},
                {"name": "d", "type": "date", "format": "%d/%m/%Y"},
                {"name": "s", "type": "string"}]  # fmt: skip
FILE_ROWS = [["1", "1.5", "02/01/2020", "a"], ["2", "", "", ""], ["-3", "1e3", "31/12/1999", "z"]]


def test_an_uploaded_file_converts_as_the_same_rows_in_a_body(tmp_path: Path) -> None:
    """A CSV, a JSON Lines and a Parquet file of the same text give the segment the JSON rows
    of a body give, cell for cell; empty cells are NULL by the same rule."""
    cols = columns(*FILE_COLUMNS)
    expected = run(tmp_path, FILE_ROWS, cols)
    names = [c["name"] for c in FILE_COLUMNS]
    with (tmp_path / "rows.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([names, *FILE_ROWS])
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps(dict(zip(names, r, strict=True))) + "\n" for r in FILE_ROWS)
    )
    duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{tmp_path}/rows.csv', "
                             f"all_varchar=true)) TO '{tmp_path}/rows.parquet'")  # fmt: skip
    for form in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"{form}.parquet"
        assert convert_file(tmp_path / f"rows.{form}", form, cols, out, LIMITS) == 3
        assert duckdb.connect().execute(f"SELECT * FROM '{out}'").fetchall() == expected, form
        # The segment is one: it passes the check as it is.
        assert typed_segment(out, cols, LIMITS) == 3


def test_an_uploaded_file_is_refused_naming_its_first_bad_row(tmp_path: Path) -> None:
    cols = columns(*FILE_COLUMNS)
    (tmp_path / "bad.csv").write_text("n,x,d,s\n1,1,01/01/2020,a\n2,NaN,01/01/2020,b\n")
    with pytest.raises(ExhaustError, match=r"row 2, column 'x': 'NaN' is not a valid number"):
        convert_file(tmp_path / "bad.csv", "csv", cols, tmp_path / "o.parquet", LIMITS)
    (tmp_path / "narrow.csv").write_text("n,x\n1,2\n")
    with pytest.raises(ExhaustError, match="has 2 columns, 4 are declared"):
        convert_file(tmp_path / "narrow.csv", "csv", cols, tmp_path / "o.parquet", LIMITS)
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ExhaustError, match="not PARQUET") as refused:
        convert_file(tmp_path / "junk.parquet", "parquet", cols, tmp_path / "o.parquet", LIMITS)
    assert str(tmp_path) not in refused.value.message  # no server path in the answer


@pytest.mark.parametrize(
    "select",
    [
        "SELECT 1::BIGINT AS n, 'nan'::DOUBLE AS x, DATE '2020-01-01' AS d, 'a' AS s",
        "SELECT 1::BIGINT AS n, 1.0::DOUBLE AS x, DATE '2020-01-01' AS d, repeat('a', 101) AS s",
        "SELECT 1::INTEGER AS n, 1.0::DOUBLE AS x, DATE '2020-01-01' AS d, 'a' AS s",
        "SELECT 1::BIGINT AS x, 1.0::DOUBLE AS n, DATE '2020-01-01' AS d, 'a' AS s",
    ],
)
def test_a_parquet_file_is_kept_as_it_is_only_when_it_already_is_a_segment(
    tmp_path: Path, select: str
) -> None:
    """NaN, a text over the value limit, another type, another name: checked, not kept."""
    out = tmp_path / "up.parquet"
    duckdb.connect().execute(f"COPY ({select}) TO '{out}'")
    assert typed_segment(out, columns(*FILE_COLUMNS), LIMITS) is None


def test_a_datetime_keeps_its_offset_whatever_its_length(tmp_path: Path) -> None:
    """Plain 19-character text takes DuckDB's fast TIMESTAMP cast, which drops offsets: every
    text with an offset, of that length too, is still converted to UTC."""
    cases = {
        "2021-01-01T00:00:00+02:00": "2020-12-31 22:00:00",
        "2021-01-01 00:00:00+0200": "2020-12-31 22:00:00",
        "2021-01-01 00:00+02": "2020-12-31 22:00:00",  # 19 characters, an offset
        "2021-01-01T00:00:00Z": "2021-01-01 00:00:00",
        "2021-01-01 00:00:00": "2021-01-01 00:00:00",
        "2021-01-01T05:06:07": "2021-01-01 05:06:07",
        "2021-01-01": "2021-01-01 00:00:00",
    }
    found = run(tmp_path, [[v] for v in cases], columns({"name": "t", "type": "datetime"}))
    assert [str(row[0]) for row in found] == list(cases.values())
