"""One export: DuckDB reads the job's sources from the spool, runs the type's query with the
request's filters and columns, and writes the output files. Runs in a worker thread.

Memory is DuckDB's ``memory_limit`` (sorts, groups and splits spill to the job's spool directory)
plus what the caller uploads at a time; no file is ever held in memory whole.

How a job's files come out of one query (``result`` is the query with labels applied)::

    no split        COPY result TO data.csv                      one pass, DuckDB's own writer
    rows_per_file   stage = result + __key + __rn               Parquet in the spool, in order
    partition_by      __key: the row's day (2026-01-05)         (sorted by __key, then the
    split_by          __key: the row's group value               result's own order)
                    file_keys = per key: first __rn, rows, first file index
    small files     COPY stage JOIN file_keys, __file = base + (__rn - first) // rows_per_file
                      TO dir (PARTITION_BY (__file))            one pass writes every file
    large files     one COPY per file: WHERE __rn BETWEEN a AND b (only its row groups read)

So thousands of files cost one sort and one partitioned write, not a query each (a query per
file measured ~10 ms of DuckDB overhead each: 85 s for 9,001 files, against ~8 s this way);
files over :data:`PARTITIONED_MAX_ROWS` are few, and written one by one because DuckDB's
partitioned CSV writer holds each file in memory. Each file is one contiguous run of ``__rn``,
so the order inside a file is the result's.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

from app.domain.errors import (
    Cancelled,
    ExportMemoryExceeded,
    InvalidConfig,
    InvalidOutput,
    QueryFailed,
    SourceNotFound,
    TooManyFiles,
    TransientError,
    TypeMismatch,
)
from app.domain.managed_datasets import Column
from app.engine import duck
from app.engine.fill_decoder import sql_type
from app.engine.formats import OutputSpec, write_zip
from app.engine.query import (
    OutputColumn,
    Params,
    Schema,
    compile_filter,
    order_by,
    select_columns,
    summary,
)

SourceFormat = Literal["parquet", "csv", "json", "ndjson"]
PARTITIONED_MAX_ROWS = 100_000
"""Largest file written by the one-pass partitioned COPY; its CSV writer holds a file whole
(3M-row files ran out of a 256 MB limit, 111k-row ones peaked at 348 MB RSS)."""
VIEW_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class LocalSource:
    """A source of a query, downloaded into the spool."""

    view: str  # the name the type's query reads it by
    format: SourceFormat
    paths: list[Path]
    columns: tuple[Column, ...] = ()  # declared columns (managed datasets): types and labels


@dataclass(frozen=True)
class ExportPlan:
    """What one export does: everything validated, nothing run yet."""

    kind: Literal["table-export", "summary-report", "sql"]
    config: dict[str, Any]
    columns: list[str] | None
    filters: Any
    output: OutputSpec
    password: str | None
    query: str | None = None  # the type's SQL (kind sql)
    query_params: tuple[str, ...] = ()  # config keys bound as $name in that SQL


@dataclass(frozen=True)
class Limits:
    memory_limit: str = "256MB"
    threads: int = 2
    max_files: int = 10_000
    max_input_bytes: int = 10 * 1024**3  # inputs of one job, summed, checked before download


@dataclass(frozen=True, slots=True)
class ExportedFile:
    path: Path
    name: str
    rows: int
    content_type: str
    period: str | None = None
    group: str | None = None


@dataclass
class ExportResult:
    files: list[ExportedFile]
    columns: list[OutputColumn]  # the data dictionary
    rows: int
    entries: list[dict[str, Any]] = field(default_factory=list)  # a zip's members


def connect(spool: Path, limits: Limits) -> duckdb.DuckDBPyConnection:
    """A connection confined to the attempt's spool (:mod:`app.engine.duck`)."""
    return duck.connect(spool, {"memory_limit": limits.memory_limit, "threads": limits.threads})


