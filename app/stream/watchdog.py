"""The watchdog: partitions with lag that make no progress are found, reported and recovered.

faust-streaming has a class of bugs where a partition stays assigned but is never delivered
again (paused during a rebalance or recovery and not resumed: faust-streaming #175, #523, #640;
it once stranded work items in this project). Nothing fails: the worker looks healthy and the
jobs behind that partition wait for ever. The watchdog watches *what is observable from
outside*: for every partition this worker consumes, the consumer's progress marker (its
committed offset for the writer, the last offset taken for the generators) and the log end.

:class:`StallDetector` is the rule, without I/O or clock: a partition is *stalled* when it has
lag (end > progress) and its progress has not moved for ``stall_seconds``. The edges
(:mod:`app.stream.agents` for the Faust writer, :mod:`app.stream.work_consumer` for the generators)
feed it,
and on a stall: log it, count it (``exhaust_watchdog_*`` metrics), turn ``/readyz`` false, and
recover without losing events: resume the partition and seek it to its progress marker (what
follows is redelivered; processing is idempotent). A partition still stalled a full window
after that, with nothing delivered from it either, is beyond repair in-process: the worker
exits with ``CONSUMER_STALLED`` so its supervisor restarts it, and the group hands the
partition on.

Two things look like a stall and are not. A partition whose events are being delivered but
whose commits trail (a worker catching up on a backlog, its commits waiting on the producer's
flush) still moves its *delivery* marker (the writer's next offset to hand out): an edge that
knows that marker passes it, and such a partition is sought back once but never taken for
hopeless. And nothing is consumed while a rebalance and its table recovery run (tens of
seconds to minutes, with the changelog's length): the writer's edge forgets its clocks then
(:meth:`StallDetector.forget`). Before both, a processor catching up after a rolling restart
on a slow host exited as stalled while its partitions were moving or recovering, and every
exit started another rebalance (the cluster's rolling restart saw six in a row).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from app.domain.errors import ExhaustError


class ConsumerStalled(ExhaustError):
    code = "CONSUMER_STALLED"
    retryable = True


@dataclass
class _Partition:
    progress: int
    since: float  # when progress last moved (or lag appeared)
    recovered_at: float | None = None
    delivered: int | None = None  # the delivery marker when last recovered (or seen moving)


@dataclass
class Verdict:
    """What the edge must do after one observation round."""

    stalled: list[Hashable] = field(default_factory=list)  # new stalls: recover them
    hopeless: list[Hashable] = field(default_factory=list)  # still stalled after recovery
    healthy_again: list[Hashable] = field(default_factory=list)


class StallDetector:
    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self._parts: dict[Hashable, _Partition] = {}

    @property
    def stalled(self) -> list[Hashable]:
        return [k for k, p in self._parts.items() if p.recovered_at is not None]

    def forget(self) -> None:
        """Drop every clock: nothing is consumed for a while (a rebalance), which is no
        partition's stall; the clocks start again at the next observation."""
        self._parts.clear()

    def observe(
        self,
        progress: dict[Hashable, int],
        end: dict[Hashable, int],
        now: float,
        delivered: dict[Hashable, int] | None = None,
    ) -> Verdict:
        """One round: ``progress`` and ``end`` offsets of every partition consumed now, and
        where known the ``delivered`` marker of each (the next offset the consumer hands
        out; a stalled partition is sought to its progress, where that marker then starts)."""
        verdict = Verdict()
        for key in list(self._parts):
            if key not in progress:  # no longer ours
                del self._parts[key]
        for key, position in progress.items():
            lag = end.get(key, position) > position
            known = self._parts.get(key)
            if known is None or known.progress != position or not lag:
                if known is not None and known.recovered_at is not None:
                    verdict.healthy_again.append(key)
                self._parts[key] = _Partition(position, now)
                continue
            if known.recovered_at is None:
                if now - known.since >= self.stall_seconds:
                    known.recovered_at = now
                    known.delivered = position  # the edge seeks it there
                    verdict.stalled.append(key)
            elif now - known.recovered_at >= self.stall_seconds:
                marker = None if delivered is None else delivered.get(key)
                if marker is not None and marker != known.delivered:
                    known.recovered_at, known.delivered = now, marker  # delivering: not hopeless
                else:
                    verdict.hopeless.append(key)
        return verdict
