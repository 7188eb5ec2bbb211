"""The generator side: consumes ``exhaust.work`` outside Faust, with in-order commits.

Why not a Faust agent: a generation holds its work item for seconds to an hour. Inside Faust
that stalls rebalances (Faust waits for in-flight events before revoking partitions) and
``concurrency > 1`` can commit past unfinished messages. Here a plain aiokafka consumer in its
own group (``{consumer_group}.generators``) does exactly what we need:

* up to ``generator_concurrency`` items run at once; when full, the assigned partitions are
  *paused* but still polled, so the consumer keeps its group membership however long a
  generation takes;
* an offset is committed only when every item before it in its partition has finished
  (in-order commit), so a crash or ``kill -9`` replays precisely the unfinished items, which
  rerun their attempt into the same object keys;
* on revocation, finished offsets of the revoked partitions are committed; items still running
  finish on their own and their reports are fenced by attempt if the job has moved on;
* on stop, fetching stops, running generations are told to stop (they end at their next
  progress report and report a retryable failure), and finished offsets are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from app.domain.errors import PoisonMessage
from app.domain.model import WorkItem
from app.generator import Generator
from app.metrics import Metrics
from app.settings import Settings
from app.stream.avro import registry

log = logging.getLogger("exhaust.work")

DeadLetter = Callable[[Any, PoisonMessage], Awaitable[None]]


@dataclass
class PartitionProgress:
    """Offsets taken from one partition, in order, and which of them are finished."""

    pending: dict[int, bool] = field(default_factory=dict)  # offset -> finished

    def take(self, offset: int) -> None:
        self.pending[offset] = False

    def finish(self, offset: int) -> int | None:
        """Mark ``offset`` finished; return the next offset to commit if it advanced."""
        self.pending[offset] = True
        commit = None
        for taken in sorted(self.pending):
            if not self.pending[taken]:
                break
            del self.pending[taken]
            commit = taken + 1
        return commit


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: WorkConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.commit_finished()
        for tp in revoked:
            self.owner.progress.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class WorkConsumer(Service):
    def __init__(
        self, settings: Settings, generator: Generator, dead_letter: DeadLetter, metrics: Metrics
    ) -> None:
        super().__init__()
        self.metrics = metrics
        self.settings = settings
        self.generator = generator
        self.dead_letter = dead_letter
        self.limit = settings.generator_concurrency
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self.to_commit: dict[TopicPartition, int] = {}
        self.running: set[asyncio.Task[None]] = set()
        self.consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.consumer_group}.generators",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.settings.consumer_session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(self.settings.consumer_session_timeout_seconds * 100),
        )
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topic("work")], listener=_Rebalance(self))

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        while not self.should_stop:
            full = len(self.running) >= self.limit
            assigned = consumer.assignment()
            if full:
                consumer.pause(*assigned)
            else:
                consumer.resume(*assigned)
            batch = await consumer.getmany(
                timeout_ms=200, max_records=max(1, self.limit - len(self.running))
            )
            for tp, messages in batch.items():
                for message in messages:
                    await self._take(tp, message)
            await self.commit_finished()

    async def _take(self, tp: TopicPartition, message: Any) -> None:
        self.metrics.count("work_items_received")
        progress = self.progress.setdefault(tp, PartitionProgress())
        progress.take(message.offset)
        try:
            item = WorkItem.from_record(registry().decode("WorkItem", message.value or b""))
        except PoisonMessage as exc:
            await self.dead_letter(message, exc)
            self._finished(tp, message.offset)
            return
        task = asyncio.create_task(self._run(tp, message.offset, item))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _run(self, tp: TopicPartition, offset: int, item: WorkItem) -> None:
        try:
            await self.generator.run(item)
        finally:
            self._finished(tp, offset)

    def _finished(self, tp: TopicPartition, offset: int) -> None:
        progress = self.progress.get(tp)
        if progress is None:
            return  # revoked meanwhile: the new owner replays it
        commit = progress.finish(offset)
        if commit is not None:
            self.to_commit[tp] = commit

    async def commit_finished(self) -> None:
        if not self.to_commit or self.consumer is None:
            return
        offsets = {tp: OffsetAndMetadata(o, "") for tp, o in self.to_commit.items()}
        self.to_commit = {}
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # a rebalance in progress: the items are replayed, harmlessly
            log.warning("could not commit work offsets (%r); they will be replayed", exc)

    async def on_stop(self) -> None:
        self.generator.stopping.set()
        if self.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self.running, return_exceptions=True), timeout=30
                )
        await self.commit_finished()
        if self.consumer is not None:
            await self.consumer.stop()
