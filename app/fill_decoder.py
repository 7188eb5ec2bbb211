"""From a ``/dataset-fill`` body to one typed Parquet segment: decode, bound, convert, check.

Runs in a worker thread of the API role (blocking I/O, zlib and DuckDB release the GIL):

1. :func:`spool_insert_data`: ``insert-data`` to a local spool file — the JSON text itself, or
   base64 then gzip (or zlib) inflated *in bounded steps*, so a gzip bomb is refused once it has
   inflated past ``fill_max_decompressed_bytes`` and memory never holds more than one step.
2. :func:`convert`: DuckDB reads the JSON rows (arrays of values in column order, as the
   seed's script sends them, or objects keyed by column name), converts every value to its
   declared type in one query, and writes the Parquet segment. A value that does not fit stops
   the query at once (DuckDB's ``error()``); a second, exact pass then finds the *first* bad
   row and names it with its column, so the fill is refused and nothing of it is kept.

Conversions are strict where DuckDB's casts are lenient (``'1.5'`` is not an integer, nor is
``'0x10'``; ``'NaN'`` is not a number). Formats and JSON paths reach DuckDB as bound
parameters; the only request text in the SQL is column names, which match
``[A-Za-z_][A-Za-z0-9_]*`` (:func:`app.managed_datasets.parse_columns`) and are quoted.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from app.errors import (
    DecompressedTooLarge,
    InvalidInsertData,
    InvalidRow,
    TooManyRows,
    ValueTooLarge,
)
from app.managed_datasets import Column

STEP = 1024 * 1024  # bytes inflated per step (the bound on memory while inflating)
INTEGER = r"\s*[+-]?[0-9]+\s*"
NUMBER = r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*"
TRUE = ("true", "t", "yes", "y", "1")
FALSE = ("false", "f", "no", "n", "0")
INTEGER_TYPES = {None: "BIGINT", "int32": "INTEGER", "int16": "SMALLINT", "int8": "TINYINT"}


@dataclass(frozen=True, slots=True)
class Limits:
    max_decompressed_bytes: int
    max_rows: int
    max_value_bytes: int
    memory_limit: str = "512MB"
    threads: int = 2


def spool_insert_data(insert_data: str, compressed: bool, path: Path, max_bytes: int) -> int:
    """Write the rows' JSON text to ``path``; return its size in bytes."""
    if not compressed:
        data = insert_data.encode("utf-8")
        if len(data) > max_bytes:
            raise DecompressedTooLarge(_too_large(max_bytes))
        path.write_bytes(data)
        return len(data)
    try:
        packed = base64.b64decode(insert_data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInsertData("insert-data is not valid base64 (compressed is true)") from exc
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    total = 0
    with path.open("wb") as out:
        try:
            chunk = inflater.decompress(packed, STEP)
            while chunk:
                total += len(chunk)
                if total > max_bytes:
                    raise DecompressedTooLarge(_too_large(max_bytes))
                out.write(chunk)
                chunk = inflater.decompress(inflater.unconsumed_tail, STEP)
        except zlib.error as exc:
            raise InvalidInsertData(f"insert-data is not valid gzip: {exc}") from exc
    if not inflater.eof:
        raise InvalidInsertData("insert-data is a truncated gzip stream")
    return total


def _too_large(max_bytes: int) -> str:
    return (
        f"insert-data inflates to more than {max_bytes} bytes "
        "(EXHAUST_FILL_MAX_DECOMPRESSED_BYTES); send the rows in several fills with append=true"
    )


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _conversion(column: Column, i: int, params: dict[str, Any]) -> str:
    """SQL of ``v{i}`` (a VARCHAR, NULL when absent) converted to the column's type, NULL when
    it does not fit. Empty text is NULL for every type but string."""
    raw = f"v{i}"
    x = f"NULLIF({raw}, '')"
    sql_type = _sql_type(column)
    match column.type:
        case "STRING":
            return raw if column.subtype != "uuid" else f"TRY_CAST({x} AS UUID)::VARCHAR"
        case "INTEGER":
            return f"CASE WHEN regexp_full_match({x}, '{INTEGER}') THEN {_cast(x, sql_type)} END"
        case "NUMBER":
            return f"CASE WHEN regexp_full_match({x}, '{NUMBER}') THEN {_cast(x, sql_type)} END"
        case "BOOLEAN":
            return (
                f"CASE WHEN lower(trim({x})) IN ({_words(TRUE)}) THEN true "
                f"WHEN lower(trim({x})) IN ({_words(FALSE)}) THEN false END"
            )
        case "DATE" | "DATETIME":
            if column.format:
                params[f"format{i}"] = column.format  # bound, never pasted
                return f"CAST(TRY_STRPTIME({x}, $format{i}) AS {sql_type})"
            if column.type == "DATE":
                return _cast(x, sql_type)
            # An offset (+02:00, Z) is converted to UTC; a value without one is taken as UTC.
            return f"CAST({_cast(x, 'TIMESTAMPTZ')} AS TIMESTAMP)"
    raise AssertionError(column.type)


def _cast(x: str, sql_type: str) -> str:
    return f"TRY_CAST({x} AS {sql_type})"


def _words(words: tuple[str, ...]) -> str:
    return ", ".join(f"'{w}'" for w in words)  # our constants, never request text


def _source(
    path: Path,
    columns: Sequence[Column],
    positional: bool,
    params: dict[str, Any],
    stop: bool = True,
) -> str:
    """SQL of the rows: ``rn`` (1-based), ``shape`` (not NULL: the row is not a row) and
    ``v1..vN`` as VARCHAR. ``stop``: a malformed row stops the query at once."""
    bad = "error('SHAPE|' || rn)" if stop else "'bad'"
    params["path"] = str(path)
    if positional:
        scan = "read_json($path, format='array', records=false, columns={'r': 'VARCHAR[]'})"
        values = ", ".join(f"r[{i}] AS v{i}" for i in range(1, len(columns) + 1))
        shape = f"CASE WHEN r IS NULL OR len(r) <> {len(columns)} THEN {bad} END"
    else:
        scan = "read_json($path, format='array', records=false, columns={'r': 'JSON'})"
        paths = []
        for i, column in enumerate(columns, 1):
            params[f"path{i}"] = "$." + column.name  # bound, never pasted
            paths.append(f"json_extract_string(r, $path{i}) AS v{i}")
        values = ", ".join(paths)
        shape = f"CASE WHEN json_type(r) IS DISTINCT FROM 'OBJECT' THEN {bad} END"
    return (
        f"SELECT rn, {shape} AS shape, {values} FROM "
        f"(SELECT row_number() OVER () AS rn, r FROM {scan})"
    )


def _first_char(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    if not head.startswith(b"["):
        raise InvalidInsertData("insert-data must be a JSON array of rows")
    rest = head[1:].lstrip()
    return chr(rest[0]) if rest else ""


def convert(path: Path, columns: Sequence[Column], out: Path, limits: Limits) -> int:
    """Convert the JSON rows at ``path`` into the Parquet segment ``out``; return its rows."""
    first = _first_char(path)
    if first == "]":
        return _write_empty(columns, out, limits)
    if first not in ("[", "{"):
        raise InvalidInsertData("each row must be an array of values or an object")
    positional = first == "["
    params: dict[str, Any] = {"out": str(out)}
    source = _source(path, columns, positional, params)
    select = []
    for i, column in enumerate(columns, 1):
        converted = _conversion(column, i, params)
        size = limits.max_value_bytes
        select.append(
            f"CASE WHEN strlen(v{i}) > {size} THEN error('SIZE|' || rn || '|{i}') "
            f"WHEN NULLIF(v{i}, '') IS NOT NULL AND ({converted}) IS NULL "
            f"THEN error('VALUE|' || rn || '|{i}') ELSE ({converted}) END AS {quote(column.name)}"
        )
    rows_check = f"CASE WHEN rn > {limits.max_rows} THEN error('ROWS|' || rn) END"
    query = (
        f"SELECT {', '.join(select)} FROM ({source}) WHERE shape IS NULL AND {rows_check} IS NULL"
    )
    with _connect(limits) as con:
        try:
            result = con.execute(
                f"COPY ({query}) TO $out (FORMAT parquet, COMPRESSION zstd)", params
            ).fetchone()
        except duckdb.Error as exc:
            raise _refusal(exc, con, path, columns, positional, limits) from exc
    return int(result[0]) if result else 0


def _write_empty(columns: Sequence[Column], out: Path, limits: Limits) -> int:
    with _connect(limits) as con:
        fields = ", ".join(f"CAST(NULL AS {_sql_type(c)}) AS {quote(c.name)}" for c in columns)
        con.execute(f"COPY (SELECT {fields} LIMIT 0) TO $out (FORMAT parquet)", {"out": str(out)})
    return 0


def _sql_type(column: Column) -> str:
    match column.type:
        case "STRING":
            return "VARCHAR"
        case "INTEGER":
            return INTEGER_TYPES[column.subtype]
        case "NUMBER":
            decimal = column.decimal
            if decimal:
                return f"DECIMAL({decimal[0]},{decimal[1]})"
            return "FLOAT" if column.subtype == "float" else "DOUBLE"
        case "BOOLEAN":
            return "BOOLEAN"
        case "DATE":
            return "DATE"
        case "DATETIME":
            return "TIMESTAMP"
    raise AssertionError(column.type)


def _connect(limits: Limits) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"memory_limit": limits.memory_limit, "threads": limits.threads})
    con.execute("SET TimeZone = 'UTC'")
    return con


