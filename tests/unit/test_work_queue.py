"""The rule that tells a work item queued behind busy generators from a lost one."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from app.stream.work_queue import Dispatches, QueueSnapshot, work_partition, work_waiting

NOW = 100_000


def snap(committed: dict[int, int], end: dict[int, int], at: int = NOW) -> QueueSnapshot:
    return QueueSnapshot(at, committed, end)


def test_a_known_offset_waits_until_the_generators_commit_past_it() -> None:
    s = snap({0: 10}, {0: 50})
    assert work_waiting(s, 0, 10, now=NOW, max_age_ms=5000)  # not yet finished
    assert work_waiting(s, 0, 30, now=NOW, max_age_ms=5000)  # queued
    assert not work_waiting(s, 0, 9, now=NOW, max_age_ms=5000)  # passed without STARTED: lost


def test_an_unknown_offset_waits_while_its_partition_has_a_backlog() -> None:
    assert work_waiting(snap({0: 10}, {0: 50}), 0, None, now=NOW, max_age_ms=5000)
    assert not work_waiting(snap({0: 50}, {0: 50}), 0, None, now=NOW, max_age_ms=5000)
    # Nothing committed yet: the group starts from the beginning, so everything is backlog.
    assert work_waiting(snap({}, {0: 3}), 0, None, now=NOW, max_age_ms=5000)
    assert not work_waiting(snap({}, {0: 0}), 0, None, now=NOW, max_age_ms=5000)


def test_no_snapshot_or_a_stale_one_means_redispatch() -> None:
    assert not work_waiting(None, 0, 5, now=NOW, max_age_ms=5000)
    stale = snap({0: 0}, {0: 50}, at=NOW - 5001)
    assert not work_waiting(stale, 0, 5, now=NOW, max_age_ms=5000)


def test_lag_sums_every_partition() -> None:
    assert snap({0: 10, 1: 5}, {0: 50, 1: 5, 2: 7}).lag() == 47


def test_work_partition_matches_the_producers_default_partitioner() -> None:
    partitions = list(range(6))
    for i in range(200):
        key = f"job-{i}"
        assert work_partition(key, 6) == DefaultPartitioner()(key.encode(), partitions, partitions)


def test_dispatches_remember_the_offset_of_the_current_attempt_only_and_are_bounded() -> None:
    d = Dispatches(limit=2)
    d.sent("a", 1, 0, 7)
    assert d.offset("a", 1, 0) == 7
    assert d.offset("a", 2, 0) is None and d.offset("a", 1, 1) is None
    d.sent("b", 1, 0, 8)
    d.sent("c", 1, 0, 9)
    assert len(d) == 2 and d.offset("a", 1, 0) is None  # the oldest was forgotten
    d.forget("b")
    assert d.offset("b", 1, 0) is None
