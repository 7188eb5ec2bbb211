"""Which jobs a TICK must look at, without scanning the whole table every few seconds.

The index holds the deadline of every non-terminal job per partition (``Job.lease_expires_at``: the
dispatch deadline of a SUBMITTED job, the heartbeat lease of a PROCESSING one, the upload deadline
of one AWAITING_INPUT), up to ``max_tracked`` entries, so memory is bounded by configuration even
under a huge backlog; a job that does not fit is still found by the next sweep. A *sweep* (a
streaming pass over the partition's jobs in the table) rebuilds the index and also finds expired
SUCCESS jobs; it runs when a partition is new to this worker (first tick, or no tick for a while: it
was probably owned elsewhere) and otherwise every ``sweep_ms``.

A deadline can also be *deferred* in memory only (a SUBMITTED job whose work item is still
queued behind busy generators): nothing is written, the job is looked at again later.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.domain.model import Job

WATCHED = ("SUBMITTED", "PROCESSING", "AWAITING_INPUT")


class LeaseIndex:
    def __init__(self, sweep_ms: int, stale_after_ms: int, max_tracked: int = 1_000_000) -> None:
        self.sweep_ms = sweep_ms
        self.stale_after_ms = stale_after_ms
        self.max_tracked = max_tracked
        # partition -> table key (Job.key, or a legacy record's) -> (deadline, SUBMITTED?, attempt)
        self._deadlines: dict[int, dict[str, tuple[int, bool, int]]] = {}
        self._size = 0
        self._last_sweep: dict[int, int] = {}
        self._last_tick: dict[int, int] = {}

    def track(self, job: Job, key: str | None = None) -> None:
        """Record a job's new state (call on every table write); ``key`` is its table key
        (``job.key`` unless it is a legacy record)."""
        key = key or job.key
        deadlines = self._deadlines.setdefault(job.partition, {})
        before = len(deadlines)
        if job.status in WATCHED and job.lease_expires_at is not None:
            if key in deadlines or self._size < self.max_tracked:
                submitted = job.status == "SUBMITTED"
                deadlines[key] = (job.lease_expires_at, submitted, job.attempt)
        else:
            deadlines.pop(key, None)
        self._size += len(deadlines) - before

    def forget(self, partition: int, key: str) -> None:
        """A key the writer deleted (a legacy record moved to its new key)."""
        deadlines = self._deadlines.get(partition)
        if deadlines is not None and deadlines.pop(key, None) is not None:
            self._size -= 1

    def defer(self, partition: int, key: str, until: int) -> None:
        deadlines = self._deadlines.get(partition)
        if deadlines is not None and key in deadlines:
            _, submitted, attempt = deadlines[key]
            deadlines[key] = (until, submitted, attempt)

    def needs_sweep(self, partition: int, now: int) -> bool:
        last_tick = self._last_tick.get(partition)
        self._last_tick[partition] = now
        if last_tick is None or now - last_tick > self.stale_after_ms:
            return True  # new to this worker, or it was away: the index may be incomplete
        return now - self._last_sweep.get(partition, 0) >= self.sweep_ms

    def swept(self, partition: int, now: int, jobs: Iterable[tuple[str, Job]]) -> None:
        """Replace the partition's index with the deadlines among ``jobs`` (key, job)."""
        self._size -= len(self._deadlines.get(partition, {}))
        self._deadlines[partition] = {}
        for key, job in jobs:
            self.track(job, key)
        self._last_sweep[partition] = now

    def due(self, partition: int, now: int) -> list[tuple[str, bool, int]]:
        """``(key, SUBMITTED?, attempt)`` of the partition's jobs past their deadline."""
        return [
            (key, submitted, attempt)
            for key, (deadline, submitted, attempt) in self._deadlines.get(partition, {}).items()
            if deadline <= now
        ]

    def __len__(self) -> int:
        return self._size
