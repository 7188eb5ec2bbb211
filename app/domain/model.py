"""The records of the event core as typed values, mirroring the ``.avsc`` files.

Records travel as dicts (what fastavro reads and writes); inside the service they are these
small dataclasses. ``from_record``/``to_record`` are the only conversions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

JobState = Literal[
    "SUBMITTED", "AWAITING_INPUT", "PROCESSING", "SUCCESS", "FAILED", "CANCELLED", "EXPIRED"
]
TERMINAL: frozenset[str] = frozenset({"SUCCESS", "FAILED", "CANCELLED", "EXPIRED"})
JOB_STATES: tuple[str, ...] = get_args(JobState)

SEALED_PREFIX = "sealed:v1:"


def job_key(channel: str, request_id: str) -> str:
    """A job's key in the table, the jobs topic, the work topic and the read model.

    Ids are per channel: the same ``request_id`` from two channels names two unrelated jobs, so
    everything that stores or routes a job is keyed by both. ``/`` is outside the identifier
    rule (:mod:`app.domain.identifiers`), so the key is unambiguous. Records written before ids
    were per channel are keyed by ``request_id`` alone (:func:`legacy_key`); the writer moves
    each to its new key the next time it writes the job (docs/architecture.md, "Migrations").
    """
    return f"{channel}/{request_id}"


def legacy_key(request_id: str) -> str:
    """The key of a job record written before ids were per channel."""
    return request_id


def is_sealed(value: str | None) -> bool:
    """Whether an encryption key is in its sealed form (see :mod:`app.sealing`)."""
    return value is not None and value.startswith(SEALED_PREFIX)


EventKind = Literal["STARTED", "PROGRESS", "COMPLETED", "FAILED", "CANCEL", "TICK"]


@dataclass(frozen=True, slots=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class OutputFile:
    key: str
    rows: int
    bytes: int
    sha256: str
    period: str | None = None
    content_type: str = "application/octet-stream"


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def output_record(o: OutputFile) -> dict[str, Any]:
    return {
        "key": o.key,
        "rows": o.rows,
        "bytes": o.bytes,
        "sha256": o.sha256,
        "period": o.period,
        "content_type": o.content_type,
    }


def _flat_record(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A record's fields as a dict, nested outputs/error as dicts. On the hot path of every
    event: ``dataclasses.asdict`` deep-copies and costs ~3x more."""
    record = {name: getattr(obj, name) for name in names}
    if "outputs" in record:
        record["outputs"] = [output_record(o) for o in record["outputs"]]
    if "error" in record:
        error = record["error"]
        record["error"] = None if error is None else {"code": error.code, "message": error.message}
    return record


def _with_nested(record: dict[str, Any]) -> dict[str, Any]:
    """A record's fields with its nested ``outputs`` and ``error`` records as values."""
    values = dict(record)
    values["outputs"] = [OutputFile(**o) for o in record.get("outputs") or []]
    values["error"] = JobError(**record["error"]) if record.get("error") else None
    return values


@dataclass(frozen=True, slots=True)
class DatasetRequest:
    tag: str
    dataset: str
    channel: str
    requested_by: str
    submitted_at: int
    config: str = "{}"
    request_id: str | None = None
    columns: list[str] | None = None
    filters: str | None = None
    output: dict[str, Any] | None = None
    encryption_key: str | None = None
    inputs: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    # Set: wait in AWAITING_INPUT for the inputs until then (epoch ms); see the state machine.
    await_input_until: int | None = None
    # Not a field of the record: the context of the writer's decision on it (app.tracing).
    trace_parent: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DatasetRequest:
        return cls(**record)

    def to_record(self) -> dict[str, Any]:
        return _flat_record(self, _REQUEST_FIELDS)

    def __repr__(self) -> str:  # never show the encryption key
        key = "***" if self.encryption_key else None
        return (
            f"DatasetRequest(request_id={self.request_id!r}, tag={self.tag!r}, "
            f"dataset={self.dataset!r}, channel={self.channel!r}, encryption_key={key})"
        )


