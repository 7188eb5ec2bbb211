"""The read-model feeder turns records of the jobs topic into changes: the writer's records the
short way (columns from the first bytes and a header), others through fastavro, undecodable
ones skipped; and it gathers records for as long as its materialization can wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord

from app.domain.model import Job
from app.metrics import Metrics
from app.settings import Settings
from app.stream.avro import registry
from app.stream.cloud_events import job_headers
from app.stream.feeder import ReadModelFeeder
from app.stream.job_columns import SUBMITTED_AT_HEADER
from app.stream.read_model import IdIndex, ReadModel


def job(request_id: str, submitted_at: int) -> Job:
    return Job(
        request_id=request_id, tag="t", dataset="demo-export", channel="acme", requested_by="u",
        status="PROCESSING", last_updated=submitted_at + 5, config="{}", fingerprint="f",
        attempt=1, max_attempts=3, submitted_at=submitted_at,
    )  # fmt: skip


def message(offset: int, key: str, value: bytes | None, headers: Any = ()) -> Any:
    return ConsumerRecord(
        "jobs", 0, offset, 0, 0, key.encode(), value, None, len(value or b""), 0, tuple(headers)
    )


def feeder(tmp_path: Path, model: type[ReadModel] | type[IdIndex] = ReadModel) -> ReadModelFeeder:
    settings = Settings(state_dir=tmp_path)
    return ReadModelFeeder(settings, model(tmp_path / "model.sqlite3", "jobs"), Metrics())


def test_the_writers_records_with_or_without_the_header_give_the_same_rows(
    tmp_path: Path,
) -> None:
    first, second = job("a", 1_000), job("b", 2_000)
    one = registry().encode("JobStatus", first.to_record())
    two = registry().encode("JobStatus", second.to_record())
    headers = job_headers(first, one)
    assert any(name == SUBMITTED_AT_HEADER for name, _ in headers)
    messages = [
        message(0, "acme/a", one, headers),  # as the writer sends it
        message(1, "acme/b", two),  # without headers: decoded by fastavro
        message(2, "acme/c", b"\xc3\x01garbage"),  # undecodable: skipped, offset advanced
    ]
    fed = feeder(tmp_path)
    changes = fed._changes(messages)
    assert [c.skip for c in changes] == [False, False, True]
    fed.read_model.apply(changes)
    model = fed.read_model
    assert isinstance(model, ReadModel)
    assert model.get("acme", "a") == first and model.get("acme", "b") == second
    assert model.offsets() == {0: 3}
    page = model.list_records("acme", limit=10)
    assert [r["request_id"] for r in page.records] == ["b", "a"]  # newest submitted first


def test_the_read_model_is_fed_promptly_and_the_id_index_in_larger_transactions(
    tmp_path: Path,
) -> None:
    """The API's reads (and a profile's read-your-writes) wait for the read model: it gathers
    20 ms of records per transaction, the writer's id index 250 ms."""
    api = feeder(tmp_path / "api")
    writer = feeder(tmp_path / "writer", IdIndex)
    assert (api.linger, api.model) == (0.02, "read_model")
    assert (writer.linger, writer.model) == (0.25, "id_index")
