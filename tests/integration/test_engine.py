"""The generation engine against the real S3 server: round trips, splits, zips, hostile requests.

The managed dataset here is built the way fills build them (Parquet segments in object storage,
an entry naming them) without going through the fill path, which has its own tests: 10 million
rows are written by DuckDB directly, in four segments.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import pyzipper

from app.catalog.loader import default_catalog
from app.domain.managed_datasets import Column, ManagedDataset, Segment
from app.domain.model import JobEvent, WorkItem
from app.engine import export
from app.engine.export import Limits
from app.engine.storage import S3ObjectStore
from app.generator import Generator
from app.sealing import Sealer
from app.settings import Settings
from tests.conftest import TEST_SECRETS_KEY, StackEndpoints

pytestmark = pytest.mark.integration

ROWS = 10_000_000
SEGMENTS = 4
COLUMNS = (
    Column("id", "ID", "INTEGER"),
    Column("carrier", 'Carrier "code", quoted', "STRING"),
    Column("month", "month", "INTEGER", "int32"),
    Column("dep_delay", "dep_delay", "NUMBER"),
    Column("amount", "amount", "NUMBER", "decimal(12,2)"),
    Column("day", "day", "DATE"),
    Column("ts", "ts", "DATETIME"),
    Column("cancelled", "cancelled", "BOOLEAN"),
    Column("tailnum", "tailnum", "STRING"),
    Column("origin", "origin", "STRING"),
    Column("distance", "distance", "INTEGER"),
    Column("note", "note", "STRING"),
)
# Deterministic rows with nulls, unicode, commas, quotes and newlines in text.
SEGMENT_SQL = """
SELECT i AS id,
       ['UA', 'AA', 'DL', 'B6', 'WN'][1 + i % 5] AS carrier,
       (1 + i % 12)::INTEGER AS month,
       CASE WHEN i % 17 = 0 THEN NULL ELSE ((i * 7919) % 1000) / 8.0 - 20 END AS dep_delay,
       ((i * 31) % 1000000 / 100.0)::DECIMAL(12,2) AS amount,
       DATE '2026-01-01' + (i % 90)::INTEGER AS day,
       TIMESTAMP '2026-01-01 00:00:00' + to_seconds(i * 37) AS ts,
       i % 3 = 0 AS cancelled,
       CASE WHEN i % 11 = 0 THEN NULL ELSE 'N' || (i % 9000)::VARCHAR END AS tailnum,
       ['SFO', 'JFK', 'Zürich', 'São Paulo'][1 + i % 4] AS origin,
       (i % 5000)::BIGINT AS distance,
       CASE WHEN i % 1000 = 0 THEN 'a, "quoted"' || chr(10) || 'line' ELSE 'n' END AS note
