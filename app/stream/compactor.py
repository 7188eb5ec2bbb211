"""Background compaction of managed datasets: a dataset filled in many small chunks holds one
segment per chunk, and every export of it fetches and opens each of them (100 segments of a
10M-row dataset made a Parquet export 0.35x of DuckDB's COPY plus a PUT). Every
``compact_interval_seconds`` the compactor (in each worker that serves the API) picks, per
dataset, the longest run of small consecutive segments (:func:`compaction_run`) once a version
holds ``compact_min_segments``, merges them in DuckDB into one segment (rows in their order),
stores it under the dataset's segment prefix and publishes a COMPACT event.

The dataset's one writer applies it only while the version still holds exactly that run
(:func:`app.domain.managed_datasets.apply_compaction`): a truncate or append in between, or
another worker's compaction of the same run, leaves the dataset as it was and retires the
unused segment. The replaced segments are retired, not deleted, so a job that listed them
reads them until the grace period ends and the sweep deletes them. Rows, columns and the
dataset's answers never change; its version does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from mode import Service

from app.clock import now_ms
from app.domain.errors import ExhaustError
from app.domain.managed_datasets import (
    Fill,
    ManagedDataset,
    Segment,
    compaction_run,
    segment_prefix,
)
from app.engine import duck
from app.engine.storage import ObjectStore
from app.metrics import Metrics
from app.settings import Settings
from app.stream.dataset_view import DatasetView

log = logging.getLogger("exhaust.compactor")
FETCHES_AT_ONCE = 16


def merge(paths: list[Path], out: Path, memory_limit: str, threads: int) -> None:
    """Blocking: the segments' rows, in order, as one zstd Parquet segment (a confined
    DuckDB, as every query of the service)."""
    with duck.connect(out.parent, {"memory_limit": memory_limit, "threads": threads}) as con:
        con.execute(
            "COPY (SELECT * FROM read_parquet($paths)) TO $out (FORMAT parquet, COMPRESSION zstd)",
            {"paths": [str(p) for p in paths], "out": str(out)},
        )


class Compactor(Service):
    def __init__(
        self,
        settings: Settings,
        datasets: DatasetView,
        store: ObjectStore,
        publish: Callable[[Fill], Awaitable[None]],
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.datasets = datasets
        self.store = store
        self.publish = publish
        self.metrics = metrics

    @Service.task
    async def _compact_forever(self) -> None:
        await self.datasets.caught_up.wait()
        interval = self.settings.compact_interval_seconds
        while not self.should_stop:
            await self.sleep(interval * random.uniform(0.5, 1.0))  # workers drift apart
            try:
                await self.round()
            except Exception:  # a round that fails is tried again the next one
                log.exception("compaction round failed")

    async def round(self) -> int:
        """Compact one run of every dataset that has one; the number compacted."""
        done = 0
        entries = list(self.datasets.entries.values())
        random.shuffle(entries)
        for entry in entries:
            run = compaction_run(entry, self.settings.compact_min_segments,
                                 self.settings.compact_target_bytes)  # fmt: skip
            if run:
                await self.compact(entry, run)
                done += 1
        return done

    async def compact(self, entry: ManagedDataset, run: tuple[Segment, ...]) -> Fill:
        """Merge ``run`` into one stored segment and publish its COMPACT event."""
        started = time.monotonic()
        fill_id = uuid.uuid4().hex
        key = f"{segment_prefix(entry.channel, entry.code)}compact-{fill_id}.parquet"
        with tempfile.TemporaryDirectory(prefix="exhaust-compact-",
                                         dir=self.settings.spool_dir) as spool:  # fmt: skip
            folder = Path(spool)
            slots = asyncio.Semaphore(FETCHES_AT_ONCE)

            async def fetch(i: int, segment: Segment) -> Path:
                path = folder / f"{i:06d}.parquet"
                async with slots:
                    await self.store.download_file(segment.key, path)
                return path

            paths = list(await asyncio.gather(*(fetch(i, s) for i, s in enumerate(run))))
            out = folder / "compacted.parquet"
            await asyncio.to_thread(merge, paths, out, self.settings.export_memory_limit,
                                    self.settings.export_threads)  # fmt: skip
            sent = await self.store.upload_file(key, out)
        fill = Fill(
            kind="COMPACT", fill_id=fill_id, channel=entry.channel, dataset_code=entry.code,
            user_code="exhaust-compactor", mode="APPEND", columns=entry.columns,
            rows=sum(s.rows for s in run), bytes=sent.bytes, segment_key=key,
            requested_at=now_ms(), replaces=tuple(s.key for s in run),
        )  # fmt: skip
        try:
            await self.publish(fill)
        except ExhaustError:
            await self.store.delete_keys([key])  # never referenced: not left behind
            raise
        if self.metrics is not None:
            self.metrics.fills.labels("compaction_sent").inc()
        log.info("compacting %d segments of %s/%s (%d rows) into one, in %.1fs", len(run),
                 entry.channel, entry.code, fill.rows, time.monotonic() - started)  # fmt: skip
        return fill
