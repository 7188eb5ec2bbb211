"""The dataset writer's decisions, driven directly: fills in, effects out, no broker."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from faust import streams

from app.domain.managed_datasets import DatasetPolicy, Fill, ManagedDataset, parse_columns
from app.stream import faust_compat
from app.stream.dataset_writer import DatasetWriter, FillEffects, FillInput
from app.stream.fill_writer import FillWriter

POLICY = DatasetPolicy(history=5, max_segments=3, max_columns=10, grace_ms=1000)
COLUMNS = parse_columns([{"name": "id", "type": "integer"}], 10)


def fill(fill_id: str, mode: Any = "APPEND", data: bytes | None = None, code: str = "people",
         ) -> Fill:  # fmt: skip
    key = f"datasets/acme/{code}/segments/{fill_id}-x.parquet"
    return Fill("FILL", fill_id, "acme", code, "u1", mode, tuple(COLUMNS), 10, 100, key, 1, data)


class Clock:
    def __init__(self, now: int = 5_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Table(dict[str, ManagedDataset]):
    """The datasets table; ``reads`` lists each read as (key, the fill's source)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, object]] = []

    def read(self, key: str, source: object) -> ManagedDataset | None:
        self.reads.append((key, source))
        return self.get(key)

    def apply(self, effects: FillEffects) -> None:
        for key, entry, _ in effects.writes:
            self[key] = entry


def inputs(*fills: Fill, first_offset: int = 0) -> list[FillInput]:
    return [FillInput(f, first_offset + i, f"event-{i}") for i, f in enumerate(fills)]


def test_an_inline_fill_stores_its_segment_then_writes_the_entry() -> None:
    effects = DatasetWriter(POLICY, Clock()).decide(inputs(fill("f1", data=b"PAR1")), Table().read)
    assert effects.segments == [("datasets/acme/people/segments/f1-x.parquet", b"PAR1")]
    [(key, entry, source)] = effects.writes
    assert key == "acme/people" and source == "event-0"
    assert entry.rows == 10 and [s.key for s in entry.segments] == [effects.segments[0][0]]
    assert effects.counters == ["fill_applied"]
    assert [r.status for _, r in effects.applied] == ["APPLIED"]


def test_fills_of_one_dataset_in_a_batch_build_on_each_other() -> None:
    table = Table()
    effects = DatasetWriter(POLICY, Clock()).decide(
        inputs(fill("f1"), fill("f2"), fill("f3", mode="TRUNCATE"), fill("g1", code="places")),
        table.read,
    )
    table.apply(effects)
    # Each key is read once, for the first fill of it: the store to read is that fill's
    # partition's, whichever event the batch ended with.
    assert table.reads == [("acme/people", "event-0"), ("acme/places", "event-3")]
    assert table["acme/people"].rows == 10 and table["acme/people"].version == 2
    assert [s.key.rsplit("/", 1)[1] for s in table["acme/people"].segments] == ["f3-x.parquet"]
    assert table["acme/places"].rows == 10


def test_a_batch_decides_as_its_fills_one_by_one_and_a_redelivery_changes_nothing() -> None:
    fills = inputs(fill("f1"), fill("f2"), fill("f1"), fill("f3", mode="TRUNCATE"))
    together, alone = Table(), Table()
    together.apply(DatasetWriter(POLICY, Clock()).decide(fills, together.read))
    for item in fills:
        alone.apply(DatasetWriter(POLICY, Clock()).decide([item], alone.read))
    assert together == alone
    replay = DatasetWriter(POLICY, Clock()).decide(fills[:2], together.read)
    assert replay.writes == [] and replay.counters == ["fill_redelivered"] * 2


def test_a_sweep_deletes_retired_segments_past_their_grace_only() -> None:
    clock, table = Clock(), Table()
    writer = DatasetWriter(POLICY, clock)
    table.apply(writer.decide(inputs(fill("f1"), fill("f2", mode="TRUNCATE")), table.read))
    assert writer.sweep(table.items()) == []  # retired just now: within the grace
    clock.now += POLICY.grace_ms
    [due] = writer.sweep(table.items())
    assert due.key == "acme/people" and due.keys == ["datasets/acme/people/segments/f1-x.parquet"]
    assert due.entry.retired == () and due.entry.segments == table["acme/people"].segments


def test_a_sweep_never_deletes_another_datasets_objects() -> None:
    clock, table = Clock(), Table()
    writer = DatasetWriter(POLICY, clock)
    table.apply(writer.decide(inputs(fill("f1"), fill("f2", mode="TRUNCATE")), table.read))
    entry = table["acme/people"]
    foreign = dataclasses.replace(entry.retired[0].segments[0], key="datasets/other/x/segments/a")
    retired = dataclasses.replace(entry.retired[0], segments=(foreign,))
    table["acme/people"] = dataclasses.replace(entry, retired=(retired,))
    clock.now += POLICY.grace_ms
    [due] = writer.sweep(table.items())
    assert due.keys == []


class Event:
    """An event as Faust's table sees it: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def test_the_edge_reads_an_entry_in_the_store_of_the_fill_it_is_read_for() -> None:
    # Faust's RocksDB table reads the partition of the current event; during a batch's
    # decisions that is the batch's last event (here a SWEEP of another partition).
    seen: list[object] = []

    class FaustTable:
        def get(self, key: bytes) -> None:
            seen.append(streams.current_event())

    edge: Any = SimpleNamespace(table=FaustTable())
    the_fill, a_sweep = Event(1), Event(2)
    with faust_compat.acting_for(a_sweep):
        FillWriter.read(edge, "acme/streamed", the_fill)
    assert seen == [the_fill]
