"""From a ``/dataset-fill`` body to one typed Parquet segment: decode, bound, convert, check.

Runs in a worker thread of the API role (blocking I/O, zlib and DuckDB release the GIL):

1. :func:`spool_insert_data`: ``insert-data`` to a local spool file — the JSON text itself, or
   base64 then gzip (or zlib) inflated *in bounded steps*, so a gzip bomb is refused once it has
   inflated past ``fill_max_decompressed_bytes`` and memory never holds more than one step.
2. :func:`convert`: DuckDB reads the JSON rows (arrays of values in column order, as the
   dataset-fill guide's sample script sends them, or objects keyed by column name), converts
   every value to its
   declared type in one query, and writes the Parquet segment. A value that does not fit stops
   the query at once (DuckDB's ``error()``); a second, exact pass then finds the *first* bad
   row and names it with its column, so the fill is refused and nothing of it is kept.

Conversions are strict where DuckDB's casts are lenient (``'1.5'`` is not an integer, nor is
``'0x10'``; ``'NaN'`` is not a number). Formats and JSON paths reach DuckDB as bound
parameters; the only request text in the SQL is column names, which match
``[A-Za-z_][A-Za-z0-9_]*`` (:func:`app.domain.managed_datasets.parse_columns`) and are quoted.
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

from app.domain.errors import (
    DecompressedTooLarge,
    InvalidInsertData,
    InvalidRow,
    TooManyRows,
    ValueTooLarge,
)
from app.domain.managed_datasets import FILE_FORMATS, Column
from app.engine import duck

STEP = 1024 * 1024  # bytes inflated per step (the bound on memory while inflating)
# DuckDB's casts alone are lenient ('1.5' -> 2, '0x10', '1_000', 'NaN'): the text must match
# these first (RE2 costs ~0.02 s per million values; ltrim() with a character set, 0.3 s).
INTEGER = r"\s*[+-]?[0-9]+\s*"
NUMBER = r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*"
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


def _conversion(column: Column, i: int, params: dict[str, Any], keep_empty: bool = False) -> str:
    """SQL of ``v{i}`` (a VARCHAR, NULL when absent) converted to the column's type, NULL when
    it does not fit. Empty text is NULL for every type, as DuckDB's, pandas' and PostgreSQL's
    CSV readers take an empty cell (a client that sends CSV rows as strings sends ``""`` for
    one); ``keep_empty`` keeps it an empty string in string columns."""
    raw = f"v{i}"
    x = f"NULLIF({raw}, '')"
    target = sql_type(column)
    match column.type:
        case "STRING":
            if column.subtype == "uuid":
                return f"TRY_CAST({x} AS UUID)::VARCHAR"
            return raw if keep_empty else x
        case "INTEGER":
            return f"CASE WHEN regexp_full_match({x}, '{INTEGER}') THEN {_cast(x, target)} END"
        case "NUMBER":
            return f"CASE WHEN regexp_full_match({x}, '{NUMBER}') THEN {_cast(x, target)} END"
        case "BOOLEAN":  # true/false, t/f, yes/no, y/n, 1/0, any case
            return _cast(x, target)
        case "DATE" | "DATETIME":
            if column.format:
                params[f"format{i}"] = column.format  # bound, never pasted
                return f"CAST(TRY_STRPTIME({x}, $format{i}) AS {target})"
            if column.type == "DATE":
                return _cast(x, target)
            # An offset (+02:00, Z) is converted to UTC; a value without one is taken as UTC.
            # DuckDB's TIMESTAMP cast drops an offset, so only text that cannot hold one takes
            # it: 19 characters with seconds at the end (yyyy-mm-dd hh:mm:ss), and the
            # TIMESTAMPTZ cast still decides when it fails. Measured: 19 % of a fill's time.
            zoned = f"CAST({_cast(x, 'TIMESTAMPTZ')} AS TIMESTAMP)"
            plain = f"strlen({x}) = 19 AND substr({x}, 17, 1) = ':'"
            fast = f"COALESCE({_cast(x, 'TIMESTAMP')}, {zoned})"
            return f"CASE WHEN {plain} THEN {fast} ELSE {zoned} END"
    raise AssertionError(column.type)


def _cast(x: str, sql_type: str) -> str:
    return f"TRY_CAST({x} AS {sql_type})"


Form = str  # "array" | "object" (a JSON body), "csv" | "jsonl" | "parquet" (an uploaded file)


def _source(
    path: Path,
    columns: Sequence[Column],
    form: Form,
    params: dict[str, Any],
    stop: bool = True,
    names: Sequence[str] = (),
) -> str:
    """SQL of the rows: ``shape`` (not NULL: the row is not a row) and ``v1..vN`` as VARCHAR.

    ``stop``: a malformed row stops the query at once. Otherwise rows are numbered (``rn``,
    from 1) for the exact pass of a refused fill. ``names``: a CSV's or Parquet file's own
    column names, which map to the declared columns by position."""
    bad = "error('SHAPE')" if stop else "'bad'"
    params["path"] = str(path)
    shape = "NULL"
    if form == "array":
        scan = "read_json($path, format='array', records=false, columns={'r': 'VARCHAR[]'})"
        values = ", ".join(f"r[{i}] AS v{i}" for i in range(1, len(columns) + 1))
        shape = f"CASE WHEN r IS NULL OR len(r) <> {len(columns)} THEN {bad} END"
    elif form in ("object", "jsonl"):
        layout = "array" if form == "object" else "newline_delimited"
        scan = f"read_json($path, format='{layout}', records=false, columns={{'r': 'JSON'}})"
        paths = []
        for i, column in enumerate(columns, 1):
            params[f"path{i}"] = "$." + column.name  # bound, never pasted
            paths.append(f"json_extract_string(r, $path{i}) AS v{i}")
        values = ", ".join(paths)
        shape = f"CASE WHEN json_type(r) IS DISTINCT FROM 'OBJECT' THEN {bad} END"
    elif form == "csv":
        scan = "read_csv($path, header=true, all_varchar=true)"
        values = ", ".join(f"{quote(n)} AS v{i}" for i, n in enumerate(names, 1))
    elif form == "parquet":
        scan = "read_parquet($path)"
        values = ", ".join(f"CAST({quote(n)} AS VARCHAR) AS v{i}" for i, n in enumerate(names, 1))
    else:
        raise AssertionError(form)
    if stop:
        return f"SELECT {shape} AS shape, {values} FROM {scan}"
    return (
        f"SELECT rn, {shape} AS shape, {values} FROM "
        f"(SELECT row_number() OVER () AS rn, * FROM {scan})"
    )


def _first_char(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    if not head.startswith(b"["):
        raise InvalidInsertData("insert-data must be a JSON array of rows")
    rest = head[1:].lstrip()
    return chr(rest[0]) if rest else ""


def convert(
    path: Path,
    columns: Sequence[Column],
    out: Path,
    limits: Limits,
    keep_empty_strings: bool = False,
) -> int:
    """Convert the JSON rows at ``path`` into the Parquet segment ``out``; return its rows.
    Empty text is NULL in every column unless ``keep_empty_strings`` (string columns only)."""
    first = _first_char(path)
    if first == "]":
        return _write_empty(columns, out, limits)
    if first not in ("[", "{"):
        raise InvalidInsertData("each row must be an array of values or an object")
    form = "array" if first == "[" else "object"
    with _connect(limits, out.parent) as con:
        rows = _write(con, path, columns, form, out, limits, keep_empty_strings)
    if rows > limits.max_rows:  # the work was bounded by the decompressed size
        raise TooManyRows(
            f"{rows} rows in one fill; at most {limits.max_rows} (EXHAUST_FILL_MAX_ROWS): send "
            "them in several fills with append=true"
        )
    return rows


def convert_file(
    path: Path,
    form: Form,
    columns: Sequence[Column],
    out: Path,
    limits: Limits,
    keep_empty_strings: bool = False,
    confined: bool = True,
) -> int:
    """Convert an uploaded file (``csv`` with a header row, ``jsonl`` objects keyed by column
    name, ``parquet``) into the Parquet segment ``out``, with the checks of :func:`convert`;
    return its rows. A CSV's or Parquet file's columns are the declared ones by position.
    ``confined`` (the server): DuckDB reaches only ``out``'s directory, where the file must
    be; the client library converts the user's own file where it is."""
    if form not in FILE_FORMATS:
        raise InvalidInsertData(f"format must be one of {', '.join(FILE_FORMATS)}")
    with _connect(limits, out.parent, confined) as con:
        names: list[str] = []
        if form in ("csv", "parquet"):
            scan = ("read_csv($path, header=true, all_varchar=true)" if form == "csv"
                    else "read_parquet($path)")  # fmt: skip
            try:
                described = con.execute(f"DESCRIBE SELECT * FROM {scan}", {"path": str(path)})
                names = [str(row[0]) for row in described.fetchall()]
            except duckdb.Error as exc:
                raise InvalidInsertData(f"the uploaded file is not {form.upper()}: "
                                        f"{_scrubbed(exc)}") from exc  # fmt: skip
            if len(names) != len(columns):
                raise InvalidInsertData(
                    f"the uploaded file has {len(names)} columns, {len(columns)} are declared "
                    "(a file's columns are the declared ones, in order)"
                )
        return _write(con, path, columns, form, out, limits, keep_empty_strings, names)


