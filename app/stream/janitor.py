"""Deletes what a job's dead attempts left in object storage.

A generator killed mid-generation (``kill -9``, a host lost) leaves the files it had uploaded,
and perhaps an unfinished multipart upload, under its attempt's prefix; the job's next attempt
writes under its own. A cancelled or failed job may leave partial files the same way. Nothing
points to them, so nobody would ever delete them.

The janitor reads ``exhaust.jobs`` in its own consumer group (``{consumer_group}.janitor``,
so the generators share the partitions) and, ``EXHAUST_JANITOR_GRACE_SECONDS`` after a job's
terminal record, deletes every object under the job's prefix that is not its live attempt's:

* ``SUCCESS``: the other attempts' prefixes (only when the job had more than one attempt:
  with one, every object is the live attempt's, and the common case costs no request);
* ``FAILED`` and ``CANCELLED``: everything under the job's prefix;

and aborts the multipart uploads started under the same prefixes. ``EXPIRED`` jobs are the
retention's business, not the janitor's.

The grace period lets an attempt that is still running somewhere (a paused process, a host
cut off that comes back) finish before its files are swept; what such an attempt uploads
after the sweep is deleted when it reports its end (the writer's *discard*,
:meth:`app.generator.Generator.discard`).
Offsets are committed only up to the last record swept, in order, so a restart sweeps again
rather than forgetting (a sweep is idempotent); the pending sweeps held in memory are bounded
by ``JANITOR_PENDING``: past it, the consumer waits for the oldest ones.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from mode import Service

from app.catalog.types import Catalog
from app.domain.errors import ExhaustError, PoisonMessage
from app.domain.model import attempt_prefix
from app.engine.storage import SweepStore, delete_under
from app.metrics import Metrics
from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.avro import registry
from app.stream.connection import client_options

log = logging.getLogger("exhaust.janitor")

FIELDS = ("request_id", "channel", "dataset", "status", "attempt", "attempts", "last_updated")
SWEPT = {"SUCCESS", "FAILED", "CANCELLED"}
JANITOR_PENDING = 10_000  # sweeps held in memory at most (about 200 bytes each)


@dataclass(frozen=True, slots=True)
class Sweep:
    """One job to sweep at ``due`` (epoch seconds): keep ``keep`` (an attempt's prefix), or
    nothing when ``keep`` is None."""

    tp: TopicPartition
    offset: int
    due: float
    job_prefix: str
    keep: str | None


def sweep_for(record: dict[str, Any], public: bool) -> tuple[str, str | None] | None:
    """(the job's prefix, the prefix to keep) for a jobs record, or None when the record needs
    no sweep. Pure: the decisions are unit-tested without a store."""
    status = record["status"]
    if status not in SWEPT:
        return None
    if status == "SUCCESS" and record.get("attempts", 1) <= 1 and record["attempt"] <= 1:
        return None
    channel, dataset, request_id = record["channel"], record["dataset"], record["request_id"]
    live = attempt_prefix(channel, dataset, request_id, record["attempt"], public)
    job_prefix = live[: -len(f"{record['attempt']}/")]
    return job_prefix, (live if status == "SUCCESS" else None)


def add(pending: collections.deque[Sweep], sweep: Sweep) -> None:
    """Queue ``sweep``; a record with nothing to sweep only moves its partition's commit, so it
    replaces a no-op of the same partition at the tail instead of taking a place of its own
    (the queue holds about one entry per job to sweep, not one per record)."""
    if not sweep.job_prefix and pending:
        last = pending[-1]
        if not last.job_prefix and last.tp == sweep.tp:
            pending[-1] = sweep
            return
    pending.append(sweep)


class RetryPause:
    """When to ask a failing object store again: after ``first`` seconds, doubling up to
    ``longest``, one warning per outage (a store down for minutes had the janitor retry and
    warn twice a second). Hand-written: the retry is one step of a polling loop that must go
    on polling Kafka meanwhile, not a call to wrap in a retrying library."""

    def __init__(
        self, first: float = 1.0, longest: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.first, self.longest, self.clock = first, longest, clock
        self.wait = 0.0
        self.retry_at = 0.0

    def ready(self) -> bool:
        return self.clock() >= self.retry_at

    def failed(self, reason: str) -> None:
        if not self.wait:
            log.warning("janitor: %s; retrying with backoff up to %.0fs", reason, self.longest)
        self.wait = min(self.longest, self.wait * 2) if self.wait else self.first
        self.retry_at = self.clock() + self.wait

    def succeeded(self) -> None:
        if self.wait:
            log.info("janitor: the object store answers again")
        self.wait, self.retry_at = 0.0, 0.0


class Janitor(Service):
    """Sweeps dead attempts' objects, ``grace`` seconds after their job ended."""

    def __init__(
        self,
        settings: Settings,
        store: SweepStore,
        catalog: Catalog,
        metrics: Metrics,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.settings, self.store, self.catalog, self.metrics = settings, store, catalog, metrics
        self.grace = settings.janitor_grace_seconds
        self.schemas = registry()
        self.pause = RetryPause()

    def _public(self, dataset: str) -> bool:
        found = self.catalog.types.get(dataset)
        return found is not None and found.public

    @Service.task
    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            self.settings.topic("jobs"),
            **client_options(self.settings),
            group_id=f"{self.settings.consumer_group}.janitor",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await aiokafka_compat.start(consumer)
        pending: collections.deque[Sweep] = collections.deque()
        paused = False
        try:
            while not self.should_stop:
                # Full: stop fetching but keep polling (a consumer that does not poll for
                # max.poll.interval.ms, 5 minutes, is dropped from its group).
                if (len(pending) >= JANITOR_PENDING) != paused:
                    paused = not paused
                    assigned = list(consumer.assignment())
                    if paused:
                        consumer.pause(*assigned)
                    else:
                        consumer.resume(*assigned)
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, messages in batch.items():
                    for message in messages:
                        add(pending, self._sweep(tp, message))
                await self._sweep_due(consumer, pending)
        finally:
            await consumer.stop()

    def _sweep(self, tp: TopicPartition, message: Any) -> Sweep:
        """The record as a sweep (``job_prefix`` empty: nothing to do but commit past it)."""
        if message.value is None:
            return Sweep(tp, message.offset, 0.0, "", None)
        try:
            record = self.schemas.decode("JobStatus", message.value, FIELDS)
        except PoisonMessage:
            return Sweep(tp, message.offset, 0.0, "", None)
        found = sweep_for(record, self._public(record["dataset"]))
        if found is None:
            return Sweep(tp, message.offset, 0.0, "", None)
        due = record["last_updated"] / 1000 + self.grace
        return Sweep(tp, message.offset, due, found[0], found[1])

    async def _sweep_due(self, consumer: Any, pending: collections.deque[Sweep]) -> None:
        """Sweep the due head of ``pending`` in order; commit past what was done."""
        done: dict[TopicPartition, int] = {}
        while pending and pending[0].due <= time.time() and not self.should_stop:
            sweep = pending[0]
            if sweep.job_prefix:
                if not self.pause.ready():
                    break
                try:
                    await self._delete(sweep)
                except ExhaustError as exc:  # the store down: keep it, try again later
                    self.pause.failed(exc.message)
                    break
                self.pause.succeeded()
            pending.popleft()
            done[sweep.tp] = sweep.offset + 1
        if done:
            try:
                await consumer.commit(done)
            except (CommitFailedError, IllegalStateError) as exc:
                # A rebalance took partitions away: their new owner sweeps again from the
                # last commit (sweeps are idempotent); drop what is no longer ours.
                log.info("janitor: commit after a rebalance refused (%s)", exc)
                owned = consumer.assignment()
                kept = [s for s in pending if s.tp in owned]
                pending.clear()
                pending.extend(kept)

    async def _delete(self, sweep: Sweep) -> None:
        keys, uploads = await delete_under(self.store, sweep.job_prefix, sweep.keep)
        if keys or uploads:
            self.metrics.orphans_deleted.inc(keys + uploads)
            log.info(
                "janitor: %s: deleted %d objects and %d unfinished uploads of dead attempts",
                sweep.job_prefix, keys, uploads,
            )  # fmt: skip


__all__ = ["Janitor", "Sweep", "SweepStore", "add", "sweep_for"]