FROM range($start, $stop) t(i)
"""
TYPES = ", ".join(
    f"{c.name} {t}"
    for c, t in zip(COLUMNS, ["BIGINT", "VARCHAR", "INTEGER", "DOUBLE", "DECIMAL(12,2)", "DATE",
                             "TIMESTAMP", "BOOLEAN", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR"],
                    strict=True)
)  # fmt: skip


class Lookup:
    def __init__(self, *entries: ManagedDataset) -> None:
        self.entries = {e.code: e for e in entries}

    def dataset(self, channel: str, code: str) -> ManagedDataset | None:
        found = self.entries.get(code)
        return found if found is not None and found.channel == channel else None

    async def sync(self, seconds: float) -> bool:
        return True


@pytest.fixture(scope="module")
def engine_settings(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    name = f"eng-{uuid.uuid4().hex[:10]}"
    return Settings(
        kafka_bootstrap=stack.kafka_bootstrap,
        s3_endpoint=stack.s3_endpoint,
        s3_bucket=name,
        topic_prefix=name,
        state_dir=tmp_path_factory.mktemp("state"),
        spool_dir=tmp_path_factory.mktemp("spool"),
        secrets_key=TEST_SECRETS_KEY,
    )


@pytest.fixture(scope="module")
def local_segments(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("segments")
    paths = []
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        step = ROWS // SEGMENTS
        for n in range(SEGMENTS):
            path = folder / f"s{n}.parquet"
            con.execute(
                f"COPY ({SEGMENT_SQL}) TO $path (FORMAT parquet)",
                {"start": n * step, "stop": (n + 1) * step, "path": str(path)},
            )
            paths.append(path)
    return paths


@pytest.fixture
async def store(engine_settings: Settings) -> AsyncIterator[S3ObjectStore]:
    async with S3ObjectStore(engine_settings) as opened:
        await opened.ensure_bucket()
        yield opened


@pytest.fixture
async def flights(store: S3ObjectStore, local_segments: list[Path]) -> ManagedDataset:
    segments = []
    for n, path in enumerate(local_segments):
        key = f"acme/datasets/flights/v1/s{n}.parquet"
        if not await store.exists(key):
            await store.upload_file(key, path)
        segments.append(Segment(key, ROWS // SEGMENTS, path.stat().st_size, f"f{n}", 1))
    return ManagedDataset("acme", "flights", 1, COLUMNS, tuple(segments), ROWS)


def generator(settings: Settings, store: S3ObjectStore, *entries: ManagedDataset,
              limits: Limits | None = None) -> Generator:  # fmt: skip
    async def emit(item: WorkItem, event: JobEvent) -> None:
        return None

    return Generator(
        default_catalog(), store, emit, worker_id="t", spool_dir=settings.spool_dir,
        datasets=Lookup(*entries), limits=limits or Limits("256MB", 2, 10_000),
        sealer=Sealer(TEST_SECRETS_KEY.encode()), heartbeat_seconds=0.5,
    )  # fmt: skip


def work(dataset: str, config: dict[str, Any], **fields: Any) -> WorkItem:
    return WorkItem(
        request_id=f"r-{uuid.uuid4().hex[:8]}", attempt=1, tag="t", dataset=dataset,
        channel="acme", requested_by="u", config=json.dumps(config), submitted_at=1, **fields,
    )  # fmt: skip


def output(fmt: str = "CSV", compression: str = "NONE", rows_per_file: int | None = None,
           partition_by: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"format": fmt, "compression": compression, "rows_per_file": rows_per_file,
            "partition_by": partition_by}  # fmt: skip


async def fetch(store: S3ObjectStore, key: str, folder: Path) -> Path:
    path = folder / key.replace("/", "_")
    await store.download_file(key, path)
    return path


def reader(fmt: str, paths: list[Path]) -> str:
    """DuckDB text reading exported files back with the dataset's types (labels as names)."""
    files = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    labelled = ", ".join(
        f"'{c.alias}': '{t.split(' ', 1)[1]}'"
        for c, t in zip(COLUMNS, TYPES.split(", "), strict=True)
    )
    if fmt in ("CSV", "TSV"):
        delim = "\\t" if fmt == "TSV" else ","
        return (f"read_csv({files}, header=true, delim=E'{delim}', columns={{{labelled}}}, "
                "quote='\"', escape='\"')")  # fmt: skip
    if fmt in ("JSON", "JSONL"):
        return f"read_json({files}, columns={{{labelled}}})"
    return f"read_parquet({files})"


CHECKSUM = "SELECT count(*), sum(hash(COLUMNS(*)))::HUGEINT FROM {source}"
# hash(COLUMNS(*)) expands to one hash per column; summing each is order-independent.
CHECKSUM = (
    "SELECT count(*), "
    + ", ".join(f"sum(hash(#{i}))::HUGEINT" for i in range(1, len(COLUMNS) + 1))
    + " FROM {source}"
)