def typed_segment(path: Path, columns: Sequence[Column], limits: Limits) -> int | None:
    """The rows of an uploaded Parquet file that already is a segment: the declared columns'
    names and types in order, no text over the value limit, no NaN or infinity. ``None``: it
    is not (it is then converted, and its first bad value named, by :func:`convert_file`).
    One scan of the file, with no conversion: a client that converts before uploading (the
    client library does) pays the conversion, the server only checks."""
    with _connect(limits, path.parent) as con:
        params = {"path": str(path)}
        try:
            described = con.execute("DESCRIBE SELECT * FROM read_parquet($path)", params)
            found = [(str(row[0]), str(row[1])) for row in described.fetchall()]
        except duckdb.Error:
            return None
        if found != [(c.name, sql_type(c)) for c in columns]:
            return None
        checks = ["count(*)"]
        for column in columns:
            name = quote(column.name)
            if column.type == "STRING":
                checks.append(f"coalesce(max(strlen({name})), 0) <= {limits.max_value_bytes}")
            elif sql_type(column) in ("DOUBLE", "FLOAT"):
                checks.append(f"NOT coalesce(bool_or(isnan({name}) OR isinf({name})), false)")
        row = con.execute(f"SELECT {', '.join(checks)} FROM read_parquet($path)", params)
        result = row.fetchone()
    if result is None or not all(result[1:]):
        return None
    return int(result[0])


