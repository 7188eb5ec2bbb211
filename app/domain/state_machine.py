"""The job state machine: every transition of every job, as plain functions.

The single writer of a tag partition calls these with the job's current state and applies the
returned :class:`Outcome` (write the job, dispatch the work). They never do I/O, never read the
clock and never import Faust, so every rule is unit-tested without a broker.

Deadlines: every non-terminal state has one, held in ``Job.lease_expires_at``. SUBMITTED: the
dispatch deadline; past it the job's work item is sent again (same attempt) unless the writer
knows it is still waiting in the work topic behind busy generators (``work_waiting``), so a
backlog is never dispatched twice. PROCESSING: the heartbeat lease; past it ``attempt + 1``.
AWAITING_INPUT (a request with ``await_input_until``: the client uploads its input files
first): that time; past it FAILED with ``INPUT_EXPIRED``. The same request again without
``await_input_until`` (the same parameters, so the same fingerprint) *commences* the job:
SUBMITTED and dispatched.

Fencing: a generator event names the attempt it is about. An event for another attempt, or for
a job that is already terminal, is *ignored and counted*, never applied; a late COMPLETED of a
presumed-dead attempt therefore cannot attach its outputs to the job. Such a report (COMPLETED or
FAILED) of an attempt that can never be the job's result also *discards* it: the generators
delete what it uploaded, which may have landed after the janitor's sweep of the job.

::

    request (await_input_until) ─▶ AWAITING_INPUT ─upload deadline─▶ FAILED (INPUT_EXPIRED)
                                        │ the same request without it (commence)
                                        ▼
    request ─▶ SUBMITTED ─STARTED─▶ PROCESSING ─COMPLETED─▶ SUCCESS ─expiry─▶ EXPIRED
                  ▲                     │  │                                   │
                  │ retry (attempt+1)   │  └─FAILED (final) / lease out ▶ FAILED │
                  └─────────────────────┘      CANCEL ▶ CANCELLED              │
                  └──── duplicate request of a FAILED / EXPIRED job ◀─────────┘
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.domain import dedup, identifiers, object_keys
from app.domain.errors import (
    ConfigurationError,
    ExhaustError,
    NotRetryable,
    RequestConflict,
    RequestRejected,
)
from app.domain.model import (
    DatasetRequest,
    Job,
    JobError,
    JobEvent,
    WorkItem,
    is_sealed,
)


class RequestCheck(Protocol):
    """The one thing the state machine asks of the dataset catalog: whether a request may run.

    :class:`app.catalog.types.Catalog` is the implementation; the domain defines only this shape
    so that it imports no engine (and no DuckDB) to decide a transition.
    """

    def check(
        self,
        name: str,
        channel: str,
        labels: Mapping[str, str],
        config: Any,
        columns: list[str] | None,
        filters: str | None,
        output: dict[str, Any] | None,
        encrypted: bool,
    ) -> object:
        """Raise an :class:`~app.domain.errors.ExhaustError` naming the field if it may not."""
        ...


Counter = Literal[
    "job_created",
    "job_rejected",
    "awaiting_input",
    "commenced",
    "input_expired",
    "duplicate",
    "replayed",
    "conflict",
    "resubmitted",
    "regenerated",
    "started",
    "progress",
    "succeeded",
    "retried",
    "failed",
    "cancelled",
    "expired",
    "lease_expired",
    "redispatched",
    "dispatch_deferred",
    "ignored_stale_attempt",
    "ignored_terminal",
    "ignored_unknown_job",
    "ignored_out_of_order",
    "ignored_foreign_outputs",
    "unchanged",
]


@dataclass(frozen=True, slots=True)
class JobPolicy:
    max_attempts: int = 3
    lease_ms: int = 30_000
    dispatch_timeout_ms: int = 30_000
    retention_ms: int = 7 * 24 * 3600 * 1000
    dedup_window_seconds: int = 86_400
    max_inputs: int = 100


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the writer must do: write ``job`` (if any), dispatch ``work`` (if any), tell the
    generators to stop the attempt of ``stop`` (if any: a cancelled job's) and to delete the
    objects of the dead attempt ``discard`` (if any)."""

    counter: Counter
    job: Job | None = None
    work: WorkItem | None = None
    rejection: ExhaustError | None = None
    stop: WorkItem | None = None
    discard: WorkItem | None = None


