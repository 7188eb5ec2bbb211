from __future__ import annotations

from app.stream.work_consumer import PartitionProgress


def test_commits_only_past_a_contiguous_finished_prefix() -> None:
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.take(offset)
    assert progress.finish(12) is None  # 10 and 11 still running
    assert progress.finish(10) == 11
    assert progress.finish(11) == 13  # 10, 11, 12 done: commit up to 13
    assert progress.finish(13) == 14
    assert progress.pending == {}


def test_a_crash_before_commit_replays_exactly_the_unfinished_items() -> None:
    progress = PartitionProgress()
    for offset in range(5):
        progress.take(offset)
    committed = None
    for offset in (0, 1, 3):
        committed = progress.finish(offset) or committed
    assert committed == 2  # restart resumes at 2: items 2 and 4 (and 3, harmlessly) rerun