def run_export(
    plan: ExportPlan,
    sources: list[LocalSource],
    out_dir: Path,
    limits: Limits,
    progress: Callable[[float], None],
    should_stop: Callable[[], bool],
) -> ExportResult:
    """Run ``plan`` over ``sources`` and write its files into ``out_dir``.

    ``progress`` receives fractions (it must not raise); when ``should_stop`` turns true the
    running query is interrupted and :class:`~app.domain.errors.Cancelled` raised."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with connect(out_dir.parent, limits) as con, _watch(con, progress, should_stop,
                                                         limits.memory_limit):  # fmt: skip
        for source in sources:
            _create_source_view(con, source)
        base = _base(con, plan, sources)
        labels = _labels(plan, sources)
        schema = Schema.of([(n, str(t)) for n, t in zip(base.columns, base.types, strict=True)],
                           labels)  # fmt: skip
        positional = ", ".join(f"#{i} AS {c.ref}" for i, c in enumerate(schema.columns, 1))
        con.sql(f"SELECT {positional} FROM base").create_view("src")
        params = Params()
        text, out_columns, split_ref = _result_sql(plan, schema, params)
        key_sql = _key_sql(plan, schema, out_columns, split_ref)
        if key_sql is None and plan.output.rows_per_file is None:
            files = [_copy_whole(con, text, params, out_columns, plan.output, out_dir)]
        else:
            files = _copy_split(con, text, params, out_columns, plan, key_sql, out_dir, limits)
        rows = sum(f.rows for f in files)
        described = _describe(con, text, params, out_columns)
        progress(1.0)
        if plan.output.compression != "ZIP":
            return ExportResult(files, described, rows)
        return _zipped(files, plan, out_dir, described, rows)


def _create_source_view(con: duckdb.DuckDBPyConnection, source: LocalSource) -> None:
    if not VIEW_NAME.fullmatch(source.view):
        raise InvalidConfig(f"source name {source.view!r} is not a valid name")
    paths = [str(p) for p in source.paths]
    if not paths:
        if not source.columns:
            raise SourceNotFound(f"source {source.view} has no files")
        fields = ", ".join(f"CAST(NULL AS {sql_type(c)}) AS {c.name}" for c in source.columns)
        con.sql(f"SELECT {fields} LIMIT 0").create_view(source.view)
        return
    try:
        if source.format == "parquet":
            relation = con.read_parquet(paths)
        elif source.format == "csv":
            relation = con.read_csv(paths)
        elif source.format == "ndjson":
            relation = con.read_json(paths, format="newline_delimited")
        else:
            relation = con.read_json(paths)
    except duckdb.Error as exc:
        raise InvalidConfig(f"source {source.view} cannot be read as {source.format}: "
                            f"{_first_line(exc)}") from exc  # fmt: skip
    relation.create_view(source.view)


def _base(
    con: duckdb.DuckDBPyConnection, plan: ExportPlan, sources: list[LocalSource]
) -> duckdb.DuckDBPyRelation:
    """The rows filters and columns apply to: the source, or the type's query over its sources."""
    if plan.kind == "sql":
        assert plan.query is not None
        bound = {name: plan.config.get(name) for name in plan.query_params}
        try:
            relation = con.sql(plan.query, params=bound)
        except duckdb.Error as exc:
            raise InvalidConfig(f"the type's query failed: {_first_line(exc)}") from exc
        relation.create_view("base")
    else:
        con.sql(f"SELECT * FROM {sources[0].view}").create_view("base")
    return con.sql("SELECT * FROM base LIMIT 0")


def _labels(plan: ExportPlan, sources: list[LocalSource]) -> dict[str, str]:
    if plan.kind == "sql" or not sources:
        return {}
    return {c.name: c.alias for c in sources[0].columns}