def _new_job(
    request: DatasetRequest,
    request_id: str,
    client_id: bool,
    partition: int,
    now: int,
    policy: JobPolicy,
) -> Job:
    return Job(
        request_id=request_id,
        tag=request.tag,
        dataset=request.dataset,
        channel=request.channel,
        requested_by=request.requested_by,
        status="SUBMITTED",
        last_updated=now,
        config=request.config,
        fingerprint="",
        attempt=1,
        max_attempts=policy.max_attempts,
        submitted_at=request.submitted_at,
        columns=request.columns,
        filters=request.filters,
        output=request.output,
        inputs=list(request.inputs),
        labels=dict(request.labels),
        has_encryption_key=request.encryption_key is not None,
        sealed_key=request.encryption_key if is_sealed(request.encryption_key) else None,
        client_id=client_id,
        partition=partition,
        lease_expires_at=now + policy.dispatch_timeout_ms,
        trace_parent=request.trace_parent,
    )


def _awaiting(job: Job, until: int) -> Job:
    """The job waits for its input files until ``until`` (the upload links' expiry)."""
    return job.replace(status="AWAITING_INPUT", lease_expires_at=until)


def _failed(job: Job, error: ExhaustError | JobError, now: int) -> Job:
    err = error if isinstance(error, JobError) else JobError(error.code, error.message)
    return job.replace(
        status="FAILED", error=err, last_updated=now, completed_at=now, lease_expires_at=None
    )