@dataclass(frozen=True, slots=True)
class Job:
    """One job's latest state: a ``JobStatus`` record."""

    request_id: str
    tag: str
    dataset: str
    channel: str
    requested_by: str
    status: JobState
    last_updated: int
    config: str
    fingerprint: str
    attempt: int
    max_attempts: int
    submitted_at: int
    columns: list[str] | None = None
    filters: str | None = None
    output: dict[str, Any] | None = None
    inputs: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    has_encryption_key: bool = False
    sealed_key: str | None = None  # the encryption key, sealed (app/sealing.py); never clear
    client_id: bool = False
    partition: int = -1
    attempts: int = 0
    duplicates: int = 0
    request_offset: int = -1  # the last request applied (exhaust.requests, the job's partition)
    progress: float = 0.0
    outputs: list[OutputFile] = field(default_factory=list)
    manifest_key: str | None = None
    expires_at: int | None = None
    started_at: int | None = None
    completed_at: int | None = None
    execution_ms: int | None = None
    total_rows: int | None = None
    total_bytes: int | None = None
    total_columns: int | None = None
    lease_expires_at: int | None = None
    error: JobError | None = None
    trace_parent: str | None = None  # the attempt's trace (app.tracing)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def key(self) -> str:
        return job_key(self.channel, self.request_id)

    def replace(self, **changes: Any) -> Job:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        return cls(**_with_nested(record))

    def to_record(self) -> dict[str, Any]:
        return _flat_record(self, _JOB_FIELDS)


@dataclass(frozen=True, slots=True)
class JobEvent:
    kind: EventKind
    request_id: str
    attempt: int
    at: int
    worker: str = ""
    channel: str = ""  # empty only in events written before ids were per channel
    progress: float | None = None
    outputs: list[OutputFile] = field(default_factory=list)
    manifest_key: str | None = None
    total_rows: int | None = None
    total_bytes: int | None = None
    total_columns: int | None = None
    execution_ms: int | None = None
    error: JobError | None = None
    retryable: bool = False

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobEvent:
        return cls(**_with_nested(record))

    @property
    def key(self) -> str:
        """The key of the job this event is about (the legacy key when it names no channel)."""
        return job_key(self.channel, self.request_id) if self.channel else self.request_id

    def to_record(self) -> dict[str, Any]:
        return _flat_record(self, _EVENT_FIELDS)


@dataclass(frozen=True, slots=True)
class WorkItem:
    request_id: str
    attempt: int
    tag: str
    dataset: str
    channel: str
    requested_by: str
    config: str
    submitted_at: int
    columns: list[str] | None = None
    filters: str | None = None
    output: dict[str, Any] | None = None
    inputs: list[str] = field(default_factory=list)
    sealed_key: str | None = None
    trace_parent: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> WorkItem:
        return cls(**record)

    def to_record(self) -> dict[str, Any]:
        return _flat_record(self, _WORK_FIELDS)

    def __repr__(self) -> str:  # never show the sealed key either
        return f"WorkItem(request_id={self.request_id!r}, attempt={self.attempt})"

    @classmethod
    def for_job(cls, job: Job) -> WorkItem:
        return cls(
            request_id=job.request_id,
            attempt=job.attempt,
            tag=job.tag,
            dataset=job.dataset,
            channel=job.channel,
            requested_by=job.requested_by,
            config=job.config,
            submitted_at=job.submitted_at,
            columns=job.columns,
            filters=job.filters,
            output=job.output,
            inputs=list(job.inputs),
            sealed_key=job.sealed_key,
            trace_parent=job.trace_parent,
        )

    @property
    def key(self) -> str:
        return job_key(self.channel, self.request_id)

    @property
    def prefix(self) -> str:
        """Deterministic object-key prefix of this attempt's outputs."""
        return attempt_prefix(self.channel, self.dataset, self.request_id, self.attempt)


PUBLIC_PREFIX = "public/"


def attempt_prefix(
    channel: str, dataset: str, request_id: str, attempt: int, public: bool = False
) -> str:
    """Where an attempt's outputs are written: ``{channel}/{dataset}/{request_id}/{attempt}/``,
    under :data:`PUBLIC_PREFIX` for a type whose outputs are public, so the public base URL
    (a CDN, a public-read policy) is scoped to that prefix and reaches nothing else."""
    own = f"{channel}/{dataset}/{request_id}/{attempt}/"
    return PUBLIC_PREFIX + own if public else own


_REQUEST_FIELDS = tuple(n for n in _names(DatasetRequest) if n != "trace_parent")
_JOB_FIELDS = _names(Job)
_EVENT_FIELDS = _names(JobEvent)
_WORK_FIELDS = _names(WorkItem)
