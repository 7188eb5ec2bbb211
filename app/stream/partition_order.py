"""The writer decides each source partition's events in order, whatever happened on the way.

The writer's consumer hands a partition out in order from where it was last sought
(:class:`~app.stream.faust_compat.Consumer`), but between that hand-out and the writer's
decisions Faust's stream can still lose events: a queue cleared or a generation skipped around a
rebalance. The cluster's rolling restart showed the result: a partition's events 120..145 were
handed out in order and never decided, 146 was, and a request's repeat at 146 was decided
before the request itself at 138, which, read again later, counted as a redelivery instead of
the duplicate it was (`dup_miscount`).

So the edge checks every event against the next offset it expects of its partition: the one
after the last it took, or, after the consumer sought the partition (a rebalance's recovery, the
watchdog), the offset sought to. An event at or below it is taken (below is a redelivery, which
the state machine ignores). An event beyond it means events in between were lost: it is not
decided, the partition is sought back to the expected offset and read again, and the events
still buffered beyond it from before that seek are dropped the same way without another seek.
After :data:`RESEEKS` seeks that land beyond the same offset the jump is taken as real (records
deleted by retention) and accepted. Plain state, no I/O: the edge performs the seeks.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

RESEEKS = 3

#: Where the consumer last sought a partition: (a number that changes with every seek, the
#: offset sought to, or None when unknown: nothing committed yet).
Sought = tuple[int, int | None]


@dataclass(frozen=True, slots=True)
class Take:
    """Decide the event."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Leave the event undecided: it came from before the seek made for its gap."""


@dataclass(frozen=True, slots=True)
class SeekBack:
    """Leave the event undecided and seek its partition back to ``offset``."""

    offset: int


Verdict = Take | Drop | SeekBack
TAKE, DROP = Take(), Drop()


class PartitionOrder:
    """The next offset expected of each partition, checked event by event."""

    def __init__(self, reseeks: int = RESEEKS) -> None:
        self.reseeks = reseeks
        self._expected: dict[Hashable, tuple[int, int]] = {}  # partition: (seek, next offset)
        self._gaps: dict[Hashable, tuple[int, int]] = {}  # partition: (expected, seeks made)
        self._seeking: dict[Hashable, tuple[int, int]] = {}  # partition: (our seek, its offset)

    def check(self, partition: Hashable, offset: int, sought: Sought | None) -> Verdict:
        seek, at = sought if sought is not None else (0, None)
        known = self._expected.get(partition)
        expected = known[1] if known is not None and known[0] == seek else at
        if expected is not None and offset > expected:
            if self._seeking.get(partition) == (seek, expected):
                return DROP  # buffered before our seek back: it comes again
            previous, seeks = self._gaps.get(partition, (expected, 0))
            seeks = seeks if previous == expected else 0
            if seeks < self.reseeks:
                self._gaps[partition] = (expected, seeks + 1)
                return SeekBack(expected)
        self._gaps.pop(partition, None)
        self._seeking.pop(partition, None)
        self._expected[partition] = (seek, max(offset + 1, expected or 0))
        return TAKE

    def sought_back(self, partition: Hashable, sought: Sought | None) -> None:
        """The edge has sought ``partition`` back as told: ``sought`` is the consumer's record
        of that seek."""
        if sought is not None and sought[1] is not None:
            self._seeking[partition] = (sought[0], sought[1])


__all__ = ["DROP", "RESEEKS", "TAKE", "Drop", "PartitionOrder", "SeekBack", "Sought", "Take"]
