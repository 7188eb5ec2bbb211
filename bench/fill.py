"""Dataset fill: rows/s through the fill paths, next to DuckDB loading the same CSV.

Run with ``make bench`` (starts the local stack) or ``python -m bench.fill``. In one run, on one
CSV (``--rows`` rows, 7 columns: integer, text, number, boolean, date in ``%d/%m/%Y``,
timestamp, text with NULLs):

1. **DuckDB**: ``COPY (SELECT * FROM read_csv(csv)) TO 'x.parquet'`` in this process, best of
   three: the rate of the engine alone, with no HTTP, JSON, gzip or Kafka.
2. **API**: an ``exhaust worker`` (role ``all``, as ``make run`` starts it) in its own process;
   the request bodies are built first (the seed's format: JSON arrays of strings, gzip, base64,
   ``--chunk-rows`` rows each), then posted by ``--concurrency`` client threads; the figure is
   the rows of all chunks over the time from the first POST to the last one answered applied.
   The server pays what the target allows it: base64, gunzip, JSON, conversion, Parquet,
   staging in S3, the fill event, the writer, the catalog.
3. **JSON chunks**: ``ExhaustClient.fill_csv`` (``exhaust fill --via json``) from the CSV
   file, timed whole: the client's own CSV → JSON → gzip work is included.
4. **Upload** (``exhaust fill``, the default): ``ExhaustClient.fill_file`` converts the CSV here
   with the server's converter, uploads the typed Parquet to a presigned URL and fills from
   it; the server checks it in one scan and copies it into place. Timed whole, from the CSV on
   disk to the fill applied.
5. **Upload raw**: the same with ``convert=False``: the CSV is uploaded as it is and the
   server converts it.

The baselines, in the same run: DuckDB's own load of the CSV into a table of a DuckDB
database file (``CREATE TABLE AS SELECT * FROM read_csv``, types sniffed), and what a user does
by hand to put it in object storage: DuckDB ``COPY`` to Parquet plus one S3 upload of the file
(aiobotocore, the service's own uploader). Ratios are to the first; the last column to the
second. All figures are printed as one table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from app.client import CsvChunks, ExhaustClient, fill_body
from app.settings import Settings
from bench.pipeline import ROOT, spawn, stop


def make_csv(path: Path, rows: int) -> None:
    duckdb.connect().execute(
        f"""COPY (SELECT i AS id, 'name ' || (i * 7919 % 100003) AS name,
                    round((i % 20000) / 7.0 - 1000, 2) AS amount, i % 3 = 0 AS active,
                    strftime(DATE '2020-01-01' + (i % 1500)::INTEGER, '%d/%m/%Y') AS day,
                    TIMESTAMP '2021-01-01' + to_seconds(i * 37) AS seen_at,
                    CASE WHEN i % 11 = 0 THEN NULL ELSE ['Paris', 'Lagos', 'Lima', 'Oslo'][i % 4 + 1] END AS city
                FROM range({rows}) t(i)) TO '{path}' (HEADER)"""
    )  # fmt: skip


def duckdb_rate(csv: Path, out: Path) -> float:
    best = float("inf")
    for _ in range(3):
        con = duckdb.connect()
        started = time.perf_counter()
        con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)")
        best = min(best, time.perf_counter() - started)
        con.close()
    rows = duckdb.connect().execute(f"SELECT count(*) FROM '{out}'").fetchone()
    assert rows is not None
    return int(rows[0]) / best


def duckdb_load_rate(csv: Path, db: Path) -> float:
    """DuckDB's own load of the CSV into a table of a database file, best of three."""
    best = float("inf")
    for n in range(3):
        con = duckdb.connect(str(db.with_suffix(f".{n}.duckdb")))
        started = time.perf_counter()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{csv}')")
        con.execute("CHECKPOINT")
        best = min(best, time.perf_counter() - started)
        rows = con.execute("SELECT count(*) FROM t").fetchone()
        con.close()
    assert rows is not None
    return int(rows[0]) / best


