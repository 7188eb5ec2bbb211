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
* **Batches.** Each agent collects the events that are already buffered (up to
  ``settings.writer_batch_max``; it never waits for more, so a quiet writer answers at once),
  has :class:`~app.stream.job_writer.JobWriter` decide them all, performs the effects in their
  commit order (every table write, then every send) and only then acks the batch's events, so
  no offset is committed before its batch's effects were handed over (the stream's own acks
  are off: Faust would ack an event as soon as the next one is read). The writer's consumer
  hands a fetch's messages to the stream together (:class:`~app.stream.faust_compat.Consumer`),
  so under a backlog a batch holds what was fetched (``exhaust_writer_batch_events``).
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
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from functools import partial
from typing import Any

import faust
from faust.exceptions import NotReady
from faust.serializers import codecs

from app import tracing
from app.catalog.types import Catalog
from app.clock import Clock, now_ms
from app.domain.errors import ExhaustError, PoisonMessage
from app.domain.model import DatasetRequest, Job, JobEvent
from app.health import Health
from app.metrics import Metrics
from app.sealing import sealer_for
from app.settings import Settings
from app.stream import aiokafka_compat, cloud_events, faust_compat
from app.stream.avro import SchemaRegistry, registry
from app.stream.effects import EffectLedger
from app.stream.fence import EXIT_CODE, MembershipFence
from app.stream.job_writer import Effects, Input, JobWriter
from app.stream.partition_order import TAKE, PartitionOrder, SeekBack
from app.stream.publisher import dead_letter_headers, log_dead_letter
from app.stream.read_ahead import ReadAhead
from app.stream.read_model import Materialized
from app.stream.watchdog import ConsumerStalled, StallDetector
from app.stream.work_queue import DISCARD_HEADER, STOP_HEADER, WorkQueueProbe

log = logging.getLogger("exhaust.agents")

JOB_CODEC = "exhaust-jobstatus"
TICK_KEY = b"__tick__"


class AvroRecordCodec(codecs.Codec):
    """Faust codec for a table of records: on the wire the Avro schema ``schema``, in memory
    what ``from_record`` builds (``Job`` for ``JobStatus``, ``ManagedDataset`` for itself).
    ``annotate`` sees every record it encodes with its bytes (the jobs' CloudEvents headers)."""

    def __init__(
        self,
        schemas: SchemaRegistry,
        schema: str,
        from_record: Callable[[dict[str, Any]], Any],
        annotate: Callable[[Any, bytes], None] | None = None,
    ) -> None:
        super().__init__()
        self.schemas, self.schema, self.from_record = schemas, schema, from_record
        self.annotate = annotate

    def _dumps(self, obj: Any) -> bytes:
        data = self.schemas.encode(self.schema, obj.to_record())
        if self.annotate is not None:
            self.annotate(obj, data)
        return data

    def _loads(self, data: bytes) -> Any:
        return self.from_record(self.schemas.decode(self.schema, data))


