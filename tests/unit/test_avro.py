from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, cast

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import PoisonMessage, UnknownSchema
from app.stream.avro import MAGIC, SCHEMA_DIR, fingerprint, load_schema, registry

# Version 2 (sealed_key added). Version 1's was computed by the hand-written CRC-64 before
# fastavro's fingerprints replaced it; records carrying it are still read (schemas/history).
JOB_STATUS_FINGERPRINT = "7bc0395ee49647dd"
JOB_STATUS_V3_FINGERPRINT = "81fc76d86b231009"
JOB_STATUS_V2_FINGERPRINT = "e3b0e80e08167670"
JOB_STATUS_V1_FINGERPRINT = "37672d50e4cec447"
REQUEST: dict[str, Any] = {
    "request_id": None,
    "tag": "batch-1",
    "dataset": "demo-export",
    "channel": "acme",
    "requested_by": "u1",
    "config": '{"rows": 5}',
    "columns": ["id", "value"],
    "filters": None,
    "output": {"format": "CSV", "compression": "GZIP", "rows_per_file": 10, "partition_by": None},
    "encryption_key": None,
    "inputs": [],
    "submitted_at": 1_700_000_000_000,
    "labels": {"team": "data"},
    "await_input_until": None,
}


def test_fingerprint_matches_the_avro_specification_vector() -> None:
    # From the Avro spec test vectors: fingerprint64 of the schema "int", little-endian on the
    # wire as single-object encoding requires.
    assert fingerprint("int") == (0x7275D51A3F395C8F).to_bytes(8, "little")  # type: ignore[arg-type]


def test_fingerprints_of_the_stored_schemas_are_unchanged() -> None:
    # The bytes every record on the topics carries; a change would orphan them all.
    assert registry().schema("JobStatus").fingerprint.hex() == JOB_STATUS_FINGERPRINT
    v1 = load_schema(SCHEMA_DIR / "history" / "JobStatus.v1.avsc")
    assert v1.fingerprint.hex() == JOB_STATUS_V1_FINGERPRINT
    v2 = load_schema(SCHEMA_DIR / "history" / "JobStatus.v2.avsc")
    assert v2.fingerprint.hex() == JOB_STATUS_V2_FINGERPRINT
    v3 = load_schema(SCHEMA_DIR / "history" / "JobStatus.v3.avsc")
    assert v3.fingerprint.hex() == JOB_STATUS_V3_FINGERPRINT


def test_jobs_and_work_items_written_before_traces_are_read_without_one() -> None:
    from app.domain.model import Job, WorkItem

    job = Job("r", "t", "d", "c", "u", "SUCCESS", 1, "{}", "f", 1, 3, 1)
    old = {k: v for k, v in job.to_record().items() if k != "trace_parent"}
    v3 = load_schema(SCHEMA_DIR / "history" / "JobStatus.v3.avsc")
    assert (
        registry().decode("JobStatus", registry().encode("JobStatus", old, writer=v3))[
            "trace_parent"
        ]
        is None
    )
    item = WorkItem("r", 1, "t", "d", "c", "u", "{}", 1)
    old = {k: v for k, v in item.to_record().items() if k != "trace_parent"}
    v2 = load_schema(SCHEMA_DIR / "history" / "WorkItem.v2.avsc")
    data = registry().encode("WorkItem", old, writer=v2)
    assert registry().decode("WorkItem", data) == {**old, "trace_parent": None}


def test_jobs_written_before_request_offsets_are_read_with_none_applied() -> None:
    from app.domain.model import Job

    job = Job("r", "t", "d", "c", "u", "SUCCESS", 1, "{}", "f", 1, 3, 1)
    old = {k: v for k, v in job.to_record().items() if k != "request_offset"}
    v2 = load_schema(SCHEMA_DIR / "history" / "JobStatus.v2.avsc")
    data = registry().encode("JobStatus", old, writer=v2)
    assert registry().decode("JobStatus", data)["request_offset"] == -1