def _result_sql(
    plan: ExportPlan, schema: Schema, params: Params
) -> tuple[str, list[OutputColumn], str | None]:
    """SQL text of the result (refs only), its columns and the split column's ref."""
    where = compile_filter(plan.filters, schema, params)
    where_sql = f" WHERE {where}" if where else ""
    if plan.kind == "summary-report":
        report = summary(
            plan.config.get("group_by") or [],
            plan.config.get("metrics") or [],
            plan.config.get("split_by"),
            schema,
        )
        groups = [c.ref for c in report.columns if c.ref.startswith("g")]
        ordered = " ORDER BY " + ", ".join(f"{g} NULLS LAST" for g in groups) if groups else ""
        text = f"SELECT {report.select} FROM src{where_sql}{report.group_by}{ordered}"
        return text, report.columns, report.split.ref if report.split else None
    chosen = select_columns(plan.columns, schema)
    ordered = order_by(plan.config.get("sort"), schema)
    limit = plan.config.get("limit")
    limit_sql = f" LIMIT {params.add(int(limit))}" if limit is not None else ""
    refs = ", ".join(c.ref for c in chosen)
    columns = [OutputColumn(c.ref, c.label, c.type, c.name) for c in chosen]
    split_ref = None
    if plan.config.get("split_by"):  # one file per value of an output column
        column = schema.find(plan.config["split_by"], "config.split_by")
        if not any(c.ref == column.ref for c in chosen):
            raise InvalidOutput(f"config.split_by: {column.name} must be one of the output columns")
        split_ref = column.ref
    return f"SELECT {refs} FROM src{where_sql}{ordered}{limit_sql}", columns, split_ref


def _key_sql(
    plan: ExportPlan, schema: Schema, out: list[OutputColumn], split_ref: str | None
) -> str | None:
    """SQL of the file key of a row: its group, or its day; None when files are not keyed."""
    if split_ref is not None:
        return f"CAST({split_ref} AS VARCHAR)"
    if plan.output.partition_by is None:
        return None
    column = schema.find(plan.output.partition_by, "output.partition_by")
    found = next((c for c in out if c.name == column.name), None)
    if found is None:
        raise InvalidOutput(f"output.partition_by: {column.name} must be one of the output columns")
    if column.family not in ("date", "datetime"):
        raise TypeMismatch(
            f"output.partition_by: {column.name} is {column.type}; periods need a date or datetime"
        )
    return f"strftime({found.ref}, '%Y-%m-%d')"


def _labelled(
    con: duckdb.DuckDBPyConnection, text: str, params: Params, out: list[OutputColumn]
) -> duckdb.DuckDBPyRelation:
    """The result with each column named by its label (through the relational API: a label is
    never SQL text)."""
    relation = con.sql(text, params=params.values or None)
    return relation.project(*[duckdb.ColumnExpression(c.ref).alias(c.label) for c in out])


def _copy(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, target: Path,
          spec: OutputSpec, view: str = "result") -> int:  # fmt: skip
    relation.create_view(view, replace=True)
    written = con.execute(
        f"COPY (SELECT * FROM {view}) TO $target ({spec.copy_options()})", {"target": str(target)}
    ).fetchone()
    return int(written[0]) if written else 0


def _copy_whole(
    con: duckdb.DuckDBPyConnection,
    text: str,
    params: Params,
    out: list[OutputColumn],
    spec: OutputSpec,
    out_dir: Path,
) -> ExportedFile:
    name = spec.name + spec.extension
    rows = _copy(con, _labelled(con, text, params, out), out_dir / name, spec)
    return ExportedFile(out_dir / name, name, rows, spec.content_type)