# Ten million rows through the CSV and Parquet writers; a million through TSV (DuckDB's CSV
# writer with another delimiter, on the same streamed path to the store) and through the JSON
# writers, five times slower per row on this machine.
@pytest.mark.parametrize(
    ("fmt", "rows"),
    [
        ("CSV", ROWS),
        ("TSV", ROWS // 10),
        ("JSON", ROWS // 10),
        ("JSONL", ROWS // 10),
        ("PARQUET", ROWS),
    ],
)
async def test_a_ten_million_row_dataset_round_trips_in_every_format(
    fmt: str, rows: int, engine_settings: Settings, store: S3ObjectStore,
    flights: ManagedDataset, local_segments: list[Path], tmp_path: Path,
) -> None:  # fmt: skip
    first = {"column": "id", "op": "<", "value": rows}
    item = work(
        "table-export", {"source": "flights"}, output=output(fmt), filters=json.dumps(first)
    )
    final = await generator(engine_settings, store, flights).run(item)
    assert final.kind == "COMPLETED", final.error
    assert final.total_rows == rows and final.total_columns == len(COLUMNS)
    [data] = final.outputs
    path = await fetch(store, data.key, tmp_path)
    assert path.stat().st_size == data.bytes
    segments = "read_parquet([" + ", ".join(f"'{p}'" for p in local_segments) + "])"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        direct = con.execute(
            CHECKSUM.format(source=f"(SELECT * FROM {segments} WHERE id < {rows})")
        ).fetchall()
        exported = con.execute(CHECKSUM.format(source=reader(fmt, [path]))).fetchall()
        if fmt == "PARQUET":  # labels are the column names of the file
            names = [
                r[0]
                for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
            ]
            assert names == [c.alias for c in COLUMNS]
    assert exported == direct and direct[0][0] == rows
    manifest = json.loads(await store.get_bytes(final.manifest_key or ""))
    assert [c["label"] for c in manifest["columns"]] == [c.alias for c in COLUMNS]
    assert manifest["columns"][4] == {"name": "amount", "label": "amount", "type": "DECIMAL(12,2)"}
    assert manifest["files"] == [{**json.loads(json.dumps(manifest["files"][0])), "rows": rows}]
    assert manifest["files"][0]["sha256"] == data.sha256 and manifest["total_rows"] == rows
    path.unlink()  # gigabytes: free the disk for the next format
    await store.delete_keys([data.key, final.manifest_key or ""])


async def test_filters_columns_sort_and_limit_match_the_same_query_run_directly(
    engine_settings: Settings, store: S3ObjectStore, flights: ManagedDataset,
    local_segments: list[Path], tmp_path: Path,
) -> None:  # fmt: skip
    filters = {"and": [
        {"column": "carrier", "op": "in", "value": ["UA", "AA"]},
        {"column": "month", "op": "between", "value": [1, 3]},
        {"or": [{"column": "dep_delay", "op": ">", "value": 60}, {"column": "tailnum", "op": "is_null"}]},
        {"column": "day", "op": ">=", "value": "2026-01-10"},
        {"column": "ts", "op": "<", "value": "2026-06-01T00:00:00"},
        {"not": {"column": "origin", "op": "like", "value": "S%"}},
    ]}  # fmt: skip
    item = work(
        "table-export",
        {"source": "flights", "sort": [{"column": "amount", "desc": True}, {"column": "id"}], "limit": 1000},
        columns=["ID", "amount", "carrier", "day"],  # by label or by name, in this order
        filters=json.dumps(filters), output=output("JSONL"),
    )  # fmt: skip
    final = await generator(engine_settings, store, flights).run(item)
    assert final.kind == "COMPLETED", final.error
    path = await fetch(store, final.outputs[0].key, tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    files = "[" + ", ".join(f"'{p}'" for p in local_segments) + "]"
    with duckdb.connect() as con:
        expected = con.execute(
            f"SELECT id, amount::VARCHAR, carrier, day::VARCHAR FROM read_parquet({files}) "
            "WHERE carrier IN ('UA', 'AA') AND month BETWEEN 1 AND 3 "
            "AND (dep_delay > 60 OR tailnum IS NULL) AND day >= DATE '2026-01-10' "
            "AND ts < TIMESTAMP '2026-06-01' AND NOT origin LIKE 'S%' "
            "ORDER BY amount DESC, id LIMIT 1000"
        ).fetchall()
    assert len(rows) == 1000 == final.total_rows
    assert list(rows[0]) == ["ID", "amount", 'Carrier "code", quoted', "day"]
    assert [
        (r["ID"], f"{r['amount']:.2f}", r['Carrier "code", quoted'], r["day"]) for r in rows
    ] == [(i, f"{float(a):.2f}", c, d) for i, a, c, d in expected]


async def test_an_encrypted_zip_opens_with_its_key_only(
    engine_settings: Settings, store: S3ObjectStore, flights: ManagedDataset, tmp_path: Path
) -> None:
    sealed = Sealer(TEST_SECRETS_KEY.encode()).seal("correct horse")
    item = work(
        "table-export", {"source": "flights", "limit": 50_000}, output=output("CSV", "ZIP"),
        sealed_key=sealed,
    )  # fmt: skip
    final = await generator(engine_settings, store, flights).run(item)
    assert final.kind == "COMPLETED", final.error
    [archive] = final.outputs
    assert archive.key.endswith("/data.zip") and archive.content_type == "application/zip"
    data = await store.get_bytes(archive.key)
    with pyzipper.AESZipFile(io.BytesIO(data)) as opened:
        [info] = opened.infolist()
        assert info.flag_bits & 0x1  # encrypted
        with pytest.raises(RuntimeError):
            opened.read("data.csv")  # no password
        opened.setpassword(b"wrong")
        with pytest.raises(RuntimeError):
            opened.read("data.csv")
        opened.setpassword(b"correct horse")
        text = opened.read("data.csv").decode()
    assert text.count("\n") >= 50_001 and text.startswith('ID,"Carrier ""code"", quoted"')
    manifest = json.loads(await store.get_bytes(final.manifest_key or ""))
    assert manifest["encrypted"] is True and manifest["archive_entries"][0]["rows"] == 50_000
    assert "correct horse" not in json.dumps(manifest)


async def test_numbered_parts_and_period_partitions(
    engine_settings: Settings, store: S3ObjectStore, flights: ManagedDataset, tmp_path: Path
) -> None:
    gen = generator(engine_settings, store, flights)
    parts = await gen.run(work("table-export", {"source": "flights", "limit": 250_000},
                               output=output("CSV", "GZIP", rows_per_file=60_000)))  # fmt: skip
    assert parts.kind == "COMPLETED", parts.error
    names = [o.key.rsplit("/", 1)[1] for o in parts.outputs]
    assert names == [f"data-{n:05d}.csv.gz" for n in range(1, 6)]
    assert [o.rows for o in parts.outputs] == [60_000] * 4 + [10_000]
    with duckdb.connect() as con:
        paths = [await fetch(store, o.key, tmp_path) for o in parts.outputs]
        counted = [con.execute(f"SELECT count(*) FROM read_csv('{p}')").fetchone() for p in paths]
        ids = con.execute(
            "SELECT count(DISTINCT ID), min(ID), max(ID) FROM read_csv(["
            + ", ".join(f"'{p}'" for p in paths)
            + "])"
        ).fetchone()
    assert [c[0] for c in counted if c] == [60_000] * 4 + [10_000]
    assert ids == (250_000, 0, 249_999)

    periods = await gen.run(work(
        "table-export", {"source": "flights"}, columns=["id", "day", "amount"],
        filters=json.dumps({"column": "id", "op": "<", "value": 900_000}),
        output=output("PARQUET", partition_by="day"),
    ))  # fmt: skip
    assert periods.kind == "COMPLETED", periods.error
    assert len(periods.outputs) == 90
    first = periods.outputs[0]
    assert first.key.endswith("/2026-01-01.parquet") and first.period == "2026-01-01"
    assert sum(o.rows for o in periods.outputs) == 900_000
    path = await fetch(store, periods.outputs[-1].key, tmp_path)
    with duckdb.connect() as con:
        days = con.execute(f"SELECT DISTINCT day::VARCHAR FROM read_parquet('{path}')").fetchall()
    assert days == [("2026-03-31",)] and periods.outputs[-1].period == "2026-03-31"


async def test_a_split_by_summary_yields_thousands_of_files_and_a_manifest_listing_them(
    engine_settings: Settings, store: S3ObjectStore, flights: ManagedDataset, tmp_path: Path
) -> None:
    config = {
        "source": "flights", "group_by": ["distance", "carrier"], "split_by": "distance",
        "metrics": [{"op": "count"}, {"op": "avg", "column": "dep_delay", "as": "mean delay"},
                    {"op": "p90", "column": "dep_delay"}, {"op": "stddev", "column": "amount"}],
    }  # fmt: skip
    filters = {"and": [{"column": "id", "op": "<", "value": 2_000_000},
                       {"column": "distance", "op": "<", "value": 2500}]}  # fmt: skip
    final = await generator(engine_settings, store, flights).run(
        work("summary-report", config, filters=json.dumps(filters), output=output("JSON"))
    )
    assert final.kind == "COMPLETED", final.error
    assert len(final.outputs) == 2500
    names = sorted(o.key.rsplit("/", 1)[1] for o in final.outputs)
    assert names == sorted(f"{d}.json" for d in range(2500))
    manifest = json.loads(await store.get_bytes(final.manifest_key or ""))
    assert [f["key"] for f in manifest["files"]] == [o.key for o in final.outputs]
    assert {f["group"] for f in manifest["files"]} == {str(d) for d in range(2500)}
    assert [c["label"] for c in manifest["columns"]] == [
        "distance",
        'Carrier "code", quoted',
        "count",
        "mean delay",
        "p90_dep_delay",
        "stddev_amount",
    ]
    one = next(o for o in final.outputs if o.key.endswith("/42.json"))
    rows = json.loads(await store.get_bytes(one.key))
    # distance 42: ids 42, 5042, 10042, ... below 2M (400 of them), carrier = id % 5 = 2 -> DL
    assert rows == [{"distance": 42, 'Carrier "code", quoted': "DL", "count": 400,
                     "mean delay": rows[0]["mean delay"], "p90_dep_delay": rows[0]["p90_dep_delay"],
                     "stddev_amount": rows[0]["stddev_amount"]}]  # fmt: skip
    assert one.rows == 1 and final.total_rows == 2500


class RecordingConnection:
    """The engine's DuckDB connection, recording every SQL text it is given."""

    texts: list[str] = []

    def __init__(self, real: duckdb.DuckDBPyConnection) -> None:
        self.real = real

    def __enter__(self) -> RecordingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()

    def sql(self, text: str, **kw: Any) -> Any:
        self.texts.append(text)
        return self.real.sql(text, **kw)

    def execute(self, text: str, *args: Any) -> Any:
        self.texts.append(text)
        return self.real.execute(text, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


HOSTILE = "x'); DROP TABLE src; --"


@pytest.mark.parametrize(
    ("config", "fields", "code"),
    [
        ({}, {"columns": ["id", HOSTILE]}, "UNKNOWN_COLUMN"),
        ({}, {"filters": json.dumps({"column": HOSTILE, "op": "=", "value": 1})}, "UNKNOWN_COLUMN"),
        ({"sort": [{"column": "id desc; DROP TABLE src"}]}, {}, "UNKNOWN_COLUMN"),
        (
            {},
            {"filters": json.dumps({"column": "month", "op": ">", "value": HOSTILE})},
            "TYPE_MISMATCH",
        ),
        (
            {},
            {"filters": json.dumps({"column": "day", "op": "=", "value": "2026-13-45"})},
            "TYPE_MISMATCH",
        ),
        (
            {},
            {"filters": json.dumps({"column": "month", "op": "like", "value": "1%"})},
            "TYPE_MISMATCH",
        ),
        (
            {},
            {"filters": json.dumps({"column": "id", "op": "; DROP", "value": 1})},
            "INVALID_FILTER",
        ),
        ({}, {"output": output(partition_by=HOSTILE)}, "UNKNOWN_COLUMN"),
        ({}, {"output": output(partition_by="carrier")}, "TYPE_MISMATCH"),
    ],
)
async def test_hostile_and_wrong_requests_are_refused_with_codes_and_never_reach_sql(
    config: dict[str, Any], fields: dict[str, Any], code: str, engine_settings: Settings,
    store: S3ObjectStore, flights: ManagedDataset, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    RecordingConnection.texts = []
    real_connect = export.connect
    monkeypatch.setattr(export, "connect", lambda *a: RecordingConnection(real_connect(*a)))
    final = await generator(engine_settings, store, flights).run(
        work("table-export", {"source": "flights", "limit": 10, **config}, **fields)
    )
    assert final.kind == "FAILED" and not final.retryable
    assert final.error is not None and final.error.code == code, final.error
    if code != "INVALID_FILTER":  # (a malformed filter is refused before the source is read)
        assert RecordingConnection.texts  # the source was opened: refused by its schema
    for text in RecordingConnection.texts:
        assert HOSTILE not in text and "DROP" not in text and "2026-13-45" not in text


async def test_a_hostile_value_is_a_bound_parameter_that_matches_nothing(
    engine_settings: Settings, store: S3ObjectStore, flights: ManagedDataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    RecordingConnection.texts = []
    real_connect = export.connect
    monkeypatch.setattr(export, "connect", lambda *a: RecordingConnection(real_connect(*a)))
    final = await generator(engine_settings, store, flights).run(work(
        "table-export", {"source": "flights"},
        filters=json.dumps({"or": [{"column": "carrier", "op": "=", "value": HOSTILE},
                                   {"column": "origin", "op": "in", "value": ["' OR 1=1 --"]}]}),
    ))  # fmt: skip
    assert final.kind == "COMPLETED" and final.total_rows == 0, final.error
    assert all(HOSTILE not in t and "OR 1=1" not in t for t in RecordingConnection.texts)
    assert not any('"code"' in t for t in RecordingConnection.texts)  # labels are not SQL either


PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from app.domain.managed_datasets import ManagedDataset
    from app.engine.export import Limits
    from app.settings import Settings
    from app.engine.storage import S3ObjectStore
    from tests.integration.test_engine import generator, work, output

    async def main() -> None:
        settings = Settings()  # from the EXHAUST_* variables the test sets
        entry = ManagedDataset.from_record(json.loads(sys.argv[1]))
        async with S3ObjectStore(settings) as store:
            final = await generator(settings, store, entry, limits=Limits("128MB", 1, 10_000)).run(
                work("table-export", {"source": "flights", "sort": [{"column": "dep_delay"}]},
                     output=output("CSV", rows_per_file=3_000_000)))
        print(json.dumps({"kind": final.kind, "rows": final.total_rows, "bytes": final.total_bytes,
                          "error": str(final.error)}))
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                print(int(line.split()[1]) // 1024)

    asyncio.run(main())
    """
)
MEMORY_LIMIT_MIB = 128
OVERHEAD_MIB = 256  # the interpreter and its libraries (~150), upload parts in flight, DuckDB's
# allocations outside its buffer manager and allocator slack


def test_peak_memory_of_an_export_many_times_its_memory_limit_stays_bounded(
    engine_settings: Settings, flights: ManagedDataset
) -> None:
    """A sorted 10M-row export (~790 MB of CSV, split into parts) with a 128 MB limit, one thread."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "EXHAUST_S3_ENDPOINT": engine_settings.s3_endpoint,
        "EXHAUST_S3_BUCKET": engine_settings.s3_bucket,
        "EXHAUST_S3_ACCESS_KEY": engine_settings.s3_access_key,
        "EXHAUST_S3_SECRET_KEY": engine_settings.s3_secret_key.get_secret_value(),
        "EXHAUST_SPOOL_DIR": str(engine_settings.spool_dir),
        "EXHAUST_STATE_DIR": str(engine_settings.state_dir),
        "EXHAUST_SECRETS_KEY": TEST_SECRETS_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(flights.to_record())],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary_line, peak_line = done.stdout.strip().splitlines()[-2:]
    result, peak = json.loads(summary_line), int(peak_line)
    assert result["kind"] == "COMPLETED" and result["rows"] == ROWS, (result, done.stderr[-3000:])
    print(f"peak RSS {peak} MiB exporting {result['bytes'] / 2**20:.0f} MiB")
    assert result["bytes"] > 6 * MEMORY_LIMIT_MIB * 2**20
    assert peak < MEMORY_LIMIT_MIB + OVERHEAD_MIB, f"peak RSS {peak} MiB"


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_spool(engine_settings: Settings) -> Iterator[None]:
    yield
    assert engine_settings.spool_dir is not None
    assert list(engine_settings.spool_dir.iterdir()) == []  # every job removed its spool
