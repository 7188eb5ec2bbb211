"""Export: rows/s and MB/s of the engine into object storage, next to DuckDB's own COPY.

Run with ``make bench`` (starts the local stack) or ``python -m bench.export [--rows N]``. In one
run, over one managed dataset of ``--rows`` rows x 12 columns in ``--segments`` zstd Parquet
segments in the bucket (default 100: a dataset filled in 100 chunks, one segment each; the same
rows as ``tests/integration/test_engine.py``):

1. **DuckDB COPY**: ``COPY (SELECT * FROM read_parquet(segments)) TO 'local file'`` in this
   process, segments already on local disk, best of two: the engine alone, no object storage.
2. **Upload ceiling**: that local file uploaded with the service's own upload
   (``S3ObjectStore.upload_file``: one streamed PUT up to ``s3_multipart_threshold_bytes``,
   parallel parts above), best of two: what the S3 server accepts.
3. **Exhaust**: ``Generator.run`` of a ``table-export`` job in a fresh process (so its peak RSS
   is its own): download the segments, DuckDB, upload, manifest. Timed whole, best of two.

For CSV and Parquet, and CSV again with every file over one part sent in parts (the upload
path for files over the threshold, and the better one on AWS S3): on the dataset as the
background compactor leaves it (one segment; the compaction is timed too), and on the 100
segments as filled. Ratios are to (1), and to (1) + (2): what a user does by hand (COPY to a
local file, then upload it), in the same run. Figures are printed as one table for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import duckdb

from app.domain.managed_datasets import ManagedDataset, Segment
from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.compactor import merge
from bench.pipeline import ROOT
from tests.integration.test_engine import COLUMNS, SEGMENT_SQL

RUN = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from app.catalog.loader import default_catalog
    from app.domain.managed_datasets import ManagedDataset
    from app.domain.model import WorkItem
    from app.engine.export import Limits
    from app.generator import Generator
    from app.engine.storage import S3ObjectStore
    from app.settings import Settings

    class Lookup:
        def __init__(self, entry): self.entry = entry
        def dataset(self, channel, code): return self.entry
        async def sync(self, seconds): return True

    async def main() -> None:
        settings = Settings()
        entry = ManagedDataset.from_record(json.loads(sys.argv[1]))
        fmt = sys.argv[2]
        async def emit(item, event): return None
        async with S3ObjectStore(settings) as store:
            gen = Generator(default_catalog(), store, emit, worker_id="bench",
                            spool_dir=settings.spool_dir, datasets=Lookup(entry),
                            limits=Limits(settings.export_memory_limit, settings.export_threads),
                            part_bytes=settings.s3_multipart_chunk_bytes)
            item = WorkItem(request_id="bench-" + sys.argv[3], attempt=1, tag="t",
                            dataset="table-export", channel=entry.channel, requested_by="b",
                            config=json.dumps({"source": entry.code}), submitted_at=1,
                            output={"format": fmt, "compression": "NONE",
                                    "rows_per_file": None, "partition_by": None})
            started = time.perf_counter()
            final = await gen.run(item)
            seconds = time.perf_counter() - started
        peak = next(int(l.split()[1]) // 1024 for l in open("/proc/self/status")
                    if l.startswith("VmHWM:"))
        print(json.dumps({"kind": final.kind, "rows": final.total_rows,
                          "bytes": final.total_bytes, "seconds": seconds, "peak_mib": peak,
                          "error": str(final.error)}))

    asyncio.run(main())
    """
)


def build_segments(folder: Path, rows: int, count: int) -> list[Path]:
    paths = []
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        step = rows // count
        for n in range(count):
            path = folder / f"s{n}.parquet"
            con.execute(f"COPY ({SEGMENT_SQL}) TO $path (FORMAT parquet, COMPRESSION zstd)",
                        {"start": n * step, "stop": (n + 1) * step, "path": str(path)})  # fmt: skip
            paths.append(path)
    return paths


def duckdb_copy(segments: list[Path], out: Path, fmt: str) -> float:
    files = "[" + ", ".join(f"'{p}'" for p in segments) + "]"
    options = "FORMAT csv, HEADER true" if fmt == "CSV" else "FORMAT parquet, COMPRESSION zstd"
    best = float("inf")
    for _ in range(2):
        with duckdb.connect(config={"threads": 2}) as con:
            started = time.perf_counter()
            con.execute(f"COPY (SELECT * FROM read_parquet({files})) TO '{out}' ({options})")
            best = min(best, time.perf_counter() - started)
    return best


