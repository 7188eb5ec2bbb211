from __future__ import annotations

from app.domain.leases import LeaseIndex
from app.domain.model import Job


def ids(entries: list[tuple[str, bool, int]]) -> list[str]:
    return sorted(key.removeprefix("c/") for key, _, _ in entries)


def job(rid: str, status: str, lease: int | None = None, partition: int = 0) -> Job:
    return Job(
        request_id=rid, tag="t", dataset="d", channel="c", requested_by="u",
        status=status, last_updated=0, config="{}", fingerprint="f", attempt=1,  # type: ignore[arg-type]
        max_attempts=3, submitted_at=0, partition=partition, lease_expires_at=lease,
    )  # fmt: skip


def test_only_non_terminal_deadlines_are_held_and_due_when_past() -> None:
    index = LeaseIndex(sweep_ms=60_000, stale_after_ms=10_000)
    index.track(job("a", "PROCESSING", lease=100))
    index.track(job("b", "PROCESSING", lease=200))
    index.track(job("c", "SUCCESS"))
    index.track(job("d", "AWAITING_INPUT", lease=300))  # the upload deadline
    assert len(index) == 3
    assert ids(index.due(0, 150)) == ["a"]
    index.track(job("a", "SUCCESS"))  # finished: forgotten
    assert ids(index.due(0, 1_000)) == ["b", "d"] and len(index) == 2


def test_sweeps_on_first_tick_after_an_absence_and_on_schedule() -> None:
    index = LeaseIndex(sweep_ms=60_000, stale_after_ms=10_000)
    assert index.needs_sweep(0, now=1_000)  # first tick on this worker
    swept = [job("a", "PROCESSING", lease=5_000), job("x", "FAILED")]
    index.swept(0, 1_000, [(j.key, j) for j in swept])
    assert ids(index.due(0, 5_000)) == ["a"]
    assert not index.needs_sweep(0, now=6_000)  # regular tick
    assert index.needs_sweep(0, now=30_000)  # no tick for 24 s: it was owned elsewhere
    index.swept(0, 30_000, [])
    assert ids(index.due(0, 99_000)) == []
    assert not index.needs_sweep(0, now=35_000)
    for now in range(40_000, 90_000, 5_000):
        index.needs_sweep(0, now)
    assert index.needs_sweep(0, now=90_000)  # the periodic sweep (expiry of old successes)


def test_submitted_jobs_are_held_with_their_dispatch_deadline_and_can_be_deferred() -> None:
    index = LeaseIndex(sweep_ms=60_000, stale_after_ms=10_000)
    index.track(job("s", "SUBMITTED", lease=100))
    assert ids(index.due(0, 100)) == ["s"]
    index.defer(0, "c/s", 500)
    assert ids(index.due(0, 499)) == [] and ids(index.due(0, 500)) == ["s"]
    index.track(job("s", "PROCESSING", lease=900))
    assert ids(index.due(0, 899)) == [] and len(index) == 1


def test_the_index_is_bounded_and_the_sweep_finds_what_did_not_fit() -> None:
    index = LeaseIndex(sweep_ms=60_000, stale_after_ms=10_000, max_tracked=2)
    for rid in ("a", "b", "c"):
        index.track(job(rid, "SUBMITTED", lease=100))
    assert len(index) == 2 and ids(index.due(0, 100)) == ["a", "b"]
    index.track(job("a", "SUCCESS"))
    index.track(job("c", "SUBMITTED", lease=100))  # room again
    assert ids(index.due(0, 100)) == ["b", "c"] and len(index) == 2


def test_due_entries_say_whether_the_job_waits_for_dispatch_and_its_attempt() -> None:
    index = LeaseIndex(sweep_ms=60_000, stale_after_ms=10_000)
    index.track(job("s", "SUBMITTED", lease=100))
    index.track(job("p", "PROCESSING", lease=100))
    assert sorted(index.due(0, 100)) == [("c/p", False, 1), ("c/s", True, 1)]


def test_a_legacy_key_is_tracked_as_stored_and_forgotten_once_moved() -> None:
    index = LeaseIndex(sweep_ms=60_000, stale_after_ms=10_000)
    legacy = job("s", "SUBMITTED", lease=100)
    index.swept(0, 0, [("s", legacy)])  # stored under the bare id
    assert [key for key, _, _ in index.due(0, 100)] == ["s"]
    index.forget(0, "s")
    index.track(legacy)
    assert [key for key, _, _ in index.due(0, 100)] == ["c/s"] and len(index) == 1