def _write(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    columns: Sequence[Column],
    form: Form,
    out: Path,
    limits: Limits,
    keep_empty: bool,
    names: Sequence[str] = (),
) -> int:
    """One pass: read, convert, check and write the segment; a refusal names the first bad
    row (a second, exact pass)."""
    params: dict[str, Any] = {"out": str(out)}
    source = _source(path, columns, form, params, stop=True, names=names)
    strict = ", ".join(
        f"{_strict(column, i, params, limits, keep_empty)} AS {quote(column.name)}"
        for i, column in enumerate(columns, 1)
    )
    query = f"SELECT {strict} FROM ({source}) WHERE shape IS NULL"
    try:
        result = con.execute(
            f"COPY ({query}) TO $out (FORMAT parquet, COMPRESSION zstd)", params
        ).fetchone()
    except duckdb.Error as exc:
        raise _refusal(exc, con, path, columns, form, limits, names) from exc
    return int(result[0]) if result else 0


def _strict(
    column: Column, i: int, params: dict[str, Any], limits: Limits, keep_empty: bool
) -> str:
    """``v{i}`` converted, or the query stopped (``error()``) where the value does not fit: the
    checks of :func:`_problems` in the conversion's own expression, so each value is converted
    once and the text is not carried beside it (measured 7 % faster than checking after)."""
    raw, x = f"v{i}", f"NULLIF(v{i}, '')"
    conversion = _conversion(column, i, params, keep_empty)
    size = f"WHEN strlen({raw}) > {limits.max_value_bytes} THEN error('SIZE') "
    if column.type == "STRING" and column.subtype is None:
        return f"CASE {size}ELSE {conversion} END"
    checked = f"WHEN {x} IS NULL THEN NULL ELSE COALESCE({conversion}, error('VALUE')) END"
    return f"CASE {size if column.type == 'STRING' else ''}{checked}"


def _scrubbed(exc: duckdb.Error) -> str:
    """DuckDB's message, first line, without the spool's paths."""
    detail = str(exc).split("\n")[0]
    for prefix in ("Invalid Input Error: ", "IO Error: ", "Conversion Error: "):
        detail = detail.replace(prefix, "")
    return re.sub(r'(file|path)? ?"?/[^" ]*"?', "the file", detail)[:300]


def _converted(
    path: Path,
    columns: Sequence[Column],
    form: Form,
    params: dict[str, Any],
    stop: bool,
    keep_empty: bool = False,
    names: Sequence[str] = (),
) -> str:
    """SQL of the rows with both forms of each value: ``v{i}`` (text) and ``c{i}`` (typed).

    The checks then compare the two columns: written inline, each conversion would be
    evaluated twice (once to check it, once to keep it), measured 1.5x slower."""
    source = _source(path, columns, form, params, stop=stop, names=names)
    typed = ", ".join(
        f"{_conversion(c, i, params, keep_empty)} AS c{i}" for i, c in enumerate(columns, 1)
    )
    where = " WHERE shape IS NULL" if stop else ""
    return f"SELECT *, {typed} FROM ({source}){where}"