def by_hand_rate(csv: Path, out: Path, settings: Settings) -> float:
    """DuckDB COPY to Parquet plus one upload to the bucket: what a user would do by hand."""
    import asyncio

    from app.engine.storage import S3ObjectStore

    async def upload() -> None:
        async with S3ObjectStore(settings) as store:
            await store.ensure_bucket()
            await store.upload_file(f"bench/{uuid.uuid4().hex}.parquet", out)

    best = float("inf")
    for _ in range(3):
        con = duckdb.connect()
        started = time.perf_counter()
        con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)")
        asyncio.run(upload())
        best = min(best, time.perf_counter() - started)
        con.close()
    rows = duckdb.connect().execute(f"SELECT count(*) FROM '{out}'").fetchone()
    assert rows is not None
    return int(rows[0]) / best


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the worker did not become ready")


def api_rate(client: ExhaustClient, csv: Path, chunk_rows: int, concurrency: int) -> float:
    code = f"bench-{uuid.uuid4().hex[:8]}"
    with CsvChunks(csv, chunk_rows) as source:
        bodies = [
            (rows, fill_body(code, text, source.columns, True, "bench")) for rows, text in source
        ]
    total = sum(rows for rows, _ in bodies)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(
            pool.map(
                lambda item: client.post_fill(item[1][1], code, f"c{item[0]}"), enumerate(bodies)
            )
        )
    elapsed = time.perf_counter() - started
    assert sum(a["rows-inserted"] for a in answers) == total, answers
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--skip-json",
        action="store_true",
        help="time the upload paths only (the JSON paths are slow on big files)",
    )
    args = parser.parse_args()

    base = Settings()
    name = f"bench-fill-{uuid.uuid4().hex[:6]}"
    port = 18081
    settings = base.model_copy(update={
        "topic_prefix": name, "consumer_group": name, "s3_bucket": name, "http_port": port,
        "state_dir": ROOT / ".state" / name,
    })  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="exhaust-bench-") as tmp:
        csv = Path(tmp) / "rows.csv"
        make_csv(csv, args.rows)
        size_mb = csv.stat().st_size / 1e6
        duck = duckdb_rate(csv, Path(tmp) / "duck.parquet")
        load = duckdb_load_rate(csv, Path(tmp) / "load")
        by_hand = by_hand_rate(csv, Path(tmp) / "hand.parquet", settings)
        env = {k: str(v) for k, v in settings.as_env().items()}
        proc = spawn(
            ["-m", "app", "worker", "--loglevel", "warn"], env, ROOT / ".state" / f"{name}.log"
        )
        rates: list[tuple[str, float]] = []
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            client = ExhaustClient(url, "bench", user="bench", timeout=600)
            client.fill_file(csv, f"warm-{uuid.uuid4().hex[:6]}")  # imports, first segments
            for label, convert in (("exhaust fill (convert here, upload Parquet, 1 fill)", True),
                                   ("fill_file(convert=False): upload CSV, server converts",
                                    False)):  # fmt: skip
                started = time.perf_counter()
                summary = client.fill_file(csv, f"up-{uuid.uuid4().hex[:6]}", convert=convert)
                rates.append((label, summary.rows / (time.perf_counter() - started)))
            if not args.skip_json:
                api_rate(client, csv, args.chunk_rows, 1)  # warm-up
                api = api_rate(client, csv, args.chunk_rows, args.concurrency)
                rates.append((f"POST /dataset-fill JSON bodies, {args.concurrency} threads", api))
                started = time.perf_counter()
                summary = client.fill_csv(
                    csv, f"cli-{uuid.uuid4().hex[:6]}", chunk_rows=args.chunk_rows
                )
                rates.append(("exhaust fill --via json (CSV->JSON->gzip chunks)",
                              summary.rows / (time.perf_counter() - started)))  # fmt: skip
        finally:
            stop(proc)
    print(f"\nFill benchmark: {args.rows:,} rows x 7 columns, CSV {size_mb:.0f} MB, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'path':<58} {'rows/s':>12} {'vs load':>8} {'vs hand':>8}")
    for label, rate in [
        ("DuckDB load into a table (database file, best of 3)", load),
        ("DuckDB COPY read_csv -> Parquet (best of 3)", duck),
        ("by hand: DuckDB COPY -> Parquet + S3 upload (best of 3)", by_hand),
        *rates,
    ]:
        print(f"{label:<58} {rate:>12,.0f} {rate / load:>8.2f} {rate / by_hand:>8.2f}")


if __name__ == "__main__":
    main()
