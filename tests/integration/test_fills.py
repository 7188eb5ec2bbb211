"""Managed datasets end to end: POST /dataset-fill on real workers, Kafka and S3Proxy."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pytest

from app.client import ExhaustClient, fill_body
from app.domain.errors import ExhaustError
from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.avro import registry
from tests.integration.harness import Worker, eventually, read_topic, start_worker

pytestmark = pytest.mark.integration

COLUMNS = [
    {"name": "id", "alias": "ID", "type": "integer"},
    {"name": "label", "alias": "Label", "type": "string"},
]


def client(worker: Worker, channel: str = "acme") -> ExhaustClient:
    return ExhaustClient(worker.url, channel, user="tester", timeout=60, retries=0)


def rss_kib(worker: Worker, field: str) -> int:
    assert worker.proc is not None
    for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


async def read_back(
    settings: Settings, worker: Worker, code: str, tmp_path: Path, channel: str = "acme"
) -> tuple[dict[str, Any], duckdb.DuckDBPyConnection]:
    """The dataset's catalog entry, and a DuckDB view ``back`` over its segments."""
    status, entry = await worker.get(f"/v1/datasets/{code}", channel)
    assert status == 200, entry
    folder = tmp_path / f"back-{code}"
    folder.mkdir(exist_ok=True)
    async with S3ObjectStore(settings) as store:
        for i, segment in enumerate(entry["segments"]):
            (folder / f"{i:05}.parquet").write_bytes(await store.get_bytes(segment["key"]))
    con = duckdb.connect()
    con.execute(f"CREATE VIEW back AS SELECT * FROM read_parquet('{folder}/*.parquet')")
    return entry, con


def checksum(con: duckdb.DuckDBPyConnection, relation: str, names: list[str]) -> tuple[int, int]:
    """Row count and an order-independent checksum of ``names``, computed by DuckDB."""
    columns = ", ".join(f'"{n}"' for n in names)
    found = con.execute(
        f"SELECT count(*), sum(hash({columns})::HUGEINT) FROM {relation}"
    ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1] or 0)