def _copy_split(
    con: duckdb.DuckDBPyConnection,
    text: str,
    params: Params,
    out: list[OutputColumn],
    plan: ExportPlan,
    key_sql: str | None,
    out_dir: Path,
    limits: Limits,
) -> list[ExportedFile]:
    spec = plan.output
    stage = out_dir.parent / "stage.parquet"
    refs = ", ".join(c.ref for c in out)
    if key_sql is None:  # numbered parts in the result's own order
        staged = (
            f"SELECT {refs}, NULL::VARCHAR AS __key, row_number() OVER () AS __rn FROM ({text})"
        )
    else:  # grouped by key; within a key, the result's order (__o) is kept
        staged = (
            f"SELECT *, row_number() OVER () AS __rn FROM (SELECT {refs}, __key FROM ("
            f"SELECT *, {key_sql} AS __key, row_number() OVER () AS __o FROM ({text})) "
            "ORDER BY __key NULLS LAST, __o)"
        )
    con.execute(
        f"COPY ({staged}) TO $stage (FORMAT parquet, COMPRESSION lz4_raw)",
        {**params.values, "stage": str(stage)},
    )
    keys_sql = (
        "SELECT __key, kfirst, n, (sum(ceil(n / $per)) OVER (ORDER BY kfirst) - ceil(n / $per))"
        "::BIGINT AS base FROM (SELECT __key, min(__rn) AS kfirst, count(*) AS n "
        "FROM read_parquet($stage) GROUP BY __key) ORDER BY kfirst"
    )
    per_file = spec.rows_per_file or (1 << 62)
    bound = {"stage": str(stage), "per": per_file}
    keys = con.sql(keys_sql, params=bound)
    keys.to_table("file_keys")
    planned: list[tuple[str | None, int, int]] = []  # key, part number, rows
    first: dict[str | None, int] = {}  # key -> its first row number in the stage
    for key_value, kfirst, count, _ in con.execute(
        "SELECT * FROM file_keys ORDER BY kfirst"
    ).fetchall():
        first[key_value] = kfirst
        parts = -(-count // per_file)
        planned.extend(
            (key_value, part, min(per_file, count - (part - 1) * per_file))
            for part in range(1, parts + 1)
        )
    if len(planned) > limits.max_files:
        raise TooManyFiles(
            f"the export would write {len(planned)} files; at most {limits.max_files} are "
            "allowed (raise output.rows_per_file, or split by a coarser column)"
        )
    if any(c.label == "__file" for c in out):
        raise InvalidConfig("an output column may not be labelled __file")
    labelled = [duckdb.ColumnExpression(c.ref).alias(c.label) for c in out]
    if max((rows for _, _, rows in planned), default=0) <= PARTITIONED_MAX_ROWS:
        # Many small files: one pass writes them all (DuckDB's partitioned COPY, a directory
        # per file index). Its writer buffers each file whole, hence the size bound.
        relation = con.sql(
            f"SELECT {refs}, base + (__rn - kfirst) // $per AS __file FROM read_parquet($stage) s "
            "JOIN file_keys k ON s.__key IS NOT DISTINCT FROM k.__key",
            params=bound,
        ).project(*labelled, duckdb.ColumnExpression("__file"))
        relation.create_view("result", replace=True)
        parted: Path | None = out_dir.parent / "parted"
        con.execute(
            f"COPY (SELECT * FROM result) TO $dir ({spec.copy_options()}, PARTITION_BY (__file), "
            "OVERWRITE_OR_IGNORE true)",
            {"dir": str(parted)},
        )
    else:  # a few large files: one COPY each, streaming, reading only its own row groups
        parted = None
    numbered = spec.rows_per_file is not None and len(planned) > 1
    keyed = key_sql is not None
    names = _FileNames()
    files: list[ExportedFile] = []
    for index, (key_value, part, rows) in enumerate(planned):
        name = names.make(key_value, part if numbered else None, spec, keyed)
        target = out_dir / name
        written = sorted((parted / f"__file={index}").iterdir()) if parted else []
        if len(written) == 1:
            written[0].rename(target)
        else:  # written file by file (or DuckDB split this partition): one COPY of its rows
            start = first[key_value] + (part - 1) * per_file
            alone = con.sql(
                f"SELECT {refs} FROM read_parquet($stage) WHERE __rn BETWEEN $a AND $b",
                params={"stage": str(stage), "a": start, "b": start + rows - 1},
            ).project(*labelled)
            _copy(con, alone, target, spec, view="alone")
        period = key_value if keyed and plan.output.partition_by else None
        group = key_value if keyed and not plan.output.partition_by else None
        files.append(ExportedFile(target, name, rows, spec.content_type, period, group))
    if parted is not None:
        shutil.rmtree(parted, ignore_errors=True)
    stage.unlink(missing_ok=True)
    return files


class _FileNames:
    """Unique, key-safe file names from group values and periods."""

    UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, key: str | None, part: int | None, spec: OutputSpec, keyed: bool) -> str:
        if keyed:
            stem = self.UNSAFE.sub("_", key)[:100].strip("._") if key is not None else "null"
            stem = stem or "_"
        else:
            stem = spec.name
        if part is not None:
            stem = f"{stem}-{part:05d}"
        name, n = stem + spec.extension, 1
        while name.lower() in self.used:
            n += 1
            name = f"{stem}~{n}{spec.extension}"
        self.used.add(name.lower())
        return name


