"""The dataset writer's decisions, driven directly: fills in, effects out, no broker."""

from __future__ import annotations

import dataclasses
from typing import Any

from app.domain.managed_datasets import DatasetPolicy, Fill, ManagedDataset, parse_columns
from app.stream.dataset_writer import DatasetWriter, FillEffects, FillInput

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
    def apply(self, effects: FillEffects) -> None:
        for key, entry, _ in effects.writes:
            self[key] = entry


def inputs(*fills: Fill, first_offset: int = 0) -> list[FillInput]:
    return [FillInput(f, first_offset + i, f"event-{i}") for i, f in enumerate(fills)]


def test_an_inline_fill_stores_its_segment_then_writes_the_entry() -> None:
    effects = DatasetWriter(POLICY, Clock()).decide(inputs(fill("f1", data=b"PAR1")), Table().get)
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
        table.get,
    )
    table.apply(effects)
    assert table["acme/people"].rows == 10 and table["acme/people"].version == 2
    assert [s.key.rsplit("/", 1)[1] for s in table["acme/people"].segments] == ["f3-x.parquet"]
    assert table["acme/places"].rows == 10


def test_a_batch_decides_as_its_fills_one_by_one_and_a_redelivery_changes_nothing() -> None:
    fills = inputs(fill("f1"), fill("f2"), fill("f1"), fill("f3", mode="TRUNCATE"))
    together, alone = Table(), Table()
    together.apply(DatasetWriter(POLICY, Clock()).decide(fills, together.get))
    for item in fills:
        alone.apply(DatasetWriter(POLICY, Clock()).decide([item], alone.get))
    assert together == alone
    replay = DatasetWriter(POLICY, Clock()).decide(fills[:2], together.get)
    assert replay.writes == [] and replay.counters == ["fill_redelivered"] * 2


def test_a_sweep_deletes_retired_segments_past_their_grace_only() -> None:
    clock, table = Clock(), Table()
    writer = DatasetWriter(POLICY, clock)
    table.apply(writer.decide(inputs(fill("f1"), fill("f2", mode="TRUNCATE")), table.get))
    assert writer.sweep(table.items()) == []  # retired just now: within the grace
    clock.now += POLICY.grace_ms
    [due] = writer.sweep(table.items())
    assert due.key == "acme/people" and due.keys == ["datasets/acme/people/segments/f1-x.parquet"]
    assert due.entry.retired == () and due.entry.segments == table["acme/people"].segments


def test_a_sweep_never_deletes_another_datasets_objects() -> None:
    clock, table = Clock(), Table()
    writer = DatasetWriter(POLICY, clock)
    table.apply(writer.decide(inputs(fill("f1"), fill("f2", mode="TRUNCATE")), table.get))
    entry = table["acme/people"]
    foreign = dataclasses.replace(entry.retired[0].segments[0], key="datasets/other/x/segments/a")
    retired = dataclasses.replace(entry.retired[0], segments=(foreign,))
    table["acme/people"] = dataclasses.replace(entry, retired=(retired,))
    clock.now += POLICY.grace_ms
    [due] = writer.sweep(table.items())
    assert due.keys == []
