"""CloudEvents attributes of job records: derived from the job, filed by value, attached at send."""

from __future__ import annotations

from app.domain.model import Job
from app.stream import cloud_events
from app.stream.avro import registry
from app.stream.cloud_events import Annotations, attach, job_headers

JOB = Job(
    request_id="r-1", tag="t", dataset="demo-export", channel="acme", requested_by="u",
    status="SUCCESS", last_updated=1_796_170_563_184, config="{}", fingerprint="f",
    attempt=2, max_attempts=3, submitted_at=1,
)  # fmt: skip


def test_the_headers_route_a_job_without_decoding_it() -> None:
    value = registry().encode("JobStatus", JOB.to_record())
    headers = dict(job_headers(JOB, value))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"dev.exhaust.job.SUCCESS"
    assert headers["ce_source"] == b"/exhaust/acme" and headers["ce_subject"] == b"r-1"
    assert headers["ce_time"] == b"2026-12-02T00:16:03.184Z"
    assert headers["ce_dataschema"].endswith(value[2:10].hex().encode())
    assert headers["ce_id"] == f"acme/r-1/2/SUCCESS/{JOB.last_updated}/0".encode()
    assert headers["content-type"] == b"avro/binary"


def test_filed_headers_are_taken_once_by_their_own_value_and_the_store_is_bounded() -> None:
    annotations = Annotations(kept=2)
    annotations.add(b"one", [("ce_type", b"1")])
    annotations.add(b"two", [("ce_type", b"2")])
    annotations.add(b"three", [("ce_type", b"3")])  # "one" goes: a write never sent
    assert annotations.take(b"one") == [] and annotations.take(b"two") == [("ce_type", b"2")]
    assert annotations.take(b"two") == [] and annotations.take(None) == []


def test_a_send_gets_its_values_headers_by_position_or_by_name() -> None:
    value = registry().encode("JobStatus", JOB.to_record())
    cloud_events.annotate(JOB, value)
    cloud_events.annotate(JOB, value)  # the table encodes for its store too: filed once
    args, kwargs = attach((b"key", value), {"partition": 1, "headers": {"a": b"b"}})
    assert args == (b"key", value) and kwargs["headers"][0] == ("a", b"b")
    assert dict(kwargs["headers"])["ce_type"] == b"dev.exhaust.job.SUCCESS"
    cloud_events.annotate(JOB, value)
    args, _ = attach((b"key", value, None, None, None), {})
    assert dict(args[4])["ce_subject"] == b"r-1"
    assert attach((b"key", value, None, None, None), {}) == ((b"key", value, None, None, None), {})