def test_jobs_and_work_items_written_before_sealed_keys_are_read_without_one() -> None:
    from app.domain.model import WorkItem

    item = WorkItem("r", 1, "t", "d", "c", "u", "{}", 1)
    old = {k: v for k, v in item.to_record().items() if k != "sealed_key"}
    v1 = load_schema(SCHEMA_DIR / "history" / "WorkItem.v1.avsc")
    data = registry().encode("WorkItem", old, writer=v1)
    assert registry().decode("WorkItem", data) == {**old, "sealed_key": None}


def test_round_trip_of_every_current_schema_is_single_object_encoded() -> None:
    data = registry().encode("DatasetRequest", REQUEST)
    assert data[:2] == MAGIC
    assert data[2:10] == registry().schema("DatasetRequest").fingerprint
    assert registry().decode("DatasetRequest", data) == REQUEST


def test_a_record_written_with_the_older_schema_version_is_read_with_defaults() -> None:
    v1 = load_schema(SCHEMA_DIR / "history" / "DatasetRequest.v1.avsc")
    old = {k: v for k, v in REQUEST.items() if k not in ("labels", "await_input_until")}
    data = registry().encode("DatasetRequest", old, writer=v1)
    assert data[2:10] == v1.fingerprint != registry().schema("DatasetRequest").fingerprint
    decoded = registry().decode("DatasetRequest", data)
    assert decoded == {**old, "labels": {}, "await_input_until": None}
    v2 = load_schema(SCHEMA_DIR / "history" / "DatasetRequest.v2.avsc")
    older = {k: v for k, v in REQUEST.items() if k != "await_input_until"}
    data = registry().encode("DatasetRequest", older, writer=v2)
    assert data[2:10] == v2.fingerprint != registry().schema("DatasetRequest").fingerprint
    assert registry().decode("DatasetRequest", data) == {**older, "await_input_until": None}


def test_plain_fastavro_with_the_avsc_file_alone_reads_our_bytes() -> None:
    raw = json.loads((SCHEMA_DIR / "DatasetRequest.avsc").read_text())
    data = registry().encode("DatasetRequest", REQUEST)
    assert data[2:10] == fingerprint(raw)
    record = cast(
        dict[str, Any],
        fastavro.schemaless_reader(io.BytesIO(data[10:]), fastavro.parse_schema(raw)),
    )
    assert record["tag"] == "batch-1"
    assert record["labels"] == {"team": "data"}


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        (b"hello world", PoisonMessage, "marker"),
        (b"", PoisonMessage, "marker"),
        (MAGIC + b"\x00" * 8 + b"body", UnknownSchema, "fingerprint"),
    ],
)
def test_garbage_is_refused(data: bytes, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        registry().decode("DatasetRequest", data)


def test_truncated_and_overlong_bodies_are_refused() -> None:
    data = registry().encode("DatasetRequest", REQUEST)
    with pytest.raises(PoisonMessage, match="undecodable"):
        registry().decode("DatasetRequest", data[:-5])
    with pytest.raises(PoisonMessage, match="trailing"):
        registry().decode("DatasetRequest", data + b"\x00\x01")


def test_a_record_of_another_type_is_refused() -> None:
    event = {"kind": "TICK", "request_id": "", "attempt": 0, "at": 1}
    data = registry().encode("JobEvent", event)
    with pytest.raises(PoisonMessage, match=r"expected a dev\.exhaust\.v1\.DatasetRequest"):
        registry().decode("DatasetRequest", data)


@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_never_raises_anything_but_poison(data: bytes) -> None:
    header = MAGIC + registry().schema("DatasetRequest").fingerprint
    with contextlib.suppress(PoisonMessage):
        registry().decode("DatasetRequest", header + data)


def test_job_status_never_has_a_field_for_the_encryption_key() -> None:
    for name in ("JobStatus.avsc", "JobEvent.avsc", "WorkItem.avsc"):
        text = (Path(SCHEMA_DIR) / name).read_text()
        assert '"encryption_key"' not in text


def test_a_projection_decodes_only_the_named_fields_of_any_writer_version() -> None:
    data = registry().encode("DatasetRequest", REQUEST)
    assert registry().decode("DatasetRequest", data, ("tag", "channel")) == {
        "tag": "batch-1",
        "channel": "acme",
    }
