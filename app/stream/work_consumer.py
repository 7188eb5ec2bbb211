"""The generator side: consumes ``exhaust.work`` outside Faust, with in-order commits.

Why not a Faust agent: a generation holds its work item for seconds to an hour. Inside Faust
that stalls rebalances (Faust waits for in-flight events before revoking partitions) and
``concurrency > 1`` can commit past unfinished messages. Here a plain aiokafka consumer in its
own group (``{consumer_group}.generators``) does exactly what we need:

* up to ``generator_concurrency`` items run at once, and up to ``generator_prefetch`` more wait
  decoded in memory: when an item finishes, the next one starts at once, with no round trip to
  the broker (fetching one batch per free slot left the generators idle ~90 % of the time
  while a backlog waited). When the prefetch is full, the assigned partitions are *paused* but
  still polled, so the consumer keeps its group membership however long a generation takes;
* an offset is committed only when every item before it in its partition has finished
  (in-order commit), so a crash or ``kill -9`` replays precisely the unfinished items, which
  rerun their attempt into the same object keys;
* on revocation, finished offsets of the revoked partitions are committed and their prefetched
  items dropped (the new owner replays them); items still running finish on their own and
  their reports are fenced by attempt if the job has moved on;
* a *discard* (a work record with :data:`~app.stream.work_queue.DISCARD_HEADER`) names an
  attempt that reported its end too late to count: a copy of it running here is stopped and
  the attempt's objects are deleted before its offset is done;
* on stop, fetching stops, prefetched items are dropped, running generations are told to stop
  (they end at their next progress report and report a retryable failure), and finished
  offsets are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from app import logs, tracing
from app.domain.errors import PoisonMessage
from app.domain.model import WorkItem
from app.generator import Generator, Stop
from app.metrics import Metrics
from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.avro import registry
from app.stream.connection import client_options
from app.stream.work_queue import DISCARD_HEADER, STOP_HEADER

log = logging.getLogger("exhaust.work")

# How long a stopping generator lets its running generations finish before it commits what
# finished and leaves (an orchestrator's termination grace period must be longer).
DRAIN_SECONDS = 30.0

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
        self.owner.drop_waiting(set(revoked))

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
        self.prefetch = settings.generator_prefetch
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self.to_commit: dict[TopicPartition, int] = {}
        self.running: set[asyncio.Task[None]] = set()
        self.stops: dict[tuple[str, int], Stop] = {}  # the running attempts, by (job key, attempt)
        self.discarding: set[asyncio.Task[None]] = set()  # dead attempts' objects being deleted
        self.waiting: deque[tuple[TopicPartition, int, WorkItem]] = deque()
        self.room = asyncio.Event()  # set when a prefetched item started (there is room again)
        self.consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=f"{self.settings.consumer_group}.generators",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.settings.consumer_session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(self.settings.consumer_session_timeout_seconds * 100),
        )
        await aiokafka_compat.start(self.consumer)
        self.consumer.subscribe([self.settings.topic("work")], listener=_Rebalance(self))

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        while not self.should_stop:
            # Discards in flight take room too: they are bounded like the prefetch.
            room = self.prefetch - len(self.waiting) - len(self.discarding)
            assigned = consumer.assignment()
            if room <= 0:
                consumer.pause(*assigned)
                self.room.clear()
                with contextlib.suppress(TimeoutError):
                    # A poll at least every second keeps the group membership.
                    await asyncio.wait_for(self.room.wait(), timeout=1.0)
                await consumer.getmany(timeout_ms=0)
            else:
                consumer.resume(*assigned)
                batch = await consumer.getmany(timeout_ms=200, max_records=room)
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
        headers = message.headers or ()
        if STOP_HEADER in headers:
            self.stop_attempt(item)
            self.metrics.count("work_items_stopped")
            self._finished(tp, message.offset)
            return
        if DISCARD_HEADER in headers:
            self.stop_attempt(item)  # a copy of the dead attempt may still run here
            task = asyncio.create_task(self._discard(tp, message.offset, item))
            self.discarding.add(task)
            task.add_done_callback(self._discarded)
            return
        self.waiting.append((tp, message.offset, item))
        self._start_waiting()

    def stop_attempt(self, item: WorkItem) -> None:
        """A cancelled job's attempt: forgotten if it waits here (its offset is done), stopped
        if it runs (:class:`~app.generator.Stop`). It arrives after its work item on the same
        partition, so an attempt this worker never took is not here to stop."""
        target = (item.key, item.attempt)
        for waiting in [w for w in self.waiting if (w[2].key, w[2].attempt) == target]:
            self.waiting.remove(waiting)
            self._finished(waiting[0], waiting[1])
            log.info("%s attempt %d cancelled before it started", item.request_id, item.attempt)
        running = self.stops.get(target)
        if running is not None:
            log.info("%s attempt %d cancelled: stopping it", item.request_id, item.attempt)
            running.set()

    def _start_waiting(self) -> None:
        """Start prefetched items while there are free slots (no await: called from a task's
        completion too)."""
        started = False
        while self.waiting and len(self.running) < self.limit and not self.should_stop:
            tp, offset, item = self.waiting.popleft()
            task = asyncio.create_task(self._run(tp, offset, item))
            self.running.add(task)
            task.add_done_callback(self._done)
            started = True
        if started:
            self.room.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self._start_waiting()

    def drop_waiting(self, partitions: set[TopicPartition] | None = None) -> None:
        """Forget prefetched items (of ``partitions``, or all): never started, never committed,
        so whoever owns their partition next runs them."""
        kept = [w for w in self.waiting if partitions is not None and w[0] not in partitions]
        self.waiting = deque(kept)
        self.room.set()

    async def _run(self, tp: TopicPartition, offset: int, item: WorkItem) -> None:
        stop = self.stops[(item.key, item.attempt)] = Stop()
        try:
            with (
                tracing.continued(
                    f"exhaust.generate {item.dataset}", item.trace_parent,
                    **{"exhaust.request_id": item.request_id, "exhaust.attempt": item.attempt,
                       "exhaust.channel": item.channel},
                ),
                logs.job_context(item.request_id, item.tag, item.channel, item.attempt),
            ):  # fmt: skip
                await self.generator.run(item, stop)
        finally:
            self.stops.pop((item.key, item.attempt), None)
            self._finished(tp, offset)

    def _discarded(self, task: asyncio.Task[None]) -> None:
        self.discarding.discard(task)
        self.room.set()  # a fetch paused on a full prefetch may go on

    async def _discard(self, tp: TopicPartition, offset: int, item: WorkItem) -> None:
        """Delete a dead attempt's objects; its offset is done once they are gone (a crash
        before that deletes them again: a discard is idempotent). Not a generation: it takes
        no generation slot, and it is short (a listing and the deletes), but it holds a place of
        the prefetch while it runs, so a burst of them cannot grow without bound."""
        with logs.job_context(item.request_id, item.tag, item.channel, item.attempt):
            try:
                await self.generator.discard(item)
                self.metrics.count("attempts_discarded")
            except Exception:  # a bug must not hold the partition's commits for ever
                log.exception("discarding %s attempt %d failed", item.request_id, item.attempt)
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
        self.drop_waiting()
        self.generator.stopping.set()
        if self.running or self.discarding:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self.running, *self.discarding, return_exceptions=True),
                    timeout=DRAIN_SECONDS,
                )
        await self.commit_finished()
        if self.consumer is not None:
            await self.consumer.stop()
