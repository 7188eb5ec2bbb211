"""CloudEvents 1.0 attributes on ``exhaust.jobs`` records, in Kafka binary mode.

A generic consumer (a router, a connector, an alerting rule) can tell a job's SUCCESS from its
PROCESSING by the record's headers alone: ``ce_type`` is ``dev.exhaust.job.<STATUS>``,
``ce_source`` ``/exhaust/<channel>``, ``ce_subject`` the request id, ``ce_time`` the change's
time, ``ce_id`` unique per change, ``ce_dataschema`` the payload's schema by fingerprint. The
payload stays the Avro record (``content-type: avro/binary``). One more header,
``exhaust-submitted-at``, repeats the record's ``submitted_at`` for the read model.

The writer's job records are table writes: Faust encodes them (through the table's codec) and
sends them to the changelog later, from a buffer, with no headers. So the codec, which holds
the job, files the headers under the bytes it produced (:class:`Annotations`), and the writer's
producer attaches them when it sends those bytes (:func:`attach`). Filed by content, a record's
headers are always its own; the store is bounded (a table write encodes its value for the
local store too, and nothing is sent for that one).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from app.domain.model import Job
from app.stream.job_columns import SUBMITTED_AT_HEADER

Headers = list[tuple[str, bytes]]
SPEC_VERSION = b"1.0"
TYPE_PREFIX = "dev.exhaust.job."
KEPT = 4096  # values whose headers wait for their send (a batch's writes, with room to spare)


def job_headers(job: Job, value: bytes) -> Headers:
    """The CloudEvents attributes of one job record whose encoded value is ``value``."""
    at = job.last_updated / 1000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    change = f"{job.channel}/{job.request_id}/{job.attempt}/{job.status}/{job.last_updated}"
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", f"{change}/{job.duplicates}".encode()),
        ("ce_type", (TYPE_PREFIX + job.status).encode()),
        ("ce_source", f"/exhaust/{job.channel}".encode()),
        ("ce_subject", job.request_id.encode()),
        ("ce_time", stamp.encode()),
        ("ce_dataschema", f"urn:exhaust:schema:JobStatus:{value[2:10].hex()}".encode()),
        ("content-type", b"avro/binary"),
        # Not a CloudEvents attribute: the record's own submitted_at, so the read model can
        # index a record from its first bytes and this header (app.stream.job_columns).
        (SUBMITTED_AT_HEADER, str(job.submitted_at).encode()),
    ]
    if job.trace_parent is not None:  # the distributed-tracing extension: the job's trace
        headers.append(("ce_traceparent", job.trace_parent.encode()))
    return headers


class Annotations:
    """Headers filed by a record's value bytes until the record is sent (bounded)."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._by_value: OrderedDict[bytes, Headers] = OrderedDict()

    def __contains__(self, value: bytes) -> bool:
        return value in self._by_value

    def add(self, value: bytes, headers: Headers) -> None:
        self._by_value[value] = headers
        if len(self._by_value) > self.kept:
            self._by_value.popitem(last=False)

    def take(self, value: bytes | None) -> Headers:
        if value is None:
            return []  # a tombstone: no event
        return self._by_value.pop(value, [])


ANNOTATIONS = Annotations()  # one per process, as the table codecs are (Faust's registry)


def attach(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A producer ``send``'s arguments after ``topic`` (``key, value, partition, timestamp,
    headers``, by position or by name) with the value's filed headers added."""
    value = args[1] if len(args) > 1 else kwargs.get("value")
    extra = ANNOTATIONS.take(value)
    if not extra:
        return args, kwargs
    if len(args) > 4:
        return (*args[:4], [*_listed(args[4]), *extra], *args[5:]), kwargs
    return args, {**kwargs, "headers": [*_listed(kwargs.get("headers")), *extra]}


def _listed(headers: Any) -> Headers:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def annotate(job: Job, value: bytes) -> None:
    """File ``job``'s headers under its encoded ``value`` (the jobs table's codec calls this)."""
    if value not in ANNOTATIONS:
        ANNOTATIONS.add(value, job_headers(job, value))


__all__ = ["ANNOTATIONS", "Annotations", "annotate", "attach", "job_headers"]
