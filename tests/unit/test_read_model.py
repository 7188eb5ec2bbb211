from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.domain.errors import InvalidConfig
from app.domain.model import Job
from app.stream.read_model import Change, IdIndex, ReadModel


def job(
    request_id: str, channel: str = "acme", tag: str = "t1", at: int = 1, status: str = "SUBMITTED"
) -> Job:
    return Job(
        request_id=request_id, tag=tag, dataset="demo-export", channel=channel,
        requested_by="u", status=status, last_updated=at, config="{}", fingerprint="f",  # type: ignore[arg-type]
        attempt=1, max_attempts=3, submitted_at=at,
    )  # fmt: skip


def test_latest_state_wins_and_offsets_are_remembered(tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite3"
    model = ReadModel(path, "jobs")
    model.apply(
        [
            Change(0, 0, "a", job("a")),
            Change(0, 1, "a", job("a", status="SUCCESS")),
            Change(2, 7, "b", job("b")),
        ]
    )
    model.close()
    reopened = ReadModel(path, "jobs")
    assert reopened.offsets() == {0: 2, 2: 8}
    found = reopened.get("a")
    assert found is not None and found.status == "SUCCESS"
    reopened.apply([Change(0, 2, "a", None)])  # tombstone
    assert reopened.get("a") is None and reopened.count() == 1


def test_listing_is_per_channel_newest_first_and_paginates(tmp_path: Path) -> None:
    model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    model.apply(
        [Change(0, i, f"j{i}", job(f"j{i}", at=i, tag="t1" if i % 2 else "t2")) for i in range(10)]
    )
    model.apply([Change(1, 0, "other", job("other", channel="evil", at=99))])
    seen: list[str] = []
    cursor = None
    while True:
        page = model.list_records("acme", limit=3, cursor=cursor)
        seen += [r["request_id"] for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"j{i}" for i in range(9, -1, -1)]
    assert [r["request_id"] for r in model.list_records("acme", tag="t1", limit=50).records] == [
        "j9",
        "j7",
        "j5",
        "j3",
        "j1",
    ]
    assert [r["request_id"] for r in model.list_records("evil", limit=50).records] == ["other"]
    assert model.list_records("acme", status="SUCCESS", limit=50).records == []


def test_a_forged_cursor_is_a_clear_error(tmp_path: Path) -> None:
    model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    with pytest.raises(InvalidConfig, match="cursor"):
        model.list_records("acme", cursor="not-a-cursor!")


def test_the_id_index_keeps_each_jobs_tag_and_its_offsets(tmp_path: Path) -> None:
    index = IdIndex(tmp_path / "ids.sqlite3", "jobs")
    index.apply([Change(0, 4, "a", {"request_id": "a", "tag": "t1"}),
                 Change(1, 9, "b", {"request_id": "b", "tag": "t2"})])  # fmt: skip
    index.apply([Change(0, 5, "a", {"request_id": "a", "tag": "t1"}), Change(1, 10, "b", None)])
    assert index.tag_of("a") == "t1" and index.tag_of("b") is None
    assert index.offsets() == {0: 6, 1: 11}
    index.close()


def test_a_file_of_another_layout_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE jobs (request_id TEXT, record TEXT); PRAGMA user_version=1;")
    old.close()
    model = ReadModel(path, "jobs")
    assert model.count() == 0 and model.offsets() == {}  # rebuilt from offset zero
    model.close()
