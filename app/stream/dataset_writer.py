"""The dataset writer's decisions, without Faust: fills in, effects out.

:class:`DatasetWriter` decides what the single writer of a dataset's catalog entry does with a
batch of fills (and with a sweep of retired segments); it reads the ``datasets`` table through
a function it is given and performs no I/O. :class:`~app.stream.fill_writer.FillWriter`, the
Faust edge, performs what it returns in this order: store each inline segment (retried until
stored: an entry must never name a segment that is not there), then every table write, each for
the event that caused it. Within a batch a read sees the batch's own earlier writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from app.clock import Clock, now_ms
from app.domain.managed_datasets import (
    DatasetPolicy,
    Fill,
    FillRecord,
    ManagedDataset,
    apply_fill,
    due_for_deletion,
)

# (a dataset key, the fill it is read for) -> its entry. The fill says which partition's store
# holds the key: the edge must read there, not wherever its framework's current event is.
Read = Callable[[str, object], ManagedDataset | None]


@dataclass(frozen=True, slots=True)
class FillInput:
    """One decoded fill and where it was read (its offset decides redeliveries)."""

    fill: Fill
    offset: int
    source: object = None  # the edge's handle of the event the write belongs to


@dataclass(slots=True)
class FillEffects:
    """What the edge performs for a batch: ``segments`` to store first (key, bytes), then
    ``writes`` (key, entry, source); ``counters`` and ``applied`` are for metrics and logs."""

    segments: list[tuple[str, bytes]] = field(default_factory=list)
    writes: list[tuple[str, ManagedDataset, object]] = field(default_factory=list)
    counters: list[str] = field(default_factory=list)
    applied: list[tuple[Fill, FillRecord]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Deletion:
    """A sweep's decision for one dataset: delete ``keys``, then write ``entry``."""

    key: str
    keys: list[str]
    entry: ManagedDataset


class DatasetWriter:
    """The decisions of the ``datasets`` table's single writer (see module docstring)."""

    def __init__(self, policy: DatasetPolicy, clock: Clock = now_ms) -> None:
        self.policy = policy
        self.clock = clock

    def decide(self, batch: Sequence[FillInput], read: Read) -> FillEffects:
        effects = FillEffects()
        pending: dict[str, ManagedDataset] = {}
        for item in batch:
            fill = item.fill
            key = fill.key
            current = pending[key] if key in pending else read(key, item.source)
            outcome = apply_fill(current, fill, item.offset, self.clock(), self.policy)
            effects.counters.append(outcome.counter)
            if outcome.entry is None:
                continue
            if outcome.counter == "fill_applied" and fill.data is not None:
                effects.segments.append((fill.segment_key, fill.data))
            effects.writes.append((key, outcome.entry, item.source))
            pending[key] = outcome.entry
            if outcome.record is not None:
                effects.applied.append((fill, outcome.record))
        return effects

    def sweep(self, entries: Iterable[tuple[str, ManagedDataset]]) -> list[Deletion]:
        """The retired segments of ``entries`` past their grace: what to delete, per dataset."""
        now = self.clock()
        found = []
        for key, entry in entries:
            if not entry.retired:
                continue
            updated, keys = due_for_deletion(entry, now, self.policy)
            if updated is not None:
                found.append(Deletion(key, keys, updated))
        return found


__all__ = ["DatasetWriter", "Deletion", "FillEffects", "FillInput"]
