"""Faust at the edge, for managed datasets: the one writer of each dataset's catalog entry.

``exhaust.fills`` (key ``{channel}/{code}``) and the compacted ``exhaust.datasets`` (same key)
are co-partitioned: the agent that owns a fills partition owns the entries of its datasets,
applies their fills in the order they were written (:func:`app.domain.managed_datasets.apply_fill`),
and writes each outcome as one table write, whose changelog is ``exhaust.datasets``. The commit
guard of :mod:`app.stream.effects` holds the fill's offset until that write is delivered, so a
worker
killed mid-fill leaves the whole fill (entry written) or none of it (event replayed; a
replayed event at or before the entry's ``fills_offset`` changes nothing).

A small fill carries its segment inline; the writer stores it under the segment's key before
the table write (same key on a replay). A timer sends a SWEEP into each fills partition it owns;
inside that event the writer deletes segments retired longer than the grace period, then
writes the entry without them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from app.domain.errors import ExhaustError
from app.domain.managed_datasets import (
    DatasetPolicy,
    Fill,
    ManagedDataset,
    apply_fill,
    due_for_deletion,
)
from app.engine.storage import ObjectStore, S3ObjectStore
from app.metrics import Metrics
from app.settings import Settings
from app.stream import faust_compat
from app.stream.agents import AvroRecordCodec
from app.stream.avro import registry
from app.stream.work_queue import work_partition

log = logging.getLogger("exhaust.fills")

DATASET_CODEC = "exhaust-manageddataset"
SWEEP_KEY = b"__sweep__"


def policy_from(settings: Settings) -> DatasetPolicy:
    return DatasetPolicy(
        history=settings.fill_history,
        max_segments=settings.dataset_max_segments,
        max_columns=settings.dataset_max_columns,
        grace_ms=int(settings.dataset_grace_seconds * 1000),
    )


class FillWriter:
    """Declares the fills topic, the datasets table, the agent and the sweep timer.

    ``pipeline`` is the job writer (:class:`app.stream.agents.Pipeline`): the two share Faust's
    producer, and so its commit guard and dead-letter path.
    """

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics, pipeline: Any) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.pipeline = pipeline
        self.policy = policy_from(settings)
        self.schemas = registry()
        self._store: S3ObjectStore | None = None
        faust_compat.register_codec(
            DATASET_CODEC,
            AvroRecordCodec(self.schemas, "ManagedDataset", ManagedDataset.from_record),
        )

        n = settings.topic_partitions
        self.fills = app.topic(
            settings.topic("fills"), key_serializer="raw", value_serializer="raw", partitions=n
        )
        changelog = app.topic(
            settings.topic("datasets"),
            key_serializer="raw",
            value_serializer=DATASET_CODEC,
            partitions=n,
            compacting=True,
            internal=True,
        )
        table: Any = app.Table(
            "datasets",
            partitions=n,
            changelog_topic=changelog,
            options={"driver": "rocksdict", "block_cache_size": 8 * 1024 * 1024},
        )
        table.key_serializer = "raw"
        table.value_serializer = DATASET_CODEC
        self.table: Any = table
        app.agent(self.fills, name="exhaust.fills")(self._agent)
        app.timer(settings.dataset_sweep_seconds)(self._send_sweeps)

    async def store(self) -> ObjectStore:
        """The object store, opened on first use (most fills never need it here)."""
        if self._store is None:
            store = S3ObjectStore(self.settings)
            await store.__aenter__()
            self._store = store
        return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.__aexit__(None, None, None)
            self._store = None

    async def _agent(self, stream: Any) -> None:
        await self.pipeline.guard()
        async for event in stream.events():
            record = await self.pipeline.decode_or_dead_letter("DatasetFill", event.message)
            if record is None:
                continue
            fill = Fill.from_record(record)
            if fill.kind == "SWEEP":
                await self._sweep(event.message.partition)
            else:
                await self._apply(fill, event.message.offset)

    async def _apply(self, fill: Fill, offset: int) -> None:
        key = fill.key.encode()
        now = int(time.time() * 1000)
        outcome = apply_fill(self.table.get(key), fill, offset, now, self.policy)
        self.metrics.fills.labels(outcome.counter).inc()
        if outcome.entry is None:
            return
        if outcome.counter == "fill_applied" and fill.data is not None:
            # Retried until it works: the fill's offset must not move past an unstored segment.
            await self._put_inline(fill)
        self.table[key] = outcome.entry
        self.pipeline.ledger.table_write()
        if outcome.record is not None:
            self.metrics.fill_rows.inc(outcome.record.rows)
            log.info(
                "fill %s of %s: %s, %d rows, version %d%s",
                fill.fill_id, fill.key, outcome.record.status, outcome.record.rows,
                outcome.record.version,
                f" ({outcome.record.error_code})" if outcome.record.error_code else "",
            )  # fmt: skip

    async def _put_inline(self, fill: Fill) -> None:
        assert fill.data is not None
        delay = 0.5
        while True:
            try:
                await (await self.store()).put_bytes(fill.segment_key, fill.data)
                return
            except ExhaustError as exc:
                log.warning("storing the segment of fill %s: %s", fill.fill_id, exc.message)
            except Exception as exc:  # connection errors while object storage restarts
                log.warning("storing the segment of fill %s: %r", fill.fill_id, exc)
            await self.app.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _sweep(self, partition: int) -> None:
        """Delete segments past their grace, for the datasets of ``partition``."""
        now = int(time.time() * 1000)
        n = self.settings.topic_partitions
        due = [
            (key, entry)
            for key, entry in list(self.table.items())
            if entry.retired and work_partition(key.decode(), n) == partition
        ]
        for key, entry in due:
            updated, keys = due_for_deletion(entry, now, self.policy)
            if updated is None:
                continue
            try:
                if keys:
                    await (await self.store()).delete_keys(keys)
            except Exception as exc:  # the next sweep tries again
                log.warning(
                    "sweep of %s: cannot delete %d segments: %r", key.decode(), len(keys), exc
                )
                continue
            # No other write of this key can have happened meanwhile: they are all this
            # agent's, and it is here.
            self.table[key] = updated
            self.pipeline.ledger.table_write()
            self.metrics.segments_deleted.inc(len(keys))
            log.info("sweep of %s: deleted %d retired segments", key.decode(), len(keys))

    async def _send_sweeps(self) -> None:
        value = self.schemas.encode("DatasetFill", Fill.sweep(int(time.time() * 1000)).to_record())
        for tp in self.app.consumer.assignment():
            if tp.topic == self.fills.get_topic_name():
                await self.fills.send(key=SWEEP_KEY, value=value, partition=tp.partition)


__all__ = ["DATASET_CODEC", "FillWriter"]
