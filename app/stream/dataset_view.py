"""The API's view of managed datasets: the catalog, and fills waiting to be applied.

A plain aiokafka consumer without a group reads every partition of the compacted
``exhaust.datasets`` from the beginning (the catalog is small: one entry per dataset), and of
``exhaust.fills`` from the fill writers' committed offsets (only fills not yet applied matter).
So every API worker answers for every dataset, and ``POST /dataset-fill`` can wait for its fill:

* :meth:`DatasetView.outcome` — a fill's recorded outcome, ``"PENDING"`` while its event is
  past its entry's ``fills_offset``, or None (unknown, or older than the kept history).
* :meth:`DatasetView.wait_for_fill` — until the fill's outcome is in its entry, or a timeout.
* :meth:`DatasetView.sync` — until the view has read both topics up to their ends as of the
  call: a read that follows a write (``POST`` answered 202, then ``GET`` the operation, perhaps
  on another worker) sees that write instead of a transient 404.

Memory: one decoded entry per dataset (bounded by ``dataset_max_segments`` and
``fill_history``) and one id per fill not yet applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from app.domain.errors import PoisonMessage
from app.domain.managed_datasets import FillRecord, ManagedDataset, dataset_key
from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.avro import registry
from app.stream.connection import client_options
from app.stream.topics import assign_all
from app.stream.work_queue import WorkQueueProbe

log = logging.getLogger("exhaust.datasets")

FILL_FIELDS = ("kind", "fill_id", "channel", "dataset_code")


class DatasetView(Service):
    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.schemas = registry()
        self.entries: dict[str, ManagedDataset] = {}
        self.pending: dict[str, tuple[str, int]] = {}  # fill_id -> (dataset key, offset)
        self._waiters: dict[str, list[asyncio.Future[FillRecord]]] = {}
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._parts: list[TopicPartition] = []
        self._progress = asyncio.Condition()

    # --- reads ----------------------------------------------------------------------------

    def datasets(self, channel: str) -> list[ManagedDataset]:
        """The channel's datasets that hold a version, by code."""
        return sorted(
            (e for e in self.entries.values() if e.channel == channel and e.version > 0),
            key=lambda e: e.code,
        )

    def channels_with(self, codes: list[str]) -> list[str]:
        """The channels that hold a version of every dataset in ``codes``."""
        holders = [
            {e.channel for e in self.entries.values() if e.code == code and e.version > 0}
            for code in codes
        ]
        return sorted(set.intersection(*holders)) if holders else []

    def dataset(self, channel: str, code: str) -> ManagedDataset | None:
        entry = self.entries.get(dataset_key(channel, code))
        return entry if entry is not None and entry.version > 0 else None

    def outcome(
        self, channel: str, code: str, fill_id: str
    ) -> FillRecord | Literal["PENDING"] | None:
        entry = self.entries.get(dataset_key(channel, code))
        record = entry.fill(fill_id) if entry is not None else None
        if record is not None:
            return record
        pending = self.pending.get(fill_id)
        return (
            "PENDING" if pending is not None and pending[0] == dataset_key(channel, code) else None
        )

    async def wait_for_fill(
        self, channel: str, code: str, fill_id: str, seconds: float
    ) -> FillRecord | None:
        """The fill's outcome once its entry records it; None after ``seconds``."""
        found = self.outcome(channel, code, fill_id)
        if isinstance(found, FillRecord):
            return found
        future: asyncio.Future[FillRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(fill_id, []).append(future)
        try:
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            return None
        finally:
            waiting = self._waiters.get(fill_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(fill_id, None)

    async def sync(self, seconds: float) -> bool:
        """Read both topics up to their current ends; False if that took over ``seconds``."""
        consumer, parts = self._consumer, self._parts
        if consumer is None or not parts:
            return False
        try:
            async with asyncio.timeout(seconds):
                targets = await consumer.end_offsets(parts)
                async with self._progress:
                    while not await self._reached(consumer, targets):
                        await self._progress.wait()
        except TimeoutError:
            return False
        return True

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
        for tp, end in targets.items():
            if await consumer.position(tp) < end:
                return False
        return True

    # --- feeding --------------------------------------------------------------------------

    def apply_entry(self, key: str, value: bytes | None, offset: int) -> None:
        if value is None:
            self.entries.pop(key, None)
            return
        try:
            entry = ManagedDataset.from_record(self.schemas.decode("ManagedDataset", value))
        except PoisonMessage:
            log.error("datasets record %s@%d is undecodable; skipped", key, offset)
            return
        self.entries[key] = entry
        for record in entry.fills:
            self.pending.pop(record.fill_id, None)
            for future in self._waiters.get(record.fill_id, []):
                if not future.done():
                    future.set_result(record)

    def apply_fill_event(self, key: str, value: bytes, offset: int) -> None:
        try:
            record = self.schemas.decode("DatasetFill", value, FILL_FIELDS)
        except PoisonMessage:
            return  # the writer dead-letters it
        if record["kind"] != "FILL":
            return
        entry = self.entries.get(key)
        if entry is None or offset > entry.fills_offset:
            self.pending[record["fill_id"]] = (key, offset)

    @Service.task
    async def _feed(self) -> None:
        datasets, fills = self.settings.topic("datasets"), self.settings.topic("fills")
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await aiokafka_compat.start(consumer)
        try:
            catalog = await assign_all(consumer, datasets)
            fill_parts = [TopicPartition(fills, p) for p in range(self.settings.topic_partitions)]
            consumer.assign(catalog + fill_parts)
            self._consumer, self._parts = consumer, catalog + fill_parts
            await consumer.seek_to_beginning(*catalog)
            await self._seek_to_writer(consumer, fill_parts)
            targets = await consumer.end_offsets(catalog)
            while not self.should_stop:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                catalog_changed = False
                for tp, messages in batch.items():
                    for m in messages:
                        key = m.key.decode() if m.key else ""
                        if tp.topic == datasets:
                            self.apply_entry(key, m.value, m.offset)
                            catalog_changed = True
                        elif m.value is not None:
                            self.apply_fill_event(key, m.value, m.offset)
                if not self.caught_up.is_set():
                    positions = [await consumer.position(tp) for tp in catalog]
                    if all(p >= targets[tp] for p, tp in zip(positions, catalog, strict=True)):
                        self.caught_up.set()
                        log.info("dataset catalog caught up: %d datasets", len(self.entries))
                if catalog_changed:  # only a new entry can move past a pending fill
                    self._prune()
                async with self._progress:
                    self._progress.notify_all()
        finally:
            self._consumer = None
            await consumer.stop()

    async def _seek_to_writer(self, consumer: Any, parts: list[TopicPartition]) -> None:
        """Start the fills at the writers' committed offsets: what is before them is applied."""
        probe = WorkQueueProbe(self.settings)
        await probe.start()
        deadline = time.monotonic() + 60
        try:
            while True:
                try:
                    committed, _ = await probe.group_offsets(
                        self.settings.consumer_group, [parts[0].topic], len(parts)
                    )
                    break
                except KafkaError as exc:  # a new cluster creates its offsets topic first
                    if not exc.retriable or time.monotonic() > deadline:
                        raise
                    log.info("the fill writers' offsets are not readable yet: %r", exc)
                    await asyncio.sleep(0.5)
        finally:
            await probe.stop()
        for tp in parts:
            offset = committed.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    def _prune(self) -> None:
        """Forget pending fills their entry has moved past (a redelivered or lost outcome)."""
        done = [
            fill_id
            for fill_id, (key, offset) in self.pending.items()
            if (entry := self.entries.get(key)) is not None and offset <= entry.fills_offset
        ]
        for fill_id in done:
            del self.pending[fill_id]


__all__ = ["DatasetView"]
