"""The read model's columns read from a record's first bytes agree with fastavro's decode, and
anything the short path cannot read falls back to it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.domain.model import Job
from app.stream.avro import SCHEMA_DIR, load_schema, registry
from app.stream.cloud_events import job_headers
from app.stream.job_columns import COLUMNS, SUBMITTED_AT_HEADER, JobColumns
from tests.unit.test_avro import REQUEST

STATES = ["SUBMITTED", "AWAITING_INPUT", "PROCESSING", "SUCCESS", "FAILED", "CANCELLED", "EXPIRED"]
READER = JobColumns(registry())


def job(**changes: object) -> Job:
    fields: dict[str, object] = dict(
        request_id="r-1", tag="t", dataset="demo-export", channel="acme", requested_by="u",
        status="SUCCESS", last_updated=1_796_170_563_184, config="{}", fingerprint="f",
        attempt=1, max_attempts=3, submitted_at=1_796_170_000_000,
    )  # fmt: skip
    fields.update(changes)
    return Job(**fields)  # type: ignore[arg-type]


def written(value: Job) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A record as the writer sends it: its value and its headers."""
    data = registry().encode("JobStatus", value.to_record())
    return data, job_headers(value, data)


def expected(data: bytes) -> dict[str, object]:
    record = registry().decode("JobStatus", data)
    return {name: record[name] for name in COLUMNS}


text = st.text(max_size=300)  # any unicode, long enough for multi-byte lengths
epoch = st.integers(min_value=-(2**62), max_value=2**62)


@given(text, text, text, text, text, st.sampled_from(STATES), epoch, st.integers(0, 2**53))
def test_the_columns_agree_with_fastavro_for_any_job(
    request_id: str, tag: str, dataset: str, channel: str, by: str, status: str, updated: int,
    submitted: int,
) -> None:  # fmt: skip
    value = job(
        request_id=request_id, tag=tag, dataset=dataset, channel=channel, requested_by=by,
        status=status, last_updated=updated, submitted_at=submitted,
    )  # fmt: skip
    data, headers = written(value)
    assert READER.read(data, headers) == expected(data)


def test_every_stored_job_status_version_is_read_the_short_way() -> None:
    record = {k: v for k, v in job().to_record().items() if k != "trace_parent"}
    for version in ("v1", "v2", "v3"):
        writer = load_schema(SCHEMA_DIR / "history" / f"JobStatus.{version}.avsc")
        old = {k: v for k, v in record.items() if k in {f["name"] for f in writer.parsed["fields"]}}
        data = registry().encode("JobStatus", old, writer=writer)
        headers = [(SUBMITTED_AT_HEADER, str(record["submitted_at"]).encode())]
        assert READER.read(data, headers) == expected(data), version


def test_without_the_header_the_record_is_left_to_fastavro() -> None:
    data, headers = written(job())
    plain = [(name, value) for name, value in headers if name != SUBMITTED_AT_HEADER]
    assert READER.read(data, plain) is None
    assert READER.read(data, None) is None
    # The writer's id index needs no submitted_at: it reads without the header.
    columns = READER.read(data, plain, with_submitted_at=False)
    assert columns is not None and columns["tag"] == "t" and columns["submitted_at"] is None


def test_a_header_that_is_not_an_epoch_is_left_to_fastavro() -> None:
    data, _ = written(job())
    for bad in (b"", b"-1", b"1e9", b"12 ", "١٢".encode(), b"9" * 19):
        assert READER.read(data, [(SUBMITTED_AT_HEADER, bad)]) is None, bad


def test_another_record_type_or_an_unknown_schema_is_left_to_fastavro() -> None:
    request = registry().encode("DatasetRequest", REQUEST)
    headers = [(SUBMITTED_AT_HEADER, b"1")]
    assert READER.read(request, headers) is None
    data, headers = written(job())
    assert READER.read(b"\xc3\x01" + b"\x00" * 8 + data[10:], headers) is None
    assert READER.read(b"\x00\x00" + data[2:], headers) is None  # no single-object marker


@given(st.binary(max_size=60))
def test_a_prefix_that_does_not_parse_is_left_to_fastavro(body: bytes) -> None:
    """Any bytes after a known fingerprint: columns that fastavro would read too, or None."""
    data, headers = written(job())
    hostile = data[:10] + body
    columns = READER.read(hostile, headers)
    if columns is not None:
        assert set(columns) == set(COLUMNS)
        assert columns["status"] in STATES
        assert all(isinstance(columns[k], str) for k in ("request_id", "tag", "channel"))


def test_lengths_past_the_record_or_negative_are_refused() -> None:
    data, headers = written(job(request_id="abc"))
    # request_id's length is its first byte: 3 → zig-zag 6. Claim 64 bytes (128), then -1 (1).
    assert READER.read(data[:10] + b"\x80\x01" + data[11:], headers) is None
    assert READER.read(data[:10] + b"\x01" + data[11:], headers) is None
    assert READER.read(data[:10] + b"\xff" * 12, headers) is None  # a varint without an end


def test_a_string_that_is_not_utf8_is_refused() -> None:
    data, headers = written(job(request_id="ab"))
    assert READER.read(data[:11] + b"\xff\xfe" + data[13:], headers) is None


def test_the_writer_sends_the_header_with_every_job_record() -> None:
    _, headers = written(job(submitted_at=42))
    assert (SUBMITTED_AT_HEADER, b"42") in headers