def _describe(
    con: duckdb.DuckDBPyConnection, text: str, params: Params, out: list[OutputColumn]
) -> list[OutputColumn]:
    """The data dictionary: each output column with the type DuckDB gives it."""
    relation = con.sql(f"SELECT * FROM ({text}) LIMIT 0", params=params.values or None)
    types = dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
    return [OutputColumn(c.ref, c.label, types.get(c.ref, c.type), c.name) for c in out]


def _zipped(
    files: list[ExportedFile],
    plan: ExportPlan,
    out_dir: Path,
    described: list[OutputColumn],
    rows: int,
) -> ExportResult:
    archive = out_dir.parent / (plan.output.name + ".zip")
    write_zip(archive, [(f.path, f.name) for f in files], plan.password)
    entries = [
        {
            "name": f.name,
            "rows": f.rows,
            "bytes": f.path.stat().st_size,
            "period": f.period,
            "group": f.group,
        }
        for f in files
    ]
    for f in files:
        f.path.unlink()
    zipped = ExportedFile(archive, archive.name, rows, "application/zip")
    return ExportResult([zipped], described, rows, entries)


@contextlib.contextmanager
def _watch(
    con: duckdb.DuckDBPyConnection,
    progress: Callable[[float], None],
    should_stop: Callable[[], bool],
    limit: str,
) -> Iterator[None]:
    """Report DuckDB's query progress and interrupt the query when the attempt must stop.

    The stage and the per-file copies are separate queries; each reports 0..100 %, so progress
    is the larger of what was reported and the current query's share (monotonic, coarse)."""
    done = threading.Event()
    stopped = threading.Event()

    def poll() -> None:
        best = 0.0
        while not done.wait(0.5):
            if should_stop():
                stopped.set()
                con.interrupt()
                return
            with contextlib.suppress(duckdb.Error):
                fraction = con.query_progress() / 100
                if fraction > best:
                    best = min(fraction, 0.99)
            progress(best)

    watcher = threading.Thread(target=poll, name="export-progress", daemon=True)
    watcher.start()
    try:
        yield
    except duckdb.InterruptException as exc:
        if stopped.is_set():
            raise Cancelled("export interrupted: the attempt is stopping") from exc
        raise
    except duckdb.OutOfMemoryException as exc:
        raise ExportMemoryExceeded(
            f"the export needs more memory than its limit ({limit}, "
            "EXHAUST_EXPORT_MEMORY_LIMIT) even when spilling to disk; raise the limit or lower "
            "EXHAUST_EXPORT_THREADS (each sorting thread needs ~128 MB)"
        ) from exc
    except duckdb.IOException as exc:  # the spool's disk (full, say): another worker may do
        raise TransientError(f"the engine could not write its files: {_first_line(exc)}") from exc
    except duckdb.Error as exc:
        # A value the column cannot hold, a conversion, a bound the data breaks: the same data
        # fails the same way on every attempt, so the job fails now, with the engine's reason.
        raise QueryFailed(f"the query cannot run on this data: {_first_line(exc)}") from exc
    finally:
        done.set()
        watcher.join()


# An absolute path in an engine message (a spool file): never shown in a job's error.
_PATH = re.compile(r"""(?<![\w.])/[^\s"']+""")


def _first_line(exc: BaseException) -> str:
    """The first line of a library message, without the worker's paths."""
    text = str(exc).strip()
    line = text.splitlines()[0][:300] if text else type(exc).__name__
    return _PATH.sub("<file>", line)
