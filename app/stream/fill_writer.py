"""Faust at the edge, for managed datasets: the one writer of each dataset's catalog entry.

``exhaust.fills`` (key ``{channel}/{code}``) and the compacted ``exhaust.datasets`` (same key) are
co-partitioned: the agent that owns a fills partition owns the entries of its datasets, applies
their fills in the order they were written (the decisions are
:class:`~app.stream.dataset_writer.DatasetWriter`'s), and writes each outcome as one table write,
whose changelog is ``exhaust.datasets``. The commit guard of :mod:`app.stream.effects` holds the
fill's offset until that write is delivered, so a worker killed mid-fill leaves the whole fill
(entry written) or none of it (event replayed; a replayed event at or before the entry's
``fills_offset`` changes nothing).

A small fill carries its segment inline; the writer stores it under the segment's key before
the table write (same key on a replay). A timer sends a SWEEP into each fills partition it owns;
inside that event the writer deletes segments retired longer than the grace period, then
writes the entry without them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import faust

from app.clock import Clock, now_ms
from app.domain.errors import ExhaustError
from app.domain.managed_datasets import (
    Fill,
    ManagedDataset,
)
from app.engine.storage import ObjectStore, S3ObjectStore
from app.metrics import Metrics
from app.settings import Settings
from app.stream import faust_compat
from app.stream.agents import AvroRecordCodec, send_to_owned_partitions, table_options
from app.stream.avro import registry
from app.stream.dataset_writer import DatasetWriter, FillEffects, FillInput
from app.stream.work_queue import work_partition

log = logging.getLogger("exhaust.fills")

DATASET_CODEC = "exhaust-manageddataset"
SWEEP_KEY = b"__sweep__"


class FillWriter:
    """The fill writer's Faust edge: declares the fills topic, the datasets table, the agent and
    the sweep timer; feeds batches of fills to :class:`DatasetWriter` and performs its effects.

    ``pipeline`` is the job writer (:class:`app.stream.agents.Pipeline`): the two share Faust's
    producer, and so its commit guard, its batching and its dead-letter path.
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        metrics: Metrics,
        pipeline: Any,
        clock: Clock = now_ms,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.pipeline = pipeline
        self.clock = clock
        self.writer = DatasetWriter(settings.dataset_policy(), clock)
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
            acks=False,  # a changelog, not a source: as Faust's own (see faust_compat)
        )
        table: Any = app.Table(
            "datasets",
            partitions=n,
            changelog_topic=changelog,
            options=table_options(settings, 8 * 1024 * 1024),
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

    def read(self, key: str, source: object) -> ManagedDataset | None:
        """A dataset's entry, read in the store of ``source``'s partition. Faust's RocksDB store
        reads the partition of the *current* event, which during a batch's decisions is the
        batch's last one (a SWEEP of another partition, say): read there, an append found no
        entry and started the dataset afresh, dropping its earlier rows (an integration test
        read back 6 of 10 streamed rows)."""
        entry: ManagedDataset | None = faust_compat.read_for(self.table, key.encode(), source)
        return entry

    async def _agent(self, stream: Any) -> None:
        await self.pipeline.batches("fills", stream, self.on_fills)

    async def on_fills(self, events: Sequence[Any]) -> None:
        """One batch of the fills topic: fills decided together, each SWEEP on its own."""
        batch: list[FillInput] = []
        for event in events:
            record = await self.pipeline.decode_or_dead_letter("DatasetFill", event.message)
            if record is None:
                continue
            fill = Fill.from_record(record)
            if fill.kind == "SWEEP":
                await self.perform(self.writer.decide(batch, self.read))
                batch = []
                await self._sweep(event)
            else:
                batch.append(FillInput(fill, event.message.offset, event))
        await self.perform(self.writer.decide(batch, self.read))

    async def perform(self, effects: FillEffects) -> None:
        """Store the batch's inline segments, then write its entries (each for its event)."""
        for counter in effects.counters:
            self.metrics.fills.labels(counter).inc()
        for key, data in effects.segments:
            # Retried until it works: the fill's offset must not move past an unstored segment.
            await self._put_inline(key, data)
        for key, entry, source in effects.writes:
            with faust_compat.acting_for(source):
                self.table[key.encode()] = entry
            self.pipeline.ledger.table_write()
        for fill, record in effects.applied:
            self.metrics.fill_rows.inc(record.rows)
            log.info(
                "fill %s of %s: %s, %d rows, version %d%s",
                fill.fill_id, fill.key, record.status, record.rows, record.version,
                f" ({record.error_code})" if record.error_code else "",
            )  # fmt: skip

    async def _put_inline(self, key: str, data: bytes) -> None:
        delay = 0.5
        while True:
            try:
                await (await self.store()).put_bytes(key, data)
                return
            except ExhaustError as exc:
                log.warning("storing the segment %s: %s", key, exc.message)
            except Exception as exc:  # connection errors while object storage restarts
                log.warning("storing the segment %s: %r", key, exc)
            await self.app.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _sweep(self, event: Any) -> None:
        """Delete segments past their grace, for the datasets of the SWEEP's partition."""
        partition = event.message.partition
        n = self.settings.topic_partitions
        mine = [
            (key.decode(), entry)
            for key, entry in list(self.table.items())
            if work_partition(key.decode(), n) == partition
        ]
        for due in self.writer.sweep(mine):
            try:
                if due.keys:
                    await (await self.store()).delete_keys(due.keys)
            except Exception as exc:  # the next sweep tries again
                log.warning("sweep of %s: cannot delete %d segments: %r", due.key,
                            len(due.keys), exc)  # fmt: skip
                continue
            # No other write of this key can have happened meanwhile: they are all this
            # agent's, and it is here.
            with faust_compat.acting_for(event):
                self.table[due.key.encode()] = due.entry
            self.pipeline.ledger.table_write()
            self.metrics.segments_deleted.inc(len(due.keys))
            log.info("sweep of %s: deleted %d retired segments", due.key, len(due.keys))

    async def _send_sweeps(self) -> None:
        value = self.schemas.encode("DatasetFill", Fill.sweep(self.clock()).to_record())
        await send_to_owned_partitions(self.app, self.fills, SWEEP_KEY, value)


__all__ = ["DATASET_CODEC", "FillWriter"]