async def upload_ceiling(settings: Settings, path: Path) -> float:
    best = float("inf")
    async with S3ObjectStore(settings) as store:
        for i in range(2):
            started = time.perf_counter()
            await store.upload_file(f"bench/ceiling-{i}-{path.name}", path)
            best = min(best, time.perf_counter() - started)
    return best


def exhaust_run(settings: Settings, entry: ManagedDataset, fmt: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **settings.as_env()}
    best: dict[str, float] = {}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", RUN, json.dumps(entry.to_record()), fmt, uuid.uuid4().hex],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["kind"] == "COMPLETED", result
        if not best or result["seconds"] < best["seconds"]:
            best = result
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--segments",
        type=int,
        default=100,
        help="segments of the dataset (100: filled in 100 chunks)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        folder = Path(tmp)
        spool = folder / "spool"
        spool.mkdir()
        settings = Settings(s3_bucket=f"bench-{uuid.uuid4().hex[:8]}", spool_dir=spool)
        segments = build_segments(folder, args.rows, args.segments)
        async with S3ObjectStore(settings) as store:
            await store.ensure_bucket()
            keys = []
            for n, path in enumerate(segments):
                keys.append(Segment(f"acme/datasets/bench/s{n}.parquet", args.rows // args.segments,
                                    path.stat().st_size, f"f{n}", 1))  # fmt: skip
                await store.upload_file(keys[-1].key, path)
            many = ManagedDataset("acme", "bench", 1, COLUMNS, tuple(keys), args.rows)
            # What the background compactor does once the fills are in (the same merge).
            started = time.perf_counter()
            merged = folder / "spool" / "compacted.parquet"
            paths = [folder / "spool" / f"fetched-{n}.parquet" for n in range(len(keys))]
            await asyncio.gather(
                *(store.download_file(k.key, p) for k, p in zip(keys, paths, strict=True))
            )
            merge(paths, merged, settings.export_memory_limit, settings.export_threads)
            await store.upload_file("acme/datasets/bench/compacted.parquet", merged)
            compaction_s = time.perf_counter() - started
        one = Segment("acme/datasets/bench/compacted.parquet", args.rows, merged.stat().st_size,
                      "c", 1)  # fmt: skip
        compacted = ManagedDataset("acme", "bench", 2, COLUMNS, (one,), args.rows)
        print(f"{args.rows:,} rows x {len(COLUMNS)} columns, {args.segments} segments "
              f"{sum(p.stat().st_size for p in segments) / 1e6:.0f} MB; compacted into one "
              f"in {compaction_s:.1f} s (in the background, once)")  # fmt: skip
        print(
            "| format | DuckDB COPY (local) | upload ceiling | Exhaust | vs COPY | "
            "vs COPY + PUT | peak RSS |"
        )
        print("|---|---|---|---|---|---|---|")
        one_put, in_parts = settings.s3_multipart_threshold_bytes, settings.s3_multipart_chunk_bytes
        for fmt, threshold, label, entry in (
            ("CSV", one_put, "CSV", compacted),
            ("CSV", in_parts, "CSV, multipart", compacted),
            ("PARQUET", one_put, "PARQUET", compacted),
            ("CSV", one_put, f"CSV, {args.segments} segments (not compacted)", many),
            ("PARQUET", one_put, f"PARQUET, {args.segments} segments (not compacted)", many),
        ):  # fmt: skip
            out = folder / f"copy.{fmt.lower()}"
            copy_s = duckdb_copy(segments, out, fmt)
            size = out.stat().st_size
            upload = settings.model_copy(update={"s3_multipart_threshold_bytes": threshold})
            ceiling_s = await upload_ceiling(upload, out)
            ours = exhaust_run(upload, entry, fmt)
            rate = args.rows / copy_s
            print(
                f"| {label} | {rate:,.0f} rows/s, {size / copy_s / 1e6:.0f} MB/s ({copy_s:.1f} s, "
                f"{size / 1e6:.0f} MB) | {size / ceiling_s / 1e6:.0f} MB/s ({ceiling_s:.1f} s) | "
                f"{args.rows / ours['seconds']:,.0f} rows/s, "
                f"{ours['bytes'] / ours['seconds'] / 1e6:.0f} MB/s ({ours['seconds']:.1f} s) | "
                f"{copy_s / ours['seconds']:.2f} | {(copy_s + ceiling_s) / ours['seconds']:.2f} | "
                f"{ours['peak_mib']:.0f} MiB |"
            )
            out.unlink()


if __name__ == "__main__":
    asyncio.run(main())
