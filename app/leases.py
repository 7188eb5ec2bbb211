"""Which jobs a TICK must look at, without scanning the whole table every few seconds.

The index holds the lease deadline of every PROCESSING job per partition: that is bounded by
the work in flight, not by the number of jobs. A *sweep* (a streaming pass over the partition's
jobs in the table) rebuilds it and also finds expired SUCCESS jobs; it runs when a partition is
new to this worker (first tick, or no tick for a while: it was probably owned elsewhere) and
otherwise every ``sweep_ms``.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.model import Job


class LeaseIndex:
    def __init__(self, sweep_ms: int, stale_after_ms: int) -> None:
        self.sweep_ms = sweep_ms
        self.stale_after_ms = stale_after_ms
        self._leases: dict[int, dict[str, int]] = {}
        self._last_sweep: dict[int, int] = {}
        self._last_tick: dict[int, int] = {}

    def track(self, job: Job) -> None:
        """Record a job's new state (call on every table write)."""
        leases = self._leases.setdefault(job.partition, {})
        if job.status == "PROCESSING" and job.lease_expires_at is not None:
            leases[job.request_id] = job.lease_expires_at
        else:
            leases.pop(job.request_id, None)

    def needs_sweep(self, partition: int, now: int) -> bool:
        last_tick = self._last_tick.get(partition)
        self._last_tick[partition] = now
        if last_tick is None or now - last_tick > self.stale_after_ms:
            return True  # new to this worker, or it was away: the index may be incomplete
        return now - self._last_sweep.get(partition, 0) >= self.sweep_ms

    def swept(self, partition: int, now: int, jobs: Iterable[Job]) -> None:
        """Replace the partition's index with the leases among ``jobs``."""
        self._leases[partition] = {}
        for job in jobs:
            self.track(job)
        self._last_sweep[partition] = now

    def due(self, partition: int, now: int) -> list[str]:
        return [rid for rid, deadline in self._leases.get(partition, {}).items() if deadline <= now]

    def __len__(self) -> int:
        return sum(len(v) for v in self._leases.values())