MARK = re.compile(r"(SHAPE|VALUE|SIZE|ROWS)\|(\d+)(?:\|(\d+))?")


def _refusal(
    exc: duckdb.Error,
    con: duckdb.DuckDBPyConnection,
    path: Path,
    columns: Sequence[Column],
    positional: bool,
    limits: Limits,
) -> Exception:
    """The user's error for a failed conversion (the first bad row, exactly)."""
    text = str(exc)
    mark = MARK.search(text)
    if mark is None:  # DuckDB could not read the JSON itself
        detail = text.split("\n")[0].replace("Invalid Input Error: ", "")
        detail = re.sub(r' in file "[^"]*"', "", detail)
        return InvalidInsertData(f"insert-data is not valid JSON rows: {detail}")
    if mark.group(1) == "ROWS":
        return TooManyRows(
            f"more than {limits.max_rows} rows in one fill (EXHAUST_FILL_MAX_ROWS); send them "
            "in several fills with append=true"
        )
    return _first_bad_row(con, path, columns, positional, limits)


def _first_bad_row(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    columns: Sequence[Column],
    positional: bool,
    limits: Limits,
) -> Exception:
    """Scan again without stopping, and describe the lowest bad row and its first bad column."""
    params: dict[str, Any] = {}
    source = _source(path, columns, positional, params, stop=False)
    checks = []
    for i, column in enumerate(columns, 1):
        converted = _conversion(column, i, params)
        checks.append(
            f"CASE WHEN strlen(v{i}) > {limits.max_value_bytes} THEN 'SIZE|{i}' "
            f"WHEN NULLIF(v{i}, '') IS NOT NULL AND ({converted}) IS NULL THEN 'VALUE|{i}' END"
        )
    problem = f"coalesce(CASE WHEN shape IS NOT NULL THEN 'SHAPE|0' END, {', '.join(checks)})"
    raw = ", ".join(f"v{i}" for i in range(1, len(columns) + 1))
    found = con.execute(
        f"SELECT rn, {problem} AS p, [{raw}] FROM ({source}) WHERE p IS NOT NULL "
        "ORDER BY rn LIMIT 1",
        params,
    ).fetchone()
    if found is None:  # not reproducible: refuse without naming a row rather than guess
        return InvalidInsertData("insert-data could not be converted to the declared columns")
    row, what, values = int(found[0]), str(found[1]), found[2]
    kind, index = what.split("|")
    if kind == "SHAPE":
        want = f"an array of {len(columns)} values" if positional else "an object"
        return InvalidRow(f"row {row} is not {want}", row=row)
    column = columns[int(index) - 1]
    value = values[int(index) - 1]
    if kind == "SIZE":
        return ValueTooLarge(
            f"row {row}, column {column.name!r}: a value of {len(value.encode())} bytes; at most "
            f"{limits.max_value_bytes} (EXHAUST_FILL_MAX_VALUE_BYTES)",
            row=row,
            column=column.name,
        )
    expected = column.type.lower() + (f" ({column.subtype})" if column.subtype else "")
    if column.format:
        expected += f" in format {column.format}"
    shown = value if len(value) <= 60 else value[:57] + "..."
    return InvalidRow(
        f"row {row}, column {column.name!r}: {shown!r} is not a valid {expected}",
        row=row,
        column=column.name,
    )


__all__ = ["Limits", "convert", "spool_insert_data"]