async def test_a_million_row_csv_filled_in_chunks_reads_back_identical(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    csv = tmp_path / "people.csv"
    people_csv(csv, 1_000_000)

    summary = await asyncio.to_thread(client(worker).fill_csv, csv, "people", chunk_rows=100_000)
    assert (summary.rows, summary.chunks, summary.version) == (1_000_000, 10, 1)

    entry, con = await read_back(settings, worker, "people", tmp_path)
    names = [c["name"] for c in entry["columns"]]
    con.execute(f"CREATE VIEW source AS SELECT * FROM read_csv('{csv}')")
    source_types = con.execute("DESCRIBE source").fetchall()
    back_types = con.execute("DESCRIBE back").fetchall()
    assert [(t[0], t[1]) for t in back_types] == [(t[0], t[1]) for t in source_types]
    assert [t[1] for t in back_types] == ["BIGINT", "VARCHAR", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP", "VARCHAR"]  # fmt: skip
    assert entry["rows"] == 1_000_000 and len(entry["segments"]) == 10
    assert checksum(con, "back", names) == checksum(con, "source", names)
    assert worker.stop() == 0


async def test_truncate_replaces_bad_rows_and_other_columns_change_nothing(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory(dataset_grace_seconds=1.0, dataset_sweep_seconds=0.5)
    worker = await start_worker(workers, settings, "w1")
    api = client(worker)
    api.fill("ds", [["1", "a"], ["2", "b"]], COLUMNS, append=False)
    first, _ = await read_back(settings, worker, "ds", tmp_path)

    # A bad row deep in a fill: refused with row and column, nothing of it applied.
    rows = [[str(i), f"x{i}"] for i in range(5000)]
    rows[4321][0] = "12abc"
    with pytest.raises(ExhaustError) as caught:
        api.fill("ds", rows, COLUMNS)
    assert caught.value.code == "INVALID_ROW"
    assert caught.value.details == {"row": 4322, "column": "id"}
    # An append declaring other columns: refused by the dataset's writer.
    with pytest.raises(ExhaustError) as caught:
        api.fill("ds", [["x", "y"]], [{**COLUMNS[0], "type": "string"}, COLUMNS[1]])
    assert caught.value.code == "COLUMNS_MISMATCH"
    unchanged, _ = await read_back(settings, worker, "ds", tmp_path)
    for field in ("version", "rows", "segments", "columns"):
        assert unchanged[field] == first[field], field

    # A truncate replaces the rows and may redefine the columns.
    redefined = [{"name": "code", "alias": "Code", "type": "string"}]
    answer = api.fill("ds", [["only"]], redefined, append=False)
    assert answer == {
        **answer,
        "status": "success",
        "rows-inserted": 1,
        "version": 2,
        "append": False,
        "empty-strings": "null",
    }
    entry, con = await read_back(settings, worker, "ds", tmp_path)
    assert con.execute("SELECT * FROM back").fetchall() == [("only",)]
    assert (entry["rows"], [c["alias"] for c in entry["columns"]]) == (1, ["Code"])

    # The superseded version's segment is deleted after its grace; the current one stays.
    old_key = first["segments"][0]["key"]
    async with S3ObjectStore(settings) as store:

        async def deleted() -> bool:
            return not await store.exists(old_key)

        await eventually(deleted, 30, "the superseded segment to be deleted")
        assert await store.exists(entry["segments"][0]["key"])
    status, listed = await worker.get("/v1/datasets", "acme")
    assert status == 200 and [d["code"] for d in listed["datasets"]] == ["ds"]
    # Another channel sees nothing of it.
    assert await worker.get("/v1/datasets", "globex") == (200, {"count": 0, "datasets": []})
    assert (await worker.get("/v1/datasets/ds", "globex"))[0] == 404

    # Any iterable of rows, a chunk per fill: the first truncates, the others append.
    seen: list[tuple[int, int]] = []
    rows_of = ({"id": i, "label": f"r{i}"} for i in range(10))  # a generator, read once
    summary = await asyncio.to_thread(
        api.fill_rows, "streamed", rows_of, COLUMNS, chunk_rows=4,
        progress=lambda sent, total: seen.append((sent, total)),
    )  # fmt: skip
    assert (summary.rows, summary.chunks, summary.version) == (10, 3, 1)  # appends: one version
    assert seen == [(4, -1), (8, -1), (10, -1)]
    _, con = await read_back(settings, worker, "streamed", tmp_path)
    assert con.execute("SELECT sum(ID), count(*) FROM back").fetchall() == [(45, 10)]
    assert worker.stop() == 0


async def test_the_cli_fills_from_a_csv_and_a_slow_fill_answers_with_an_operation(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory(fill_wait_seconds=0)  # never wait: always the 202 path
    worker = await start_worker(workers, settings, "w1")
    csv = tmp_path / "people.csv"
    csv.write_text("id,name,born\n1,Ada,10/12/1815\n2,Alan,23/06/1912\n")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "fill", str(csv), "--dataset-code", "people",
         "--channel", "acme", "--url", worker.url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows-inserted"] == 2
    status, entry = await worker.get("/v1/datasets/people", "acme")
    assert status == 200 and entry["rows"] == 2
    assert [(c["name"], c["type"], c["format"]) for c in entry["columns"]] == [
        ("id", "integer", None), ("name", "string", None), ("born", "date", "%d/%m/%Y"),
    ]  # fmt: skip

    body = {"user-code": "u", "dataset-code": "people", "columns": entry["columns"],
            "insert-data": json.dumps([["3", "Grace", "09/12/1906"]])}  # fmt: skip
    status, answer = await worker.post("/dataset-fill", body, "acme")
    assert status == 202 and answer["status"] == "pending"

    async def applied() -> dict[str, Any] | None:
        status, outcome = await worker.get(answer["operation"], "acme")
        assert status == 200 and outcome["status"] in ("PENDING", "APPLIED"), outcome
        return outcome if outcome["status"] == "APPLIED" else None

    outcome = await eventually(applied, 30, "the fill to be applied")
    assert (outcome["rows"], outcome["mode"]) == (1, "APPEND")
    assert (await worker.get(answer["operation"], "globex"))[0] == 404

    # An append that names no date format reads its dates in the dataset's own.
    plain = [{"name": "id", "type": "integer"}, {"name": "name", "type": "string"},
             {"name": "born", "type": "date"}]  # fmt: skip
    status, answer = await worker.post("/dataset-fill", {**body, "columns": plain,
        "insert-data": json.dumps([["4", "Barbara", "03/11/1939"]])}, "acme")  # fmt: skip
    assert status == 202, answer
    assert (await eventually(applied, 30, "the append without a format"))["rows"] == 1

    # Read your writes: an operation polled the instant its 202 arrives is known, never a 404.
    for n in range(10):
        body["insert-data"] = json.dumps([[str(10 + n), "Edsger", "11/05/1930"]])
        status, answer = await worker.post("/dataset-fill", body, "acme")
        assert status == 202
        status, outcome = await worker.get(answer["operation"], "acme")
        assert status == 200 and outcome["status"] in ("PENDING", "APPLIED"), (n, outcome)
    assert worker.stop() == 0


async def test_a_gzip_bomb_is_refused_while_memory_stays_flat(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory(fill_max_decompressed_bytes=64 * 1024 * 1024)
    worker = await start_worker(workers, settings, "w1")
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    spaces = b" " * (1 << 20)
    packed = packer.compress(b"[") + b"".join(packer.compress(spaces) for _ in range(2048))
    packed += packer.flush()  # 2 GiB of JSON whitespace in ~2 MB
    body = {"user-code": "u", "dataset-code": "bomb", "columns": COLUMNS,
            "insert-data": base64.b64encode(packed).decode(), "compressed": True}  # fmt: skip
    before = rss_kib(worker, "VmRSS")
    status, answer = await worker.post("/dataset-fill", body, "acme")
    assert status == 413 and answer["error"]["code"] == "DECOMPRESSED_TOO_LARGE"
    peak = rss_kib(worker, "VmHWM")
    assert peak - before < 96 * 1024, f"RSS rose from {before} KiB to a peak of {peak} KiB"
    assert (await worker.get("/v1/datasets/bomb", "acme"))[0] == 404
    assert worker.stop() == 0


async def test_two_fillers_of_one_dataset_are_applied_in_the_order_their_events_were_written(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    api = client(worker)

    def filler(name: str) -> None:
        for i in range(6):
            fill_id = f"{name}{i}"
            api.fill("shared", [[str(i), fill_id]], COLUMNS, append=False, fill_id=fill_id)

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(filler, "a"), pool.submit(filler, "b")]:
            done.result()

    written = [
        registry().decode("DatasetFill", m.value)["fill_id"]
        for m in await read_topic(settings, "fills")
        if m.key == b"acme/shared"
    ]
    assert sorted(written) == sorted([f"a{i}" for i in range(6)] + [f"b{i}" for i in range(6)])
    entry, con = await read_back(settings, worker, "shared", tmp_path)
    applied = [f["fill_id"] for f in reversed(entry["fills"]) if f["status"] == "APPLIED"]
    assert applied == written, "applied in the order of the fills topic"
    assert entry["version"] == 12
    assert con.execute("SELECT label FROM back").fetchall() == [(written[-1],)]
    assert worker.stop() == 0


async def test_a_worker_killed_mid_fill_leaves_each_fill_whole_or_absent(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory(consumer_session_timeout_seconds=6.0)
    worker = await start_worker(workers, settings, "w1")
    # Fill k holds 2^k * 1000 rows: any total row count names exactly which fills are in.
    sizes = {f"f{k}": (2**k) * 1000 for k in range(8)}

    def rows_of(fill_id: str) -> list[list[str]]:
        return [[str(i), f"{fill_id}-{i}"] for i in range(sizes[fill_id])]

    bodies = {f: fill_body("killed", json.dumps(rows_of(f)), COLUMNS, True, "u") for f in sizes}
    acknowledged: list[str] = []

    def send(fill_ids: list[str], api: ExhaustClient) -> None:
        for fill_id in fill_ids:
            try:
                api.post_fill(bodies[fill_id], "killed", fill_id, wait_seconds=5)
                acknowledged.append(fill_id)
            except ExhaustError:
                return  # the worker is gone

    api = client(worker)
    senders = asyncio.gather(
        asyncio.to_thread(send, ["f0", "f2", "f4", "f6"], api),
        asyncio.to_thread(send, ["f1", "f3", "f5", "f7"], api),
    )

    async def two_acknowledged() -> bool:
        return len(acknowledged) >= 2

    await eventually(two_acknowledged, 60, "two fills acknowledged", interval=0.01)
    worker.kill()  # mid-fill: the others are being decoded, staged, published or applied
    await senders
    before_restart = list(acknowledged)
    assert len(before_restart) < len(sizes), "the kill came after every fill: nothing tested"

    again = await start_worker(workers, settings, "w2")

    # Every fill event written before the kill gets applied (or was) by the new writer.
    async def settled() -> dict[str, Any] | None:
        status, entry = await again.get("/v1/datasets/killed", "acme")
        if status != 200:
            return None
        ends = len([m for m in await read_topic(settings, "fills") if m.key == b"acme/killed"])
        outcomes = len({f["fill_id"] for f in entry["fills"]})
        return entry if outcomes >= ends else None

    entry = await eventually(settled, 60, "the fills written before the kill to be applied")
    in_dataset = {s["fill_id"]: s["rows"] for s in entry["segments"]}
    assert set(before_restart) <= set(in_dataset), "an acknowledged fill is durable"
    assert all(in_dataset[f] == sizes[f] for f in in_dataset), "no fill is partly there"
    assert entry["rows"] == sum(in_dataset.values())

    # The client retries what it does not know: each fill applies once, whatever happened.
    for fill_id in sizes:
        client(again).post_fill(bodies[fill_id], "killed", fill_id)
    entry, con = await read_back(settings, again, "killed", tmp_path)
    assert sorted(s["fill_id"] for s in entry["segments"]) == sorted(sizes)
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps([r for f in sizes for r in rows_of(f)]))
    con.execute(
        f"CREATE VIEW expected AS SELECT r[1]::BIGINT AS id, r[2] AS label FROM "
        f"read_json('{expected}', format='array', records=false, columns={{'r': 'VARCHAR[]'}})"
    )
    assert checksum(con, "back", ["id", "label"]) == checksum(con, "expected", ["id", "label"])
    assert again.stop() == 0


async def test_twenty_parallel_60_mb_fills_stay_within_the_memory_budget(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    """Admission by bytes before a body is read: twenty 60 MB fills at once, each answered
    2xx, 413 or 503 (with Retry-After), and the worker's peak RSS stays under its budget plus
    a stated overhead (without admission the bodies alone would be 1.2 GB)."""
    budget = 256 * 1024 * 1024
    settings = settings_factory(fill_memory_budget_bytes=budget, fill_wait_seconds=0)
    worker = await start_worker(workers, settings, "w1")
    row = json.dumps(["1", "x" * 1000])
    insert = "[" + ",".join([row] * (60 * 1024)) + "]"  # 60 MB in 61,440 rows: little CPU
    body = json.dumps({"user-code": "u", "dataset-code": "wide", "columns": COLUMNS,
                       "insert-data": insert, "append": True}).encode()  # fmt: skip
    del insert
    before = rss_kib(worker, "VmRSS")

    def post() -> tuple[int, str | None]:
        connection = http.client.HTTPConnection("127.0.0.1", worker.settings.http_port, timeout=120)
        try:
            connection.request("POST", "/dataset-fill", body, {
                "Content-Type": "application/json", "X-Channel-ID": "acme"})  # fmt: skip
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("Retry-After")
        finally:
            connection.close()

    answers = await asyncio.gather(*(asyncio.to_thread(post) for _ in range(20)))
    peak = rss_kib(worker, "VmHWM")
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {200, 202, 413, 503}, statuses
    assert statuses[200] + statuses[202] >= 1, statuses  # the budget admits work, too
    assert all(after is not None for status, after in answers if status == 503)
    bound = budget + 160 * 1024 * 1024
    assert (peak - before) * 1024 < bound, f"RSS rose from {before} KiB to a peak of {peak} KiB"
    assert worker.stop() == 0


def people_csv(path: Path, rows: int) -> None:
    duckdb.connect().execute(
        f"""COPY (SELECT i AS id,
                    'name ' || (i * 7919 % 100003) || CASE WHEN i % 97 = 0 THEN ', "quoted"' ELSE '' END AS name,
                    round((i % 20000) / 7.0 - 1000, 2) AS amount,
                    i % 3 = 0 AS active,
                    strftime(DATE '2020-01-01' + (i % 1500)::INTEGER, '%d/%m/%Y') AS day,
                    TIMESTAMP '2021-01-01 00:00:00' + to_seconds(i * 37) AS seen_at,
                    CASE WHEN i % 11 = 0 THEN NULL ELSE ['Paris', 'Lagos', 'Lima', 'Oslo'][i % 4 + 1] END AS city
                FROM range({rows}) t(i)) TO '{path}' (HEADER)"""
    )  # fmt: skip


async def test_a_file_uploaded_and_filled_in_one_fill_reads_back_identical(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    """exhaust fill's path: the file converted by the client, uploaded to a presigned URL, one
    fill; and the same file uploaded raw (CSV, JSON Lines, Parquet) for the server to convert.
    Every way reads back cell for cell what DuckDB reads from the CSV."""
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    csv = tmp_path / "people.csv"
    people_csv(csv, 300_000)
    con = duckdb.connect()
    for form in ("jsonl", "parquet"):  # the same rows, every value as text
        con.execute(f"COPY (SELECT * FROM read_csv('{csv}', all_varchar=true)) "
                    f"TO '{tmp_path}/people.{form}' (FORMAT {'json' if form == 'jsonl' else form})")  # fmt: skip
    columns = (await asyncio.to_thread(client(worker).fill_file, csv, "typed")).rows
    assert columns == 300_000
    typed, back = await read_back(settings, worker, "typed", tmp_path)
    names = [c["name"] for c in typed["columns"]]
    back.execute(f"CREATE VIEW source AS SELECT * FROM read_csv('{csv}')")
    expected = checksum(back, "source", names)
    assert checksum(back, "back", names) == expected
    assert typed["rows"] == 300_000 and len(typed["segments"]) == 1
    for form in ("csv", "jsonl", "parquet"):
        code = f"raw-{form}"
        summary = await asyncio.to_thread(
            client(worker).fill_file, tmp_path / f"people.{form}", code,
            columns=typed["columns"], convert=False,
        )  # fmt: skip
        assert summary.rows == 300_000, form
        _, again = await read_back(settings, worker, code, tmp_path)
        again.execute(f"CREATE VIEW source AS SELECT * FROM read_csv('{csv}')")
        assert checksum(again, "back", names) == expected, form
    # The staged files are gone; only segments remain under the datasets' prefixes.
    async with S3ObjectStore(settings) as store:
        listed = await store.client.list_objects_v2(Bucket=settings.s3_bucket,
                                                    Prefix="datasets/acme/")  # fmt: skip
    keys = [o["Key"] for o in listed.get("Contents", []) if not o["Key"].endswith("/")]
    assert len(keys) == 4 and all("/segments/" in k for k in keys), keys  # (folders aside)
    assert worker.stop() == 0


async def test_an_upload_with_a_bad_row_is_refused_whole_and_names_it(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    good = tmp_path / "good.csv"
    good.write_text("id,label\n1,one\n2,two\n")
    declared = [{"name": "id", "type": "integer"}, {"name": "label", "type": "string"}]
    await asyncio.to_thread(client(worker).fill_file, good, "nums", columns=declared)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n3,three\n4.5,four and a half\n5,five\n")
    with pytest.raises(ExhaustError) as refused:
        await asyncio.to_thread(client(worker).fill_file, bad, "nums", columns=declared,
                                append=True, convert=False)  # fmt: skip
    assert refused.value.code == "INVALID_ROW" and "row 2, column 'id'" in refused.value.message
    status, entry = await worker.get("/v1/datasets/nums", "acme")
    assert status == 200 and entry["rows"] == 2  # nothing of the refused fill
    # An upload id names a file of the caller's channel only: another's is not found.
    created = client(worker).call("POST", "/v1/datasets/nums/uploads", b'{"format": "csv"}')[1]
    await asyncio.to_thread(client(worker).put_file, created["url"], good)
    theirs = ExhaustClient(worker.url, "other", user="intruder", timeout=60, retries=0)
    body = {"user-code": "x", "dataset-code": "nums", "columns": declared,
            "upload-id": created["upload-id"], "format": "csv"}  # fmt: skip
    with pytest.raises(ExhaustError) as missing:
        await asyncio.to_thread(theirs.post_fill, json.dumps(body).encode(), "nums", "f1")
    assert missing.value.code == "INPUT_MISSING"
    assert worker.stop() == 0


async def test_a_dataset_filled_in_many_chunks_is_compacted_and_reads_the_same(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    """Twenty appended chunks become one segment in the background, in a new version, with
    the same rows in the same order; the replaced segments are deleted after the grace
    period. (A compaction that lost a race with a fill: tests/unit/test_managed_datasets.py.)"""
    settings = settings_factory(compact_min_segments=20, compact_interval_seconds=0.5,
                                dataset_grace_seconds=1.0, dataset_sweep_seconds=0.5)  # fmt: skip
    worker = await start_worker(workers, settings, "w1")
    filler = client(worker)
    replaced: set[str] = set()  # every segment the fills made (none compacted before the 20th)
    for n in range(20):
        rows = [[str(n * 100 + i), f"label {n * 100 + i}"] for i in range(100)]
        last = await asyncio.to_thread(filler.fill, "chunks", rows, COLUMNS, append=n > 0)
        filled = (await worker.get("/v1/datasets/chunks", "acme"))[1]
        if filled["version"] == 1:
            replaced |= {s["key"] for s in filled["segments"]}
    assert len(replaced) >= 19

    async def compacted() -> dict[str, Any] | None:
        status, entry = await worker.get("/v1/datasets/chunks", "acme")
        assert status == 200, entry
        return dict(entry) if len(entry["segments"]) == 1 else None

    entry = await eventually(compacted, 60, "the chunks compacted", interval=0.2)
    assert entry["rows"] == 2000 and entry["version"] == 2
    assert entry["segments"][0]["key"] not in replaced
    _, back = await read_back(settings, worker, "chunks", tmp_path)
    ids = [row[0] for row in back.execute("SELECT id FROM back").fetchall()]
    assert ids == list(range(2000))  # every row, in the order it was filled
    assert entry["last_fill"]["fill_id"] == last["fill-id"]  # a compaction is no client's fill

    async def swept() -> bool | None:
        async with S3ObjectStore(settings) as store:
            present = [await store.exists(key) for key in replaced]
        return True if not any(present) else None

    await eventually(swept, 30, "the replaced segments deleted")
    assert worker.stop() == 0


async def test_a_download_stops_at_its_limit_whatever_the_size_read_before(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """An upload's size is read, then the file fetched; a client that replaces it with a
    larger one in between (the presigned PUT stays valid) cannot make the fetch outgrow the
    limit: it stops there, with the fill's limit error."""
    settings = settings_factory()
    async with S3ObjectStore(settings) as store:
        await store.ensure_bucket()
        await store.put_bytes("datasets/acme/x/uploads/u.csv", b"a" * 3 * 1024 * 1024)
        with pytest.raises(ExhaustError) as refused:
            await store.download_file("datasets/acme/x/uploads/u.csv", tmp_path / "u.csv",
                                      max_bytes=1024 * 1024)  # fmt: skip
        assert refused.value.code == "INPUTS_TOO_LARGE"
        assert (tmp_path / "u.csv").stat().st_size <= 2 * 1024 * 1024  # stopped, not fetched
        whole = await store.download_file("datasets/acme/x/uploads/u.csv", tmp_path / "w.csv")
        assert whole == 3 * 1024 * 1024