def _problems(column: Column, i: int, limits: Limits, stop: bool) -> str:
    """``WHEN`` clauses for a value of column ``i`` that does not fit: they stop the query
    (``stop``) or name the problem (``'SIZE|i'``, ``'VALUE|i'``). Sizes are checked on text
    values only: any other long value fails its conversion anyway."""
    size = "error('SIZE')" if stop else f"'SIZE|{i}'"
    value = "error('VALUE')" if stop else f"'VALUE|{i}'"
    clauses = []
    if column.type == "STRING":
        clauses.append(f"WHEN strlen(v{i}) > {limits.max_value_bytes} THEN {size}")
    if column.type != "STRING" or column.subtype is not None:
        clauses.append(f"WHEN c{i} IS NULL AND NULLIF(v{i}, '') IS NOT NULL THEN {value}")
    return " ".join(clauses) or "WHEN false THEN NULL"


def _write_empty(columns: Sequence[Column], out: Path, limits: Limits) -> int:
    with _connect(limits, out.parent) as con:
        fields = ", ".join(f"CAST(NULL AS {sql_type(c)}) AS {quote(c.name)}" for c in columns)
        con.execute(f"COPY (SELECT {fields} LIMIT 0) TO $out (FORMAT parquet)", {"out": str(out)})
    return 0


def sql_type(column: Column) -> str:
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


def _connect(limits: Limits, spool: Path, confined: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection confined to the fill's spool (:mod:`app.engine.duck`); unconfined only in
    the client library, on the user's own files."""
    config: dict[str, Any] = {"memory_limit": limits.memory_limit, "threads": limits.threads}
    if confined:
        return duck.connect(spool, config)
    return duckdb.connect(config={**config, "temp_directory": str(spool / "duckdb-temp")})


def _refusal(
    exc: duckdb.Error,
    con: duckdb.DuckDBPyConnection,
    path: Path,
    columns: Sequence[Column],
    form: Form,
    limits: Limits,
    names: Sequence[str] = (),
) -> Exception:
    """The user's error for a failed conversion (the first bad row, exactly)."""
    text = str(exc)
    if not any(f"Error: {mark}" in text for mark in ("SHAPE", "VALUE", "SIZE")):
        # DuckDB could not read the rows themselves
        if form in FILE_FORMATS:
            return InvalidInsertData(f"the uploaded file is not valid {form.upper()}: "
                                     f"{_scrubbed(exc)}")  # fmt: skip
        detail = text.split("\n")[0].replace("Invalid Input Error: ", "")
        detail = re.sub(r' in file "[^"]*"', "", detail)
        return InvalidInsertData(f"insert-data is not valid JSON rows: {detail}")
    return _first_bad_row(con, path, columns, form, limits, names)


def _first_bad_row(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    columns: Sequence[Column],
    form: Form,
    limits: Limits,
    names: Sequence[str] = (),
) -> Exception:
    """Scan again without stopping, and describe the lowest bad row and its first bad column."""
    params: dict[str, Any] = {}
    converted = _converted(path, columns, form, params, stop=False, names=names)
    checks = [f"CASE {_problems(c, i, limits, stop=False)} END" for i, c in enumerate(columns, 1)]
    problem = f"coalesce(CASE WHEN shape IS NOT NULL THEN 'SHAPE|0' END, {', '.join(checks)})"
    raw = ", ".join(f"v{i}" for i in range(1, len(columns) + 1))
    found = con.execute(
        f"SELECT rn, {problem} AS p, [{raw}] FROM ({converted}) WHERE p IS NOT NULL "
        "ORDER BY rn LIMIT 1",
        params,
    ).fetchone()
    if found is None:  # not reproducible: refuse without naming a row rather than guess
        return InvalidInsertData("insert-data could not be converted to the declared columns")
    row, what, values = int(found[0]), str(found[1]), found[2]
    kind, index = what.split("|")
    if kind == "SHAPE":
        want = f"an array of {len(columns)} values" if form == "array" else "an object"
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


__all__ = [
    "FILE_FORMATS",
    "Limits",
    "convert",
    "convert_file",
    "spool_insert_data",
    "typed_segment",
]
