"""Faust at the edge: topics, the jobs table and the agents that feed the plain domain logic.

Delivery contract (see docs/architecture.md):

* **requests** (key = tag) and **job-events** (key = tag) are co-partitioned; their agents are the
  single writer of the ``jobs`` table for the partition. Each event is decoded, handed to
  :mod:`app.domain.state_machine`, and its outcome applied: the table write goes to the compacted
  changelog ``exhaust.jobs`` (Avro ``JobStatus``, key = :func:`~app.domain.model.job_key`, the
  channel and the request id: ids are per channel), work items and dead letters
  are handed to the producer, and the agent moves on without awaiting each delivery. A source
  offset is still committed only after its effects are durable: Faust flushes the producer
  before every commit, and :mod:`app.stream.effects` makes that flush wait for the table writes and
  refuse (stop the worker) if any delivery failed. A crash replays the events after the last
  commit; replays are idempotent (the same job id, attempt and object keys).
* **work** (key = the job key) is *not* consumed here but by :mod:`app.stream.work_consumer`, a
  plain aiokafka consumer with in-order commits: long generations inside Faust stall its rebalances,
  and after a rebalance Faust was seen never delivering the work items of partitions inherited
  from a killed worker (docs/architecture.md, "Decisions").
* Undecodable input goes to ``exhaust.dlq`` with the error and its source coordinates in headers.
* Deadlines and expiry: a timer sends a TICK event into every job-events partition this worker
  owns, so those writes, too, happen inside an event of the owning partition. Before it does, it
  refreshes the snapshot of the generators' queue (:mod:`app.stream.work_queue`) that tells a queued
  work item from a lost one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable, Hashable, Iterator
from functools import partial
from typing import Any

import faust
from faust.serializers import codecs

from app.catalog.types import Catalog
from app.domain.errors import ExhaustError, PoisonMessage, RequestConflict
from app.domain.leases import LeaseIndex
from app.domain.model import DatasetRequest, Job, JobEvent, is_sealed, job_key, legacy_key
from app.domain.state_machine import Outcome, Policy, identify, on_event, on_request, on_tick
from app.health import Health
from app.metrics import Metrics
from app.sealing import sealer_for
from app.settings import Settings
from app.stream import aiokafka_compat, faust_compat
from app.stream.avro import SchemaRegistry, registry
from app.stream.effects import EffectLedger
from app.stream.publisher import dead_letter_headers, log_dead_letter
from app.stream.read_model import Materialized
from app.stream.watchdog import ConsumerStalled, StallDetector
from app.stream.work_queue import (
    Dispatches,
    QueueSnapshot,
    WorkQueueProbe,
    work_partition,
    work_waiting,
)

log = logging.getLogger("exhaust.agents")

JOB_CODEC = "exhaust-jobstatus"
TICK_KEY = b"__tick__"
REDACTED = "[redacted]"  # what a dead-lettered request carries in place of its encryption key


class AvroRecordCodec(codecs.Codec):
    """Faust codec for a table of records: on the wire the Avro schema ``schema``, in memory
    what ``from_record`` builds (``Job`` for ``JobStatus``, ``ManagedDataset`` for itself)."""

    def __init__(
        self, schemas: SchemaRegistry, schema: str, from_record: Callable[[dict[str, Any]], Any]
    ) -> None:
        super().__init__()
        self.schemas, self.schema, self.from_record = schemas, schema, from_record

    def _dumps(self, obj: Any) -> bytes:
        return self.schemas.encode(self.schema, obj.to_record())

    def _loads(self, data: bytes) -> Any:
        return self.from_record(self.schemas.decode(self.schema, data))


def now_ms() -> int:
    return int(time.time() * 1000)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def policy_from(settings: Settings) -> Policy:
    return Policy(
        max_attempts=settings.max_attempts,
        lease_ms=int(settings.lease_seconds * 1000),
        dispatch_timeout_ms=int(settings.dispatch_timeout_seconds * 1000),
        retention_ms=settings.retention_seconds * 1000,
        dedup_window_seconds=settings.dedup_window_seconds,
        max_inputs=settings.max_inputs,
    )


class Pipeline:
    """Declares topics, the table and the agents on a Faust app; holds what they share."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        catalog: Catalog,
        metrics: Metrics,
        read_model: Materialized,
        health: Health | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.catalog = catalog
        self.metrics = metrics
        self.read_model = read_model
        self.policy = policy_from(settings)
        self.schemas = registry()
        self.leases = LeaseIndex(
            sweep_ms=int(settings.expiry_sweep_seconds * 1000),
            stale_after_ms=int(settings.tick_seconds * 3000),
            max_tracked=settings.deadline_index_size,
        )
        self.dispatches = Dispatches(limit=settings.deadline_index_size)
        self.probe = WorkQueueProbe(settings)
        self._probe_lock = asyncio.Lock()
        self.queue: QueueSnapshot | None = None
        self.drop_work_items = settings.fault_drop_work_items
        self.pause_after = settings.fault_pause_requests_after
        self.health = health
        self.sealer = sealer_for(settings)
        self.stalls = StallDetector(settings.watchdog_stall_seconds)
        self._guarded = False
        faust_compat.register_codec(
            JOB_CODEC, AvroRecordCodec(self.schemas, "JobStatus", Job.from_record)
        )

        n = settings.topic_partitions
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw", "partitions": n}
        self.requests = app.topic(settings.topic("requests"), **raw)
        self.requests_topic = settings.topic("requests")
        self.job_events = app.topic(settings.topic("job-events"), **raw)
        self.work_topic = settings.topic("work")
        self.dlq = app.topic(settings.topic("dlq"), **raw)
        changelog = app.topic(
            settings.topic("jobs"),
            key_serializer="raw",
            value_serializer=JOB_CODEC,
            partitions=n,
            compacting=True,
            internal=True,
        )
        table: Any = app.Table(
            "jobs",
            partitions=n,
            changelog_topic=changelog,
            options={"driver": "rocksdict", "block_cache_size": settings.table_cache_bytes},
        )
        # Tables take their codecs from key/value types; ours are raw ids and Avro JobStatus.
        table.key_serializer = "raw"
        table.value_serializer = JOB_CODEC
        self.jobs: Any = table

        app.agent(self.requests, name="exhaust.requests")(self._requests_agent)
        app.agent(self.job_events, name="exhaust.job_events")(self._events_agent)
        app.timer(settings.tick_seconds)(self._send_ticks)
        app.timer(settings.watchdog_interval_seconds)(self._watch)

    # --- shared -------------------------------------------------------------------------------

    @property
    def ledger(self) -> EffectLedger:
        """The commit guard's ledger: the guarded producer's (see :mod:`app.stream.effects`)."""
        return faust_compat.guarded_producer(self.app).ledger

    async def guard(self) -> None:
        """Prepare the writer's edge once, before the first event of any agent: count the
        tables' changelog sends as handed-over table writes, and cap the fetch wait.

        Faust hard-codes ``fetch_max_wait_ms=1500``. Its consumer fetches requests and
        job-events in one request per broker, leaving out partitions that still have buffered
        records; while job-events is quiet but for the TICKs, a fetch of only quiet partitions
        waits the full 1.5 s and requests arriving meanwhile wait with it (measured: p50
        publish→SUBMITTED 1.2 s at 500 req/s with ticks on, 21 ms with ticks off). An
        unsupported library stops the worker here (:mod:`app.stream.faust_compat`).
        """
        if self._guarded:
            return
        try:
            self.ledger.track_changelogs(
                self.settings.topic("jobs"), self.settings.topic("datasets")
            )
            aiokafka_compat.cap_fetch_wait(
                faust_compat.writer_consumer(self.app), self.settings.writer_fetch_max_wait_ms
            )
        except ExhaustError as exc:
            log.critical("%s: %s", exc.code, exc.message)
            await self.app.crash(exc)
            raise
        self._guarded = True

    async def dead_letter(
        self, message: Any, error: ExhaustError, value: bytes | None = None
    ) -> None:
        """Send the original bytes (or ``value``: the same record with its secrets redacted)
        to the DLQ with the error and source in headers.

        Not awaited: the commit guard holds the source offset until it is delivered.
        """
        headers = dead_letter_headers(message, error)
        body = message.value if value is None else value
        await self.dlq.send(key=message.key, value=body, headers=headers)
        self.metrics.dead_letter(error.code)
        log_dead_letter(message, error)

    async def decode_or_dead_letter(self, name: str, message: Any) -> dict[str, Any] | None:
        """The decoded record, or None after sending the undecodable message to the DLQ."""
        try:
            return self.schemas.decode(name, message.value or b"")
        except PoisonMessage as exc:
            await self.dead_letter(message, exc)
            return None

    def lookup(self, channel: str, request_id: str) -> tuple[Job | None, str | None]:
        """The job ``request_id`` of ``channel`` and, when it is still stored under its legacy
        key (written before ids were per channel), that key, which the next write retires.

        A legacy record of *another* channel is not this job: ids are per channel.
        """
        job = self.jobs.get(job_key(channel, request_id).encode())
        if job is not None:
            return job, None
        old = legacy_key(request_id)
        legacy = self.jobs.get(old.encode())
        if legacy is not None and legacy.channel == channel and legacy.request_id == request_id:
            return legacy, old
        return None, None

    async def apply(
        self,
        outcome: Outcome,
        event: Any,
        legacy: str | None = None,
        request: DatasetRequest | None = None,
    ) -> None:
        """Apply a state-machine outcome inside the current event (the table's one writer).

        Order of effects: dead letter, table write, work item. None is awaited here; the commit
        guard holds the event's offset until all are delivered. A crash after the table write
        but before the work item is durable leaves a SUBMITTED job whose dispatch deadline
        sends the work again (docs/architecture.md, "Crash points"). ``legacy``: the job was read
        from its legacy key; it is written under its key and the legacy one is deleted after it
        (a tombstone), so a reader never misses the job, at worst sees it twice for a moment.
        """
        self.metrics.transition(outcome.counter)
        if outcome.rejection is not None:
            redacted = None
            if request is not None and request.encryption_key is not None:
                # The dead letter keeps the request, never its key (clear or sealed).
                clean = dataclasses.replace(request, encryption_key=REDACTED)
                redacted = self.schemas.encode("DatasetRequest", clean.to_record())
            await self.dead_letter(event.message, outcome.rejection, redacted)
        if outcome.job is not None:
            job = outcome.job
            self.jobs[job.key.encode()] = job
            self.ledger.table_write()
            if legacy is not None and legacy != job.key:
                del self.jobs[legacy.encode()]
                self.ledger.table_write()
                self.leases.forget(job.partition, legacy)
                self.metrics.count("legacy_keys_migrated")
            self.leases.track(job)
            if job.status == "SUBMITTED":
                if outcome.counter == "job_created":
                    self.metrics.observe_submit(now_ms() - job.submitted_at)
            else:
                self.dispatches.forget(job.key)
        if outcome.work is not None:
            if self.drop_work_items > 0:  # fault injection (tests): a work item lost in transit
                self.drop_work_items -= 1
                log.warning("FAULT: dropping the work item of %s", outcome.work.key)
                return
            work = outcome.work
            value = self.schemas.encode("WorkItem", work.to_record())
            # Straight to the producer: a topic's send path (channel, future message) costs as
            # much as the rest of the event. The guarded producer watches the delivery.
            fut: Any = await self.app.producer.send(
                self.work_topic, work.key.encode(), value, None, None, None
            )
            fut.add_done_callback(partial(self._dispatched, work.key, work.attempt))

    def _dispatched(self, key: str, attempt: int, fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is None:
            sent = fut.result()
            self.dispatches.sent(key, attempt, sent.partition, sent.offset)

    # --- agents -------------------------------------------------------------------------------

    async def _requests_agent(self, stream: Any) -> None:
        await self.guard()
        async for event in stream.events():
            self.metrics.count("requests_received")
            if self.pause_after > 0:
                self._fault_pause()
            record = await self.decode_or_dead_letter("DatasetRequest", event.message)
            if record is None:
                continue
            request = DatasetRequest.from_record(record)
            if request.encryption_key is not None and not is_sealed(request.encryption_key):
                # A producer that wrote the topic directly: seal before anything keeps it.
                sealed = self.sealer.seal(request.encryption_key)
                request = dataclasses.replace(request, encryption_key=sealed)
            outcome, legacy = self._decide_request(request, event.message.partition)
            await self.apply(outcome, event, legacy, request)

    def _decide_request(
        self, request: DatasetRequest, partition: int
    ) -> tuple[Outcome, str | None]:
        """The outcome of a request and the legacy key its job was read from (if any)."""
        identity = identify(request, self.policy)
        request_id = identity.request_id
        existing, legacy = (
            (None, None) if identity.error else self.lookup(request.channel, request_id)
        )
        if existing is None and identity.client_id:
            # A client id is bound to its tag's partition; one reused with another tag lands
            # elsewhere, so look in the (global, eventually consistent) read model too. Only
            # the channel's own jobs count: ids are per channel.
            elsewhere = self.read_model.tag_of(request.channel, request_id)
            if elsewhere is not None and elsewhere != request.tag:
                reason = (
                    f"request_id {request_id!r} is already used by tag {elsewhere!r}; "
                    "the existing job is left untouched"
                )
                return Outcome("conflict", rejection=RequestConflict(reason)), None
        outcome = on_request(
            existing,
            request,
            partition=partition,
            now=now_ms(),
            policy=self.policy,
            catalog=self.catalog,
            identity=identity,
        )
        return outcome, legacy

    async def _events_agent(self, stream: Any) -> None:
        await self.guard()
        async for event in stream.events():
            self.metrics.count("job_events_received")
            record = await self.decode_or_dead_letter("JobEvent", event.message)
            if record is None:
                continue
            job_event = JobEvent.from_record(record)
            if job_event.kind == "TICK":
                await self._on_tick(event)
                continue
            if job_event.channel:
                job, legacy = self.lookup(job_event.channel, job_event.request_id)
            else:  # written before ids were per channel: only a legacy record can match it
                job, legacy = self.jobs.get(job_event.key.encode()), job_event.key
            outcome = on_event(job, job_event, now=now_ms(), policy=self.policy)
            await self.apply(outcome, event, legacy)

    async def _on_tick(self, event: Any) -> None:
        """Deadlines of one partition: find the jobs due, then act on each one's *current* state.

        The scan yields to the loop every few hundred jobs (a backlog of thousands must not
        stall the other agent), so what it finds may be stale by the time it acts: each job is
        read again and decided again right before its write, with no await in between (the
        requests agent writes the same table).
        """
        partition = event.message.partition
        now = now_ms()
        act_on: list[str] = []  # table keys (a legacy record's is its legacy key)
        if self.leases.needs_sweep(partition, now):
            watched = []
            for i, (key, job) in enumerate(self._partition_jobs(partition)):  # a snapshot
                if i % 256 == 255:
                    await asyncio.sleep(0)
                if self._check(job, now, key).job is not None:
                    act_on.append(key)
                elif not job.terminal:
                    watched.append((key, job))
            self.leases.swept(partition, now, watched)
        else:
            for i, (key, submitted, attempt) in enumerate(self.leases.due(partition, now)):
                if i % 256 == 255:
                    await asyncio.sleep(0)
                # A legacy key (no "/") is not its work item's key: decided below, on the job.
                if submitted and "/" in key and self._queued(key, attempt, now):
                    # Still waiting behind busy generators: decided from the index alone.
                    self.metrics.transition("dispatch_deferred")
                    self.leases.defer(partition, key, now + self.policy.dispatch_timeout_ms)
                else:
                    act_on.append(key)
        for key in act_on:
            job = self.jobs.get(key.encode())
            if job is not None:
                outcome = self._check(job, now_ms(), key)
                if outcome.job is not None:
                    await self.apply(outcome, event, None if key == job.key else key)

    def _queued(self, key: str, attempt: int, now: int) -> bool:
        """Whether this attempt's work item (sent with the job's key) may still wait behind
        busy generators."""
        part = work_partition(key, self.settings.topic_partitions)
        return work_waiting(
            self.queue,
            part,
            self.dispatches.offset(key, attempt, part),
            now=now,
            max_age_ms=int(self.settings.tick_seconds * 3000),
        )

    def _partition_jobs(self, partition: int) -> Iterator[tuple[str, Job]]:
        """The jobs of one partition with their table keys, streamed from the table's store.

        Faust's ``table.values()`` walks every partition's RocksDB (and decodes every job), so
        a sweep per partition would cost partitions x jobs; read that partition's database.
        """
        items = faust_compat.partition_items(self.jobs, partition)
        if items is None:  # memory:// store
            for key, job in self.jobs.items():
                if job.partition == partition:
                    yield (key.decode() if isinstance(key, bytes) else str(key)), job
            return
        codec = codecs.get_codec(JOB_CODEC)
        for key, value in items:
            yield key.decode(), codec.loads(value)

    def _check(self, job: Job, now: int, key: str) -> Outcome:
        """:func:`on_tick` for one job (stored under ``key``), with what this writer knows of its
        work item."""
        waiting = job.status == "SUBMITTED" and self._queued(job.key, job.attempt, now)
        outcome = on_tick(job, now=now, policy=self.policy, work_waiting=waiting)
        if outcome.counter == "dispatch_deferred":
            self.metrics.transition("dispatch_deferred")
            self.leases.defer(job.partition, key, now + self.policy.dispatch_timeout_ms)
        return outcome

    async def _send_ticks(self) -> None:
        await self._refresh_queue()
        value = self.schemas.encode(
            "JobEvent", JobEvent(kind="TICK", request_id="", attempt=0, at=now_ms()).to_record()
        )
        for tp in self.app.consumer.assignment():
            if tp.topic == self.job_events.get_topic_name():
                await self.job_events.send(key=TICK_KEY, value=value, partition=tp.partition)
                self.metrics.count("ticks_sent")

    async def _probe(self) -> WorkQueueProbe:
        """The probe, started once (both timers use it)."""
        async with self._probe_lock:
            if not self.probe.started:
                await self.probe.start()
        return self.probe

    def _fault_pause(self) -> None:
        """Fault injection (tests): pause the requests partitions for good after N requests."""
        self.pause_after -= 1
        if self.pause_after == 0:
            mine = [t for t in self.app.consumer.assignment() if t.topic == self.requests_topic]
            log.warning("FAULT: pausing %s and never resuming", mine)
            self.app.consumer.pause_partitions(mine)

    async def _watch(self) -> None:
        """The watchdog's Faust edge (see :mod:`app.stream.watchdog`): the writer's own
        partitions."""
        topics = [self.requests_topic, self.job_events.get_topic_name()]
        mine = [tp for tp in self.app.consumer.assignment() if tp.topic in topics]
        try:
            probe = await self._probe()
            committed, end = await probe.group_offsets(
                self.settings.consumer_group, topics, self.settings.topic_partitions
            )
        except Exception as exc:
            log.warning("watchdog cannot read offsets: %r", exc)
            return
        progress: dict[Hashable, int] = {
            (tp.topic, tp.partition): committed.get((tp.topic, tp.partition), 0) for tp in mine
        }
        verdict = self.stalls.observe(progress, dict(end), time.monotonic())
        by_key = {(tp.topic, tp.partition): tp for tp in mine}
        for key in verdict.stalled:
            tp = by_key[key]  # type: ignore[index]
            log.error(
                "watchdog: %s[%d] has lag and made no progress for %.0fs; resuming it and "
                "seeking to its committed offset %d", tp.topic, tp.partition,
                self.settings.watchdog_stall_seconds, progress[key],
            )  # fmt: skip
            self.metrics.stalls.labels("writer").inc()
            self.metrics.recoveries.labels("writer", "resume_and_seek").inc()
            self.app.consumer.resume_partitions([tp])
            await self.app.consumer.seek(tp, progress[key])
        for key in verdict.healthy_again:
            log.warning("watchdog: %s[%d] is making progress again", *key)  # type: ignore[misc]
        stalled = self.stalls.stalled
        self.metrics.stalled_partitions.labels("writer").set(len(stalled))
        if self.health is not None:
            if stalled:
                names = ", ".join(str(key) for key in stalled)
                self.health.failed("watchdog", f"stalled partitions: {names}")
            else:
                self.health.passed("watchdog", "ok")
        if verdict.hopeless:
            error = ConsumerStalled(
                f"partitions {verdict.hopeless} stayed stalled after recovery; exiting so the "
                "worker is restarted and the group reassigns them"
            )
            log.critical("%s: %s", error.code, error.message)
            self.metrics.recoveries.labels("writer", "restart").inc()
            await self.app.crash(error)

    async def _refresh_queue(self) -> None:
        try:
            self.queue = await (await self._probe()).snapshot(now_ms())
            self.metrics.set_work_lag(self.queue.lag())
        except Exception as exc:  # the broker is restarting, say: re-dispatch decides without it
            log.warning("cannot read the generators' queue: %r", exc)
