"""What the writer knows of the generators' queue: is a job's work item still waiting in it?

A SUBMITTED job past its dispatch deadline is either *queued* (its work item sits in
``exhaust.work`` behind busy generators: sending it again would only double the backlog) or
*lost* (the worker died between the table write and the work send, or the item was consumed
and dropped). The writer tells them apart from two facts:

* the offset its own send of the work item got (:class:`Dispatches`, in memory; unknown after a
  restart or a rebalance), and
* a periodic snapshot of the generators' group on ``exhaust.work``: committed offset and log end
  offset per partition (:class:`WorkQueueProbe`). The generators commit in order, and only past
  finished items.

:func:`work_waiting` is the pure rule: known offset → waiting while the generators have not
committed past it; unknown offset → waiting while the job's work partition has any backlog.
No snapshot, or a stale one → not waiting (re-dispatch: duplicates are harmless, fenced by
attempt, and only this rare case costs one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.aiokafka_compat import partitions_of
from app.stream.connection import client_options

log = logging.getLogger("exhaust.work_queue")


# The header of a work record that stops its attempt instead of running it: the writer sends
# one, with the job's key, when a dispatched job is cancelled (it lands after the work item).
STOP_HEADER = ("exhaust-stop", b"1")
# The header of a work record that deletes its attempt's objects: the writer sends one when a
# generator reports the end of an attempt that can never be its job's result (superseded, or
# of a job that ended without it), so what the attempt uploaded late is not left behind.
DISCARD_HEADER = ("exhaust-discard", b"1")


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The generators' group on the work topic at one moment."""

    taken_at: int  # epoch ms
    committed: Mapping[int, int]  # partition -> committed offset (absent: nothing committed)
    end: Mapping[int, int]  # partition -> log end offset

    def lag(self) -> int:
        return sum(max(0, end - self.committed.get(p, 0)) for p, end in self.end.items())


def work_partition(request_id: str, partitions: int) -> int:
    """The work-topic partition of a job: aiokafka's default partitioner on the key."""
    hashed: int = murmur2(request_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def work_waiting(
    snapshot: QueueSnapshot | None,
    partition: int,
    dispatched_offset: int | None,
    *,
    now: int,
    max_age_ms: int,
) -> bool:
    """True when the work item may still be queued behind busy generators."""
    if snapshot is None or now - snapshot.taken_at > max_age_ms:
        return False
    committed = snapshot.committed.get(partition, 0)
    if dispatched_offset is not None:
        return committed <= dispatched_offset
    return committed < snapshot.end.get(partition, 0)


class Dispatches:
    """Offsets that this writer's work-item sends got, per job (bounded by SUBMITTED jobs)."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.limit = limit
        self._offsets: dict[str, tuple[int, int, int]] = {}  # id -> (attempt, partition, offset)

    def sent(self, request_id: str, attempt: int, partition: int, offset: int) -> None:
        self._offsets.pop(request_id, None)
        self._offsets[request_id] = (attempt, partition, offset)
        if len(self._offsets) > self.limit:  # forget the oldest: it falls back to the lag rule
            del self._offsets[next(iter(self._offsets))]

    def offset(self, request_id: str, attempt: int, partition: int) -> int | None:
        known = self._offsets.get(request_id)
        if known is None or known[0] != attempt or known[1] != partition:
            return None
        return known[2]

    def forget(self, request_id: str) -> None:
        self._offsets.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._offsets)


class WorkQueueProbe:
    """Reads the generators' committed offsets and the work topic's end offsets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.group = generator_group(settings)
        self.topic = settings.topic("work")
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    @property
    def started(self) -> bool:
        return self._consumer is not None

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(**client_options(self.settings))
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
        await aiokafka_compat.start(self._consumer)
        # Only offsets are read: an assigned consumer would fetch (and buffer) every work item.
        self._partitions = await partitions_of(self._consumer, self.topic)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def group_offsets(
        self, group: str, topics: list[str], partitions: int
    ) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        """Committed offsets of ``group`` and log end offsets, by (topic, partition)."""
        assert self._admin is not None and self._consumer is not None
        offsets: dict[Any, Any] = await self._admin.list_consumer_group_offsets(group)
        committed = {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if tp.topic in topics and meta.offset >= 0
        }
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        ends = await self._consumer.end_offsets(tps)
        return committed, {(tp.topic, tp.partition): o for tp, o in ends.items()}

    async def snapshot(self, now: int) -> QueueSnapshot:
        """The generators' group on the work topic."""
        committed, ends = await self.group_offsets(self.group, [self.topic], len(self._partitions))
        return QueueSnapshot(
            now, {p: o for (_, p), o in committed.items()}, {p: o for (_, p), o in ends.items()}
        )


def generator_group(settings: Settings) -> str:
    """Consumer group of the generators on the work topic."""
    return f"{settings.consumer_group}.generators"