def _redispatch(job: Job, now: int, policy: JobPolicy) -> Job:
    """A fresh attempt: new attempt number, outputs and error of the old one cleared."""
    return job.replace(
        status="SUBMITTED",
        attempt=job.attempt + 1,
        last_updated=now,
        progress=0.0,
        outputs=[],
        manifest_key=None,
        expires_at=None,
        started_at=None,
        completed_at=None,
        execution_ms=None,
        total_rows=None,
        total_bytes=None,
        total_columns=None,
        lease_expires_at=now + policy.dispatch_timeout_ms,
        error=None,
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """Which job a request is: its id, whether the client chose it, its fingerprint."""

    request_id: str
    client_id: bool
    fingerprint: str
    error: RequestRejected | None = None  # the client's id was unusable; request_id is derived


def identify(request: DatasetRequest, policy: JobPolicy) -> Identity:
    """Compute a request's identity once; the writer looks the job up by it."""
    fingerprint = dedup.fingerprint(request)
    try:
        request_id, client_id = dedup.request_id_for(request, policy.dedup_window_seconds)
    except RequestRejected as exc:
        derived = dedup.derive_request_id(request, policy.dedup_window_seconds)
        return Identity(derived, False, fingerprint, exc)
    return Identity(request_id, client_id, fingerprint)


def on_request(
    existing: Job | None,
    request: DatasetRequest,
    *,
    partition: int,
    now: int,
    policy: JobPolicy,
    catalog: RequestCheck,
    identity: Identity | None = None,
    offset: int = -1,
) -> Outcome:
    """A request arrived on the job's tag partition; ``existing`` is the job of its id.

    ``identity`` is :func:`identify` of ``request``; pass it when already computed.
    ``offset`` is the request's offset in its partition: a job remembers the last one applied
    to it (``request_offset``), so a request at or below it is a redelivery (the writer
    restarted, or its partition moved, before the offset was committed) and changes nothing.
    Counted again, it would be its own duplicate; a failed job's "repeat" would even run again.
    """
    identity = identity or identify(request, policy)
    if (
        existing is not None
        and existing.request_id == identity.request_id
        and 0 <= offset <= existing.request_offset
    ):
        return Outcome("replayed")
    outcome = _on_new_request(existing, request, partition, now, policy, catalog, identity)
    if outcome.job is not None and offset >= 0:
        return dataclasses.replace(outcome, job=outcome.job.replace(request_offset=offset))
    return outcome


def _on_new_request(
    existing: Job | None,
    request: DatasetRequest,
    partition: int,
    now: int,
    policy: JobPolicy,
    catalog: RequestCheck,
    identity: Identity,
) -> Outcome:
    request_id, client_id, fingerprint = (
        identity.request_id,
        identity.client_id,
        identity.fingerprint,
    )
    if identity.error is not None:
        # The client's id is unusable: the job is keyed by the derived id and fails there.
        job = _new_job(request, request_id, False, partition, now, policy)
        return Outcome("job_rejected", job=_failed(job, identity.error, now))
    if existing is not None and existing.request_id == request_id:
        if existing.fingerprint != fingerprint or existing.tag != request.tag:
            reason = (
                f"request_id {request_id!r} is already used by another request "
                f"(tag {existing.tag!r}, dataset {existing.dataset!r}); the existing job is "
                "left untouched"
            )
            return Outcome("conflict", rejection=RequestConflict(reason))
        return _on_repeat(existing, request, now, policy)

    job = _new_job(request, request_id, client_id, partition, now, policy)
    job = job.replace(fingerprint=fingerprint)
    try:
        identifiers.check("channel", request.channel)
        identifiers.check("tag", request.tag)
        identifiers.check("dataset", request.dataset)
        if request.encryption_key is not None and not is_sealed(request.encryption_key):
            raise ConfigurationError("the request's encryption key was not sealed before the "
                                     "state machine")  # fmt: skip
        job = job.replace(
            inputs=object_keys.check_inputs(request.channel, request.inputs, policy.max_inputs)
        )
        dedup.canonical_json(request.filters, "filters")
        catalog.check(
            request.dataset,
            request.channel,
            request.labels,
            dedup.canonical_json(request.config, "config") or {},
            request.columns,
            request.filters,
            request.output,
            request.encryption_key is not None,
        )
    except ExhaustError as exc:
        return Outcome("job_rejected", job=_failed(job, exc, now))
    if request.await_input_until is not None:
        return Outcome("awaiting_input", job=_awaiting(job, request.await_input_until))
    return Outcome("job_created", job=job, work=WorkItem.for_job(job))


def _traced(job: Job, request: DatasetRequest) -> Job:
    """A new attempt follows the trace of the request that started it (a duplicate of a
    running attempt leaves that attempt's trace alone)."""
    if request.trace_parent is None:
        return job
    return job.replace(trace_parent=request.trace_parent)


def _on_repeat(job: Job, request: DatasetRequest, now: int, policy: JobPolicy) -> Outcome:
    """The same job was requested again (the same parameters: its fingerprint)."""
    if job.status == "AWAITING_INPUT":
        if request.await_input_until is not None:
            return Outcome("duplicate", job=job.replace(duplicates=job.duplicates + 1,
                                                        last_updated=now))  # fmt: skip
        commenced = _traced(job, request).replace(
            status="SUBMITTED",
            last_updated=now,
            lease_expires_at=now + policy.dispatch_timeout_ms,
        )
        return Outcome("commenced", job=commenced, work=WorkItem.for_job(commenced))
    counted = job.replace(duplicates=job.duplicates + 1, last_updated=now)
    expired = job.status == "EXPIRED" or (
        job.status == "SUCCESS" and job.expires_at is not None and job.expires_at <= now
    )
    if expired:
        fresh = _redispatch(_traced(counted, request), now, policy)
        return Outcome("regenerated", job=fresh, work=WorkItem.for_job(fresh))
    expired_input = job.error is not None and job.error.code == "INPUT_EXPIRED"
    if expired_input and request.await_input_until is None:
        return Outcome("duplicate", job=counted)  # only a new initialisation starts it again
    if job.status in ("FAILED", "CANCELLED") and job.attempt < job.max_attempts:
        fresh = _redispatch(_traced(counted, request), now, policy)
        if request.await_input_until is not None:  # started again from the upload step
            return Outcome("resubmitted", job=_awaiting(fresh, request.await_input_until))
        return Outcome("resubmitted", job=fresh, work=WorkItem.for_job(fresh))
    return Outcome("duplicate", job=counted)


def retry_request(job: Job, now: int) -> DatasetRequest:
    """The request that starts ``job`` again: its own parameters (its sealed key too) under its
    own id, which the writer applies as a repeat (:func:`_on_repeat`): a FAILED or CANCELLED
    job with attempts left gets a new attempt, an EXPIRED one is generated again.

    Raises :class:`NotRetryable` where that repeat would change nothing, so the caller hears
    why instead of a 202 that leads nowhere.
    """
    why = None
    if not job.terminal:
        why = f"job {job.request_id} is still {job.status}"
    elif job.status == "SUCCESS" and (job.expires_at is None or job.expires_at > now):
        why = f"job {job.request_id} succeeded; its files are there to download"
    elif job.status in ("FAILED", "CANCELLED") and job.attempt >= job.max_attempts:
        why = f"job {job.request_id} used all of its {job.max_attempts} attempts"
    elif job.error is not None and job.error.code == "INPUT_EXPIRED":
        why = f"job {job.request_id} waited for an upload that never came; start a new upload"
    elif job.has_encryption_key and job.sealed_key is None:
        why = f"job {job.request_id} has no stored key; submit it again with its key"
    if why is not None:
        raise NotRetryable(why, status=job.status)
    return DatasetRequest(
        tag=job.tag,
        dataset=job.dataset,
        channel=job.channel,
        requested_by=job.requested_by,
        submitted_at=now,
        config=job.config,
        request_id=job.request_id,
        columns=job.columns,
        filters=job.filters,
        output=job.output,
        encryption_key=job.sealed_key,
        inputs=list(job.inputs),
        labels=dict(job.labels),
    )


def on_event(job: Job | None, event: JobEvent, *, now: int, policy: JobPolicy) -> Outcome:
    """A generator (or the API) reported on a job. Fenced by attempt and terminal state."""
    if job is None:
        return Outcome("ignored_unknown_job")
    if event.kind == "CANCEL":
        if job.terminal:
            return Outcome("ignored_terminal")
        cancelled = job.replace(
            status="CANCELLED", last_updated=now, completed_at=now, lease_expires_at=None
        )
        # A dispatched attempt (queued or running) is stopped where it runs; a job still
        # waiting for its input has no work item anywhere.
        stop = WorkItem.for_job(job) if job.status in ("SUBMITTED", "PROCESSING") else None
        return Outcome("cancelled", job=cancelled, stop=stop)
    if job.terminal:
        return Outcome("ignored_terminal", discard=_dead_attempt(job, event))
    if event.attempt != job.attempt:
        return Outcome("ignored_stale_attempt", discard=_dead_attempt(job, event))

    lease = now + policy.lease_ms
    if event.kind == "STARTED":
        if job.status != "SUBMITTED":
            return Outcome("ignored_out_of_order")  # a redelivered STARTED of this attempt
        started = job.replace(
            status="PROCESSING",
            started_at=event.at,
            attempts=job.attempts + 1,
            last_updated=now,
            lease_expires_at=lease,
        )
        return Outcome("started", job=started)
    if event.kind == "PROGRESS":
        if job.status != "PROCESSING":
            return Outcome("ignored_out_of_order")
        progressed = job.replace(
            progress=max(job.progress, event.progress or 0.0),
            last_updated=now,
            lease_expires_at=lease,
        )
        return Outcome("progress", job=progressed)
    if event.kind == "COMPLETED":
        prefixes = object_keys.attempt_prefixes(job.channel, job.dataset, job.request_id,
                                                job.attempt)  # fmt: skip
        keys = [o.key for o in event.outputs]
        if event.manifest_key is not None:
            keys.append(event.manifest_key)
        if not any(  # the attempt's own prefix, private or public, for all of its files
            all(object_keys.is_output_of(key, prefix) for key in keys) for prefix in prefixes
        ):
            # Only a producer that wrote job-events directly can name other keys: the job
            # would hand out links to them. Ignored; the real attempt still reports.
            return Outcome("ignored_foreign_outputs")
        done = job.replace(
            status="SUCCESS",
            progress=1.0,
            outputs=list(event.outputs),
            manifest_key=event.manifest_key,
            total_rows=event.total_rows,
            total_bytes=event.total_bytes,
            total_columns=event.total_columns,
            execution_ms=event.execution_ms,
            completed_at=now,
            last_updated=now,
            expires_at=now + policy.retention_ms,
            lease_expires_at=None,
            error=None,
        )
        return Outcome("succeeded", job=done)
    if event.kind == "FAILED":
        error = event.error or JobError("GENERATION_FAILED", "generation failed")
        if event.retryable and job.attempt < job.max_attempts:
            retry = _redispatch(job, now, policy).replace(error=error)
            return Outcome("retried", job=retry, work=WorkItem.for_job(retry))
        return Outcome("failed", job=_failed(job, error, now))
    return Outcome("unchanged")


DEAD_AT_ITS_ATTEMPT = ("FAILED", "CANCELLED", "EXPIRED")  # statuses that keep no attempt's files


def _dead_attempt(job: Job, event: JobEvent) -> WorkItem | None:
    """The attempt a fenced ``event`` ended, when it can never be ``job``'s result: an attempt
    before the job's current one (attempt numbers only grow), or the current one of a job that
    ended without it. Its generator reported after its last upload, so whatever it wrote is in
    the store now, perhaps after the janitor swept the job: the generators delete it.

    Only the end of an attempt (COMPLETED, FAILED) discards: a STARTED or PROGRESS comes from an
    attempt still writing, whose own end will discard it. The live attempt of a SUCCESS (a second
    copy of it reporting) is never discarded, nor an attempt the job has not reached.
    """
    if event.kind not in ("COMPLETED", "FAILED") or event.attempt < 1:
        return None
    dead = event.attempt < job.attempt or (
        event.attempt == job.attempt and job.status in DEAD_AT_ITS_ATTEMPT
    )
    if not dead:
        return None
    # The discard needs the attempt's names only: the job's sealed key does not travel with it.
    return dataclasses.replace(WorkItem.for_job(job), attempt=event.attempt, sealed_key=None)


def dispatch_deadline(job: Job, policy: JobPolicy) -> int:
    """When a SUBMITTED job must have started (records written before deadlines: last update)."""
    if job.lease_expires_at is not None:
        return job.lease_expires_at
    return job.last_updated + policy.dispatch_timeout_ms


def on_tick(job: Job, *, now: int, policy: JobPolicy, work_waiting: bool = False) -> Outcome:
    """Periodic check of one job by its writer: lost work items, dead attempts, old outputs.

    ``work_waiting`` is what the writer knows of the job's work item: True when it may still be
    queued in the work topic behind busy generators (see :mod:`app.stream.work_queue`). A SUBMITTED
    job past its dispatch deadline is then left alone (``dispatch_deferred``, nothing written);
    otherwise its work item is sent again for the *same* attempt (``redispatched``): generators and
    object keys are idempotent per attempt, and their reports are fenced by it.
    """
    if job.status == "SUBMITTED":
        if dispatch_deadline(job, policy) > now:
            return Outcome("unchanged")
        if work_waiting:
            return Outcome("dispatch_deferred")
        again = job.replace(lease_expires_at=now + policy.dispatch_timeout_ms, last_updated=now)
        return Outcome("redispatched", job=again, work=WorkItem.for_job(again))
    if job.status == "PROCESSING" and job.lease_expires_at is not None:
        if job.lease_expires_at > now:
            return Outcome("unchanged")
        if job.attempt < job.max_attempts:
            retry = _redispatch(job, now, policy).replace(
                error=JobError("LEASE_EXPIRED", f"attempt {job.attempt} stopped reporting")
            )
            return Outcome("lease_expired", job=retry, work=WorkItem.for_job(retry))
        error = JobError("LEASE_EXPIRED", f"timed out after {job.attempt} attempts")
        return Outcome("failed", job=_failed(job, error, now))
    if job.status == "AWAITING_INPUT" and job.lease_expires_at is not None:
        if job.lease_expires_at > now:
            return Outcome("unchanged")
        error = JobError(
            "INPUT_EXPIRED",
            "the upload links expired before the job was commenced; start again from the "
            "initialisation",
        )
        return Outcome("input_expired", job=_failed(job, error, now))
    if job.status == "SUCCESS" and job.expires_at is not None and job.expires_at <= now:
        return Outcome("expired", job=job.replace(status="EXPIRED", last_updated=now))
    return Outcome("unchanged")
