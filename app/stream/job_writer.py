"""The job writer's decisions, without Faust: a batch of decoded events in, the effects out.

:class:`JobWriter` is what the single writer of a tag partition decides; it holds what the
writer remembers between events (the deadline index, the dispatched offsets, the last snapshot
of the generators' queue) and reads the table through a function it is given. It performs no
I/O: :class:`~app.stream.agents.Pipeline`, the Faust edge, feeds it batches and performs the
:class:`Effects` it returns in their commit order (table writes, then sends; see
:mod:`app.stream.effects` for the rest of the order). Unit tests drive it directly.

Within a batch, a read sees the batch's own earlier writes (an overlay of pending writes), so
a batch decides exactly as the same events one by one would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from app.clock import Clock, now_ms
from app.domain.errors import ExhaustError, RequestConflict
from app.domain.leases import LeaseIndex
from app.domain.model import DatasetRequest, Job, JobEvent, WorkItem, is_sealed, job_key, legacy_key
from app.domain.state_machine import (
    Counter,
    JobPolicy,
    Outcome,
    RequestCheck,
    identify,
    on_event,
    on_request,
    on_tick,
)
from app.sealing import Sealer
from app.stream.work_queue import Dispatches, QueueSnapshot, work_partition, work_waiting

REDACTED = "[redacted]"  # what a dead-lettered request carries in place of its encryption key

# (a table key, the event it is read for) -> its job. The event says which partition's store
# holds the key: the edge must read there, not wherever its framework's current event is.
Read = Callable[[str, object], Job | None]
TagOf = Callable[[str, str], str | None]  # (channel, request id) -> its tag, from the read model


@dataclass(frozen=True, slots=True)
class Input:
    """One decoded event of the writer's partitions: a request or a generator's report."""

    partition: int
    request: DatasetRequest | None = None
    event: JobEvent | None = None
    source: object = None  # the edge's handle of the event: its writes and dead letters name it
    offset: int = -1  # a request's offset in its partition (a redelivery is recognised by it)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: object
    error: ExhaustError
    redacted: DatasetRequest | None = None  # the request to send instead of the original bytes


@dataclass(slots=True)
class Effects:
    """What the edge performs for a batch, in this order: ``writes`` to the table (key, job or
    ``None`` to delete the key, and the source of the event the write belongs to), then
    ``dead_letters``, ``work``, ``stops`` and ``discards`` sends. ``transitions`` and
    ``submit_latencies_ms`` are for the metrics."""

    writes: list[tuple[str, Job | None, object]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    work: list[WorkItem] = field(default_factory=list)
    stops: list[WorkItem] = field(default_factory=list)  # attempts the generators must stop
    discards: list[WorkItem] = field(default_factory=list)  # dead attempts whose objects go
    transitions: list[Counter] = field(default_factory=list)
    submit_latencies_ms: list[int] = field(default_factory=list)
    legacy_keys_migrated: int = 0


class JobWriter:
    """The decisions of the ``jobs`` table's single writer (see module docstring)."""

    def __init__(
        self,
        policy: JobPolicy,
        catalog: RequestCheck,
        sealer: Sealer,
        tag_of: TagOf,
        *,
        partitions: int,
        tick_seconds: float,
        expiry_sweep_seconds: float,
        index_size: int,
        clock: Clock = now_ms,
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.sealer = sealer
        self.tag_of = tag_of
        self.partitions = partitions
        self.queue_max_age_ms = int(tick_seconds * 3000)
        self.clock = clock
        self.leases = LeaseIndex(
            sweep_ms=int(expiry_sweep_seconds * 1000),
            stale_after_ms=int(tick_seconds * 3000),
            max_tracked=index_size,
        )
        self.dispatches = Dispatches(limit=index_size)
        self.queue: QueueSnapshot | None = None  # the generators' queue, refreshed by the edge

    # --- a batch of requests and reports --------------------------------------------------------

    def decide(self, batch: Sequence[Input], read: Read) -> Effects:
        """The effects of ``batch`` (in order), reading the table through ``read``."""
        effects = Effects()
        pending: dict[str, Job | None] = {}

        for item in batch:

            def current(key: str, source: object = item.source) -> Job | None:
                return pending[key] if key in pending else read(key, source)

            if item.request is not None:
                request = item.request
                if request.encryption_key is not None and not is_sealed(request.encryption_key):
                    # A producer that wrote the topic directly: seal before anything keeps it.
                    sealed = self.sealer.seal(request.encryption_key)
                    request = dataclasses.replace(request, encryption_key=sealed)
                outcome, legacy = self._on_request(request, item.partition, item.offset, current)
                self._record(outcome, item.source, legacy, request, effects, pending)
            elif item.event is not None:
                event = item.event
                if event.channel:
                    job, legacy = self._lookup(event.channel, event.request_id, current)
                else:  # written before ids were per channel: only a legacy record can match
                    job, legacy = current(event.key), event.key
                outcome = on_event(job, event, now=self.clock(), policy=self.policy)
                self._record(outcome, item.source, legacy, None, effects, pending)
        return effects

    def _lookup(
        self, channel: str, request_id: str, read: Callable[[str], Job | None]
    ) -> tuple[Job | None, str | None]:
        """The job ``request_id`` of ``channel`` and, when it is still stored under its legacy
        key (written before ids were per channel), that key, which the next write retires.

        A legacy record of *another* channel is not this job: ids are per channel.
        """
        job = read(job_key(channel, request_id))
        if job is not None:
            return job, None
        old = legacy_key(request_id)
        legacy = read(old)
        if legacy is not None and legacy.channel == channel and legacy.request_id == request_id:
            return legacy, old
        return None, None

    def _on_request(
        self,
        request: DatasetRequest,
        partition: int,
        offset: int,
        read: Callable[[str], Job | None],
    ) -> tuple[Outcome, str | None]:
        """The outcome of a request and the legacy key its job was read from (if any)."""
        identity = identify(request, self.policy)
        request_id = identity.request_id
        existing, legacy = (
            (None, None) if identity.error else self._lookup(request.channel, request_id, read)
        )
        if existing is None and identity.client_id:
            # A client id is bound to its tag's partition; one reused with another tag lands
            # elsewhere, so look in the (global, eventually consistent) read model too. Only
            # the channel's own jobs count: ids are per channel.
            elsewhere = self.tag_of(request.channel, request_id)
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
            now=self.clock(),
            policy=self.policy,
            catalog=self.catalog,
            identity=identity,
            offset=offset,
        )
        return outcome, legacy

    def _record(
        self,
        outcome: Outcome,
        source: object,
        legacy: str | None,
        request: DatasetRequest | None,
        effects: Effects,
        pending: dict[str, Job | None],
    ) -> None:
        """Add one outcome's effects. ``legacy``: the job was read from its legacy key; it is
        written under its key and the legacy one deleted after it (a tombstone), so a reader
        never misses the job, at worst sees it twice for a moment."""
        effects.transitions.append(outcome.counter)
        if outcome.rejection is not None:
            redacted = None
            if request is not None and request.encryption_key is not None:
                # The dead letter keeps the request, never its key (clear or sealed).
                redacted = dataclasses.replace(request, encryption_key=REDACTED)
            effects.dead_letters.append(DeadLetter(source, outcome.rejection, redacted))
        if outcome.job is not None:
            job = outcome.job
            effects.writes.append((job.key, job, source))
            pending[job.key] = job
            if legacy is not None and legacy != job.key:
                effects.writes.append((legacy, None, source))
                pending[legacy] = None
                self.leases.forget(job.partition, legacy)
                effects.legacy_keys_migrated += 1
            self.leases.track(job)
            if job.status == "SUBMITTED":
                if outcome.counter == "job_created":
                    effects.submit_latencies_ms.append(self.clock() - job.submitted_at)
            else:
                self.dispatches.forget(job.key)
        if outcome.work is not None:
            effects.work.append(outcome.work)
        if outcome.stop is not None:
            effects.stops.append(outcome.stop)
        if outcome.discard is not None:
            effects.discards.append(outcome.discard)

    # --- deadlines -------------------------------------------------------------------------------

    def needs_sweep(self, partition: int, now: int) -> bool:
        """Whether the next :meth:`tick` of ``partition`` needs a snapshot of its jobs."""
        return self.leases.needs_sweep(partition, now)

    def tick(
        self,
        partition: int,
        now: int,
        read: Read,
        snapshot: Iterable[tuple[str, Job]] | None = None,
        source: object = None,
    ) -> Effects:
        """Deadlines of one partition: the jobs due, each decided on its *current* state.

        ``snapshot``: every job of the partition with its table key, when :meth:`needs_sweep`
        said so (the sweep also rebuilds the deadline index); otherwise the index says which
        jobs are due. A job found in the snapshot is read again before it is decided.
        ``source``: the TICK event the writes belong to.
        """
        act_on: list[str] = []  # table keys (a legacy record's is its legacy key)
        deferred = Effects()
        if snapshot is not None:
            watched = []
            for key, job in snapshot:
                if self._check(job, now, key, deferred).job is not None:
                    act_on.append(key)
                elif not job.terminal:
                    watched.append((key, job))
            self.leases.swept(partition, now, watched)
        else:
            for key, submitted, attempt in self.leases.due(partition, now):
                # A legacy key (no "/") is not its work item's key: decided below, on the job.
                if submitted and "/" in key and self._queued(key, attempt, now):
                    # Still waiting behind busy generators: decided from the index alone.
                    deferred.transitions.append("dispatch_deferred")
                    self.leases.defer(partition, key, now + self.policy.dispatch_timeout_ms)
                else:
                    act_on.append(key)
        effects = Effects(transitions=deferred.transitions)
        pending: dict[str, Job | None] = {}
        for key in act_on:
            found = pending[key] if key in pending else read(key, source)
            if found is not None:
                outcome = self._check(found, self.clock(), key, effects)
                if outcome.job is not None:
                    legacy = None if key == found.key else key
                    self._record(outcome, source, legacy, None, effects, pending)
        return effects

    def _queued(self, key: str, attempt: int, now: int) -> bool:
        """Whether this attempt's work item (sent with the job's key) may still wait behind
        busy generators."""
        part = work_partition(key, self.partitions)
        return work_waiting(
            self.queue,
            part,
            self.dispatches.offset(key, attempt, part),
            now=now,
            max_age_ms=self.queue_max_age_ms,
        )

    def _check(self, job: Job, now: int, key: str, effects: Effects) -> Outcome:
        """:func:`on_tick` for one job (stored under ``key``), with what this writer knows of its
        work item; a deferral is counted in ``effects`` and kept in the index only."""
        waiting = job.status == "SUBMITTED" and self._queued(job.key, job.attempt, now)
        outcome = on_tick(job, now=now, policy=self.policy, work_waiting=waiting)
        if outcome.counter == "dispatch_deferred":
            effects.transitions.append("dispatch_deferred")
            self.leases.defer(job.partition, key, now + self.policy.dispatch_timeout_ms)
        return outcome

    def dispatched(self, key: str, attempt: int, partition: int, offset: int) -> None:
        """A work item was delivered at ``offset`` (the edge calls this from its delivery)."""
        self.dispatches.sent(key, attempt, partition, offset)


__all__ = ["REDACTED", "DeadLetter", "Effects", "Input", "JobWriter"]
