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
    found = reopened.get("acme", "a")
    assert found is not None and found.status == "SUCCESS"
    reopened.apply([Change(0, 2, "a", None)])  # tombstone
    assert reopened.get("acme", "a") is None and reopened.count() == 1


def test_ids_are_per_channel_one_id_in_two_channels_is_two_jobs(tmp_path: Path) -> None:
    model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    mine, theirs = job("same", channel="acme", tag="t1"), job("same", channel="evil", tag="t9")
    model.apply([Change(0, 0, mine.key, mine), Change(1, 0, theirs.key, theirs)])
    found, other = model.get("acme", "same"), model.get("evil", "same")
    assert found is not None and found.tag == "t1" and other is not None and other.tag == "t9"
    assert model.get("nobody", "same") is None and model.tag_of("acme", "same") == "t1"
    model.apply([Change(1, 1, theirs.key, None)])  # one channel's tombstone: the other's stays
    assert model.get("evil", "same") is None and model.get("acme", "same") is not None


def test_a_legacy_record_reads_until_its_moved_copy_and_tombstone_replace_it(
    tmp_path: Path,
) -> None:
    """Records written before ids were per channel are keyed by the bare id."""
    model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    model.apply([Change(0, 0, "old", job("old", at=1))])  # the legacy key
    found = model.get("acme", "old")
    assert found is not None and model.get("evil", "old") is None
    moved = job("old", at=1, status="SUCCESS").replace(last_updated=5)
    model.apply([Change(0, 1, moved.key, moved)])  # the writer's new key first ...
    found = model.get("acme", "old")
    assert found is not None and found.status == "SUCCESS"  # the newer state wins
    model.apply([Change(0, 2, "old", None)])  # ... then the legacy key's tombstone
    found = model.get("acme", "old")
    assert found is not None and found.status == "SUCCESS" and model.count() == 1


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
    a = {"request_id": "a", "channel": "acme", "tag": "t1"}
    index.apply([Change(0, 4, "acme/a", a),
                 Change(1, 9, "acme/b", {"request_id": "b", "channel": "acme", "tag": "t2"}),
                 Change(1, 10, "c", {"request_id": "c", "channel": "acme", "tag": "t3"})])  # fmt: skip
    index.apply([Change(0, 5, "acme/a", a), Change(1, 11, "acme/b", None)])
    assert index.tag_of("acme", "a") == "t1" and index.tag_of("acme", "b") is None
    assert index.tag_of("evil", "a") is None  # ids are per channel
    assert index.tag_of("acme", "c") == "t3"  # a legacy record (keyed by the bare id)
    assert index.offsets() == {0: 6, 1: 12}
    index.close()


def test_a_file_of_another_layout_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE jobs (request_id TEXT, record TEXT); PRAGMA user_version=1;")
    old.close()
    model = ReadModel(path, "jobs")
    assert model.count() == 0 and model.offsets() == {}  # rebuilt from offset zero
    model.close()


def test_a_listing_window_is_part_of_the_query(tmp_path: Path) -> None:
    model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    model.apply([Change(0, i, f"acme/j{i}", job(f"j{i}", at=i)) for i in range(100)])
    page = model.list_records("acme", limit=5, submitted_from=10, submitted_to=20)
    assert [r["request_id"] for r in page.records] == ["j20", "j19", "j18", "j17", "j16"]
    assert model.list_records("acme", limit=5, submitted_to=-1).records == []