def table_options(settings: Settings, cache_bytes: int) -> dict[str, Any]:
    """RocksDB options of a Faust table whose memory is bounded by configuration: a table has
    one database per partition, each with its own block cache (``cache_bytes`` is shared out)
    and its own write buffers (at most two of ``table_write_buffer_bytes``). With Faust's
    defaults (64 MiB x 3 write buffers and a 64 MiB cache per partition), the two tables of a
    6-partition worker could hold 2.7 GiB before anything bounded them."""
    partitions = settings.topic_partitions
    return {
        "driver": "rocksdict",
        "block_cache_size": max(1024 * 1024, cache_bytes // partitions),
        "write_buffer_size": settings.table_write_buffer_bytes,
        "max_write_buffer_number": 2,
    }


async def send_to_owned_partitions(app: faust.App, topic: Any, key: bytes, value: bytes) -> int:
    """Send a timer's event (a TICK, a SWEEP) into every partition of ``topic`` this worker
    owns, so its work happens inside an event of the owning partition; return how many were
    sent. A worker that is stopping sends nothing more (its producer is gone; the partitions'
    next owner takes over) instead of crashing on the way out."""
    sent = 0
    name = topic.get_topic_name()
    for tp in app.consumer.assignment():
        if tp.topic == name:
            try:
                await topic.send(key=key, value=value, partition=tp.partition)
            except NotReady:
                if app.should_stop:
                    return sent
                raise
            sent += 1
    return sent


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Pipeline:
    """The writer's Faust edge: declares topics, the table and the agents, feeds the agents'
    batches to :class:`~app.stream.job_writer.JobWriter` and performs what it decides."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        catalog: Catalog,
        metrics: Metrics,
        read_model: Materialized,
        health: Health | None = None,
        clock: Clock = now_ms,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.read_model = read_model
        self.clock = clock
        self.schemas = registry()
        self.writer = JobWriter(
            settings.job_policy(),
            catalog,
            sealer_for(settings),
            read_model.tag_of,
            partitions=settings.topic_partitions,
            tick_seconds=settings.tick_seconds,
            expiry_sweep_seconds=settings.expiry_sweep_seconds,
            index_size=settings.deadline_index_size,
            clock=clock,
        )
        self.probe = WorkQueueProbe(settings)
        self._probe_lock = asyncio.Lock()
        self.health = health
        self.stalls = StallDetector(settings.watchdog_stall_seconds)
        self.batch_max = settings.writer_batch_max
        self.fence: MembershipFence | None = None  # built by guard(), once the consumer runs
        self._guarded = False
        faust_compat.register_codec(
            JOB_CODEC,
            AvroRecordCodec(self.schemas, "JobStatus", Job.from_record, cloud_events.annotate),
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
            acks=False,  # a changelog, not a source: as Faust's own (see faust_compat)
        )
        table: Any = app.Table(
            "jobs",
            partitions=n,
            changelog_topic=changelog,
            options=table_options(settings, settings.table_cache_bytes),
        )
        # Tables take their codecs from key/value types; ours are raw ids and Avro JobStatus.
        table.key_serializer = "raw"
        table.value_serializer = JOB_CODEC
        self.jobs: Any = table

        app.agent(self.requests, name="exhaust.requests")(self._requests_agent)
        app.agent(self.job_events, name="exhaust.job_events")(self._events_agent)
        app.timer(settings.tick_seconds)(self._send_ticks)
        app.timer(settings.watchdog_interval_seconds)(self._watch)
        app.timer(settings.consumer_session_timeout_seconds / 20)(self._fail_stop)

    # --- shared -------------------------------------------------------------------------------

    @property
    def ledger(self) -> EffectLedger:
        """The commit guard's ledger: the guarded producer's (see :mod:`app.stream.effects`)."""
        return faust_compat.guarded_producer(self.app).ledger

    async def guard(self) -> None:
        """Prepare the writer's edge once, before the first event of any agent: count the
        tables' changelog sends as handed-over table writes, cap the fetch wait, and fence the
        writer on its group membership (:mod:`app.stream.fence`).

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
            faust_compat.guarded_producer(self.app).annotate(self.settings.topic("jobs"))
            consumer = faust_compat.writer_consumer(self.app)
            aiokafka_compat.cap_fetch_wait(consumer, self.settings.writer_fetch_max_wait_ms)
            aiokafka_compat.refresh_metadata_on_offset_errors(consumer)
            membership = aiokafka_compat.watch_membership(consumer)
        except ExhaustError as exc:
            log.critical("%s: %s", exc.code, exc.message)
            await self.app.crash(exc)
            raise
        app = self.app
        self.fence = MembershipFence(
            membership.age,
            self.settings.consumer_session_timeout_seconds / 2,
            lambda: bool(app.rebalancing or app.should_stop),
            on_fenced=lambda: self.metrics.count("writer_fenced"),
            unsettled=self.ledger.unsettled,
            stopping=lambda: bool(app.should_stop or app.crashed),
        )
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

    def read(self, key: str, source: object) -> Job | None:
        """The job stored under a table key (the decisions' view of the table), read in the
        store of ``source``'s partition. Faust's RocksDB store reads the partition of the
        *current* event, which during a batch's decisions is the batch's last event: a batch
        of several partitions would read most keys in the wrong database and find no job (a
        repeat then created its job afresh; the cluster's checker caught it after a worker's
        death). Writes are made the same way (:meth:`perform`)."""
        job: Job | None = faust_compat.read_for(self.jobs, key.encode(), source)
        return job

    async def perform(self, effects: Effects) -> None:
        """Perform a batch's effects in their commit order: every table write, then every send
        (dead letters, then work items). None is awaited to delivery; the commit guard holds
        the batch's offsets until all are delivered. A crash after the table writes but before
        a work item is durable leaves a SUBMITTED job whose dispatch deadline sends the work
        again (docs/architecture.md, "Crash points")."""
        for key, job, source in effects.writes:
            with faust_compat.acting_for(source):  # the write's partition is its event's
                if job is None:
                    del self.jobs[key.encode()]
                else:
                    self.jobs[key.encode()] = job
            self.ledger.table_write()
        for counter in effects.transitions:
            self.metrics.transition(counter)
        for latency in effects.submit_latencies_ms:
            self.metrics.observe_submit(latency)
        if effects.legacy_keys_migrated:
            self.metrics.count("legacy_keys_migrated", effects.legacy_keys_migrated)
        for letter in effects.dead_letters:
            redacted = None
            if letter.redacted is not None:
                redacted = self.schemas.encode("DatasetRequest", letter.redacted.to_record())
            caused_by: Any = letter.source
            await self.dead_letter(caused_by.message, letter.error, redacted)
        for work in effects.work:
            value = self.schemas.encode("WorkItem", work.to_record())
            if tracing.ON:  # the send's span joins the job's trace
                with tracing.attached(work.trace_parent):
                    await self.send_work(work.key, work.attempt, value)
            else:  # no context manager per item on the hot path
                await self.send_work(work.key, work.attempt, value)
        for stop in effects.stops:
            # Same key, so the same partition as the attempt's work item, after it: the
            # generator that owns the item sees the stop (docs/architecture.md, "Cancel").
            value = self.schemas.encode("WorkItem", stop.to_record())
            await self.app.producer.send(
                self.work_topic, stop.key.encode(), value, None, None, [STOP_HEADER]
            )
        for discard in effects.discards:
            # Same partition as the attempt's work item: its owner stops a copy it runs, then
            # deletes the attempt's objects (docs/architecture.md, "Dead attempts").
            value = self.schemas.encode("WorkItem", discard.to_record())
            await self.app.producer.send(
                self.work_topic, discard.key.encode(), value, None, None, [DISCARD_HEADER]
            )

    async def send_work(self, key: str, attempt: int, value: bytes) -> None:
        """Hand one work item to the producer (not awaited to delivery)."""
        # Straight to the producer: a topic's send path (channel, future message) costs as
        # much as the rest of the event. The guarded producer watches the delivery.
        fut: Any = await self.app.producer.send(
            self.work_topic, key.encode(), value, None, None, None
        )
        fut.add_done_callback(partial(self._dispatched, key, attempt))

    def _dispatched(self, key: str, attempt: int, fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is None:
            sent = fut.result()
            self.writer.dispatched(key, attempt, sent.partition, sent.offset)

    # --- agents -------------------------------------------------------------------------------

    async def batches(
        self, name: str, stream: Any, handle: Callable[[Sequence[Any]], Awaitable[None]]
    ) -> None:
        """Feed ``handle`` the events ready in ``stream``, a batch at a time, and ack each
        batch's events after ``handle`` returns (its effects then are handed over). An exception
        leaves the batch unacked: its offsets never commit, and the events are replayed by the
        partition's next owner. A batch the fence does not admit is abandoned the same way
        (:mod:`app.stream.fence`).

        A batch is decided as soon as no further event is ready: when the stream's buffer is
        empty, or when the next event does not come out within a few turns of the event loop
        (:class:`~app.stream.read_ahead.ReadAhead`). The buffer alone is not enough: after a
        rebalance the stream skips buffered events of a stale generation and then waits, and
        a batch left behind them would never be acknowledged.

        Once a batch is abandoned, so is every later event fetched in the same generation of
        the group, until the rebalance has the partitions read again from their committed
        offsets: decided now, a later event would come before an abandoned one of its
        partition (a repeat of a request decided before the request itself, which, read
        again, would then count as a redelivery and not as the duplicate it is)."""
        await self.guard()
        assert self.fence is not None
        stream.enable_acks = False  # acked below, after the batch's effects
        buffered = stream.channel.queue  # what the stream reads from
        sizes = self.metrics.writer_batches.labels(name)
        events: ReadAhead[Any] = ReadAhead(stream.events())
        batch: list[Any] = []
        abandoned_in: int | None = None  # the generation a batch was last abandoned in
        order = PartitionOrder()
        consumer = self.app.consumer
        sought = consumer.sought if isinstance(consumer, faust_compat.Consumer) else None
        try:
            async for event in events:
                message = event.message
                if abandoned_in is not None and message.generation_id <= abandoned_in:
                    faust_compat.abandon(self.app, [event])
                    self.metrics.count("writer_events_abandoned")
                    continue
                if sought is not None:
                    verdict = order.check(message.tp, message.offset, sought(message.tp))
                    if verdict is not TAKE:
                        faust_compat.abandon(self.app, [event])
                        self.metrics.count("writer_events_out_of_order")
                        if isinstance(verdict, SeekBack):
                            log.warning(
                                "%s[%d]: event %d came where %d was expected (events lost on "
                                "the way); seeking back to %d", message.topic, message.partition,
                                message.offset, verdict.offset, verdict.offset,
                            )  # fmt: skip
                            await consumer.seek(message.tp, verdict.offset)
                            order.sought_back(message.tp, sought(message.tp))
                        continue
                batch.append(event)
                if len(batch) < self.batch_max and not buffered.empty() and await events.ready():
                    continue  # the next event is out: it joins this batch
                if not await self.fence.admit():
                    faust_compat.abandon(self.app, batch)
                    self.metrics.count("writer_batches_abandoned")
                    self.metrics.count("writer_events_abandoned", len(batch))
                    abandoned_in = max(done.message.generation_id for done in batch)
                    batch = []
                    continue
                sizes.observe(len(batch))
                await handle(batch)
                for done in batch:
                    await stream.ack(done)
                batch = []
        finally:
            await events.aclose()

    async def _requests_agent(self, stream: Any) -> None:
        await self.batches("requests", stream, self.on_requests)

    async def on_requests(self, events: Sequence[Any]) -> None:
        """One batch of the requests topic."""
        self.metrics.count("requests_received", len(events))
        batch = []
        spans: list[Any] = []
        for event in events:
            record = await self.decode_or_dead_letter("DatasetRequest", event.message)
            if record is not None:
                request = DatasetRequest.from_record(record)
                message = event.message
                if tracing.ON:  # the decision continues the request's trace (app.tracing)
                    span = tracing.consumer_span(
                        "exhaust.writer request", tracing.header_value(message.headers),
                        **{"exhaust.tag": request.tag, "exhaust.channel": request.channel},
                    )  # fmt: skip
                    spans.append(span)
                    request = dataclasses.replace(
                        request, trace_parent=tracing.traceparent_of(span)
                    )
                batch.append(
                    Input(message.partition, request=request, source=event, offset=message.offset)
                )
        try:
            await self.perform(self.writer.decide(batch, self.read))
        finally:
            tracing.end_all(spans)

    async def _events_agent(self, stream: Any) -> None:
        await self.batches("job_events", stream, self.on_job_events)

    async def on_job_events(self, events: Sequence[Any]) -> None:
        """One batch of the job-events topic: reports decided together, each TICK on its own
        (in order)."""
        self.metrics.count("job_events_received", len(events))
        batch: list[Input] = []
        spans: list[Any] = []
        for event in events:
            record = await self.decode_or_dead_letter("JobEvent", event.message)
            if record is None:
                continue
            job_event = JobEvent.from_record(record)
            if job_event.kind == "TICK":
                await self.perform(self.writer.decide(batch, self.read))
                batch = []
                await self._on_tick(event)
            else:
                if tracing.ON:
                    spans.append(tracing.consumer_span(
                        f"exhaust.writer {job_event.kind}",
                        tracing.header_value(event.message.headers),
                        **{"exhaust.request_id": job_event.request_id,
                           "exhaust.attempt": job_event.attempt},
                    ))  # fmt: skip
                batch.append(Input(event.message.partition, event=job_event, source=event))
        try:
            await self.perform(self.writer.decide(batch, self.read))
        finally:
            tracing.end_all(spans)

    async def _on_tick(self, event: Any) -> None:
        """Deadlines of one partition. A sweep reads a snapshot of the partition's jobs first,
        yielding to the loop every few hundred (a backlog of thousands must not stall the other
        agent); the decisions then read each job again, with no await before their writes."""
        partition = event.message.partition
        now = self.clock()
        snapshot = None
        if self.writer.needs_sweep(partition, now):
            snapshot = []
            for i, item in enumerate(self._partition_jobs(partition)):
                if i % 256 == 255:
                    await asyncio.sleep(0)
                snapshot.append(item)
        await self.perform(self.writer.tick(partition, now, self.read, snapshot, event))

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

    async def _send_ticks(self) -> None:
        await self._refresh_queue()
        value = self.schemas.encode(
            "JobEvent", JobEvent(kind="TICK", request_id="", attempt=0, at=self.clock()).to_record()
        )
        sent = await send_to_owned_partitions(self.app, self.job_events, TICK_KEY, value)
        self.metrics.count("ticks_sent", sent)

    async def _fail_stop(self) -> None:
        """Exit at once when the fence says so (:meth:`MembershipFence.must_stop`): not a
        clean stop, which would flush the producer and deliver the very effects at issue."""
        error = self.fence.must_stop() if self.fence is not None else None
        if error is not None:
            log.critical("%s: %s", error.code, error.message)
            logging.shutdown()
            os._exit(EXIT_CODE)

    async def _probe(self) -> WorkQueueProbe:
        """The probe, started once (both timers use it)."""
        async with self._probe_lock:
            if not self.probe.started:
                await self.probe.start()
        return self.probe

    async def _watch(self) -> None:
        """The watchdog's Faust edge (see :mod:`app.stream.watchdog`): the writer's own
        partitions."""
        if self.app.rebalancing:  # nothing is consumed during a rebalance and its recovery
            self.stalls.forget()
            return
        topics = [self.requests_topic, self.job_events.get_topic_name()]
        consumer = self.app.consumer
        mine = [tp for tp in consumer.assignment() if tp.topic in topics]
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
        delivered: dict[Hashable, int] = {}
        if isinstance(consumer, faust_compat.Consumer):
            for tp in mine:
                marker = consumer.next_offset(tp)
                if marker is not None:
                    delivered[(tp.topic, tp.partition)] = marker
        if self.app.rebalancing:  # began while the offsets were read
            self.stalls.forget()
            return
        verdict = self.stalls.observe(progress, dict(end), time.monotonic(), delivered)
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
            consumer.resume_partitions([tp])
            await consumer.seek(tp, progress[key])
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
            # At once, as the fence's exit: a crash would leave the group first and go on
            # delivering the effects in hand after the partitions were handed on.
            log.critical("%s: %s", error.code, error.message)
            self.metrics.recoveries.labels("writer", "restart").inc()
            logging.shutdown()
            os._exit(EXIT_CODE)

    async def _refresh_queue(self) -> None:
        try:
            self.writer.queue = await (await self._probe()).snapshot(self.clock())
            self.metrics.set_work_lag(self.writer.queue.lag())
        except Exception as exc:  # the broker is restarting, say: re-dispatch decides without it
            log.warning("cannot read the generators' queue: %r", exc)
