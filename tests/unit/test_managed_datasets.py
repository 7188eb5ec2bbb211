"""The rules of managed datasets: declared columns and how fills change a catalog entry."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from app.api.fills import parse_fill_body
from app.domain.errors import ExhaustError
from app.domain.managed_datasets import (
    Column,
    DatasetPolicy,
    Fill,
    ManagedDataset,
    Retired,
    Segment,
    apply_fill,
    compaction_run,
    due_for_deletion,
    parse_columns,
)
from app.stream.avro import registry

POLICY = DatasetPolicy(history=5, max_segments=3, max_columns=10, grace_ms=1000)
COLUMNS = [
    {"name": "id", "alias": "ID", "type": "integer"},
    {"name": "born", "alias": "Born", "type": "date", "format": "%d/%m/%Y"},
]


def fill(
    fill_id: str, mode: str = "APPEND", rows: int = 10, columns: list[dict[str, Any]] | None = None
) -> Fill:
    declared = tuple(parse_columns(columns or COLUMNS, 10))
    return Fill(
        "FILL", fill_id, "acme", "people", "u1", mode, declared,  # type: ignore[arg-type]
        rows, rows * 10, f"datasets/acme/people/segments/{fill_id}-x.parquet", 1,
    )  # fmt: skip


def applied(*fills: Fill) -> ManagedDataset:
    entry: ManagedDataset | None = None
    for offset, f in enumerate(fills):
        outcome = apply_fill(entry, f, offset, now=100 + offset, policy=POLICY)
        entry = outcome.entry or entry
    assert entry is not None
    return entry


# --- columns -----------------------------------------------------------------------------


def test_columns_are_parsed_with_defaults_and_synonyms() -> None:
    columns = parse_columns(
        [
            {"name": "a", "type": "INT"},
            {"name": "b", "alias": "Bee", "type": "float", "subtype": "decimal(10, 2)"},
            {"name": "c", "type": "timestamp", "subtype": ""},
        ],
        10,
    )
    assert columns == [
        Column("a", "a", "INTEGER"),
        Column("b", "Bee", "NUMBER", "decimal(10,2)"),
        Column("c", "c", "DATETIME"),
    ]
    assert columns[1].decimal == (10, 2)
    # The default subtype is no subtype: an append declaring it explicitly still matches.
    assert (
        parse_columns([{"name": "a", "type": "integer", "subtype": "int64"}], 1)[0].subtype is None
    )


@pytest.mark.parametrize(
    ("columns", "code", "names"),
    [
        ([], "INVALID_COLUMNS", "non-empty"),
        ([{"name": "1a", "type": "string"}], "INVALID_COLUMNS", "columns[0].name"),
        ([{"name": "a b", "type": "string"}], "INVALID_COLUMNS", "columns[0].name"),
        (
            [{"name": "a", "type": "string"}, {"name": "A", "type": "string"}],
            "INVALID_COLUMNS",
            "columns[1].name",
        ),
        ([{"name": "a", "type": "blob"}], "INVALID_COLUMNS", "columns[0].type"),
        (
            [{"name": "a", "type": "integer", "subtype": "int128"}],
            "INVALID_COLUMNS",
            "columns[0].subtype",
        ),
        (
            [{"name": "a", "type": "number", "subtype": "decimal(40,2)"}],
            "INVALID_COLUMNS",
            "columns[0].subtype",
        ),
        (
            [{"name": "a", "type": "integer", "format": "%d"}],
            "INVALID_COLUMNS",
            "columns[0].format",
        ),
        (
            [{"name": "a", "type": "date", "format": "dd/mm"}],
            "INVALID_COLUMNS",
            "columns[0].format",
        ),
        (
            [{"name": f"c{i}", "type": "string"} for i in range(11)],
            "TOO_MANY_COLUMNS",
            "at most 10",
        ),
    ],
)
def test_bad_column_declarations_are_refused_naming_the_field(
    columns: list[dict[str, Any]], code: str, names: str
) -> None:
    with pytest.raises(ExhaustError) as caught:
        parse_columns(columns, 10)
    assert caught.value.code == code
    assert names in caught.value.message


def test_the_fill_body_is_the_seeds_and_append_defaults_to_true() -> None:
    body = {"user-code": "u1", "dataset-code": "people", "columns": COLUMNS, "insert-data": "[]"}
    parsed = parse_fill_body(body, 10)
    assert (parsed.append, parsed.compressed) == (True, False)
    for field, value, code in [
        ("dataset-code", "../x", "INVALID_IDENTIFIER"),
        ("user-code", None, "MALFORMED_REQUEST"),
        ("insert-data", 5, "INVALID_INSERT_DATA"),
        ("append", "yes", "MALFORMED_REQUEST"),
    ]:
        with pytest.raises(ExhaustError) as caught:
            parse_fill_body({**body, field: value}, 10)
        assert caught.value.code == code, field


# --- fills -------------------------------------------------------------------------------


def test_appends_add_segments_and_a_truncate_starts_a_new_version() -> None:
    entry = applied(fill("f1", "TRUNCATE", 10), fill("f2", "APPEND", 5))
    assert (entry.version, entry.rows, [s.fill_id for s in entry.segments]) == (1, 15, ["f1", "f2"])
    entry = applied(fill("f1", "TRUNCATE", 10), fill("f2"), fill("f3", "TRUNCATE", 7))
    assert (entry.version, entry.rows, [s.fill_id for s in entry.segments]) == (2, 7, ["f3"])
    assert [(r.version, r.reason, len(r.segments)) for r in entry.retired] == [(1, "superseded", 2)]
    assert [f.status for f in entry.fills] == ["APPLIED"] * 3


def test_a_first_append_creates_the_dataset() -> None:
    entry = applied(fill("f1", "APPEND", 3))
    assert (entry.version, entry.rows, entry.columns[0].name) == (1, 3, "id")


def test_an_append_with_other_columns_is_refused_and_changes_no_rows() -> None:
    before = applied(fill("f1", "TRUNCATE", 10))
    other = [{"name": "id", "type": "string"}, COLUMNS[1]]
    outcome = apply_fill(before, fill("f2", columns=other), 1, now=200, policy=POLICY)
    assert outcome.counter == "fill_rejected" and outcome.entry is not None
    after = outcome.entry
    assert (after.version, after.rows, after.segments, after.columns) == (
        before.version, before.rows, before.segments, before.columns,
    )  # fmt: skip
    assert outcome.record is not None and outcome.record.error_code == "COLUMNS_MISMATCH"
    assert after.retired[-1].reason == "refused"  # its staged segment will be deleted
    # Format and alias may differ on append; a truncate may redefine everything.
    relabelled = [{**COLUMNS[0], "alias": "Number"}, {**COLUMNS[1], "format": "%Y-%m-%d"}]
    assert (
        apply_fill(before, fill("f3", columns=relabelled), 2, 300, POLICY).counter == "fill_applied"
    )
    redefined = apply_fill(before, fill("f4", "TRUNCATE", columns=other), 3, 400, POLICY)
    assert redefined.entry is not None and redefined.entry.columns[0].type == "STRING"


def test_redelivered_events_and_repeated_fill_ids_apply_once() -> None:
    entry = applied(fill("f1", "TRUNCATE", 10), fill("f2", "APPEND", 5))
    assert apply_fill(entry, fill("f9"), offset=1, now=300, policy=POLICY).entry is None
    repeated = apply_fill(entry, fill("f2"), offset=7, now=300, policy=POLICY)
    assert repeated.counter == "fill_repeated" and repeated.entry is not None
    assert (repeated.entry.rows, repeated.entry.fills_offset) == (15, 7)


def test_too_many_segments_are_refused_with_a_way_out() -> None:
    entry = applied(fill("a", "TRUNCATE"), fill("b"), fill("c"))
    outcome = apply_fill(entry, fill("d"), 3, 300, POLICY)
    assert outcome.record is not None and outcome.record.error_code == "TOO_MANY_SEGMENTS"
    assert "append=false" in (outcome.record.error_message or "")


def test_history_is_bounded() -> None:
    entry = applied(*(fill(f"f{i}") for i in range(3)), fill("t", "TRUNCATE"), fill("u"), fill("v"))
    assert [f.fill_id for f in entry.fills] == ["f1", "f2", "t", "u", "v"]


def test_retired_segments_are_deleted_after_their_grace() -> None:
    entry = applied(fill("f1", "TRUNCATE"), fill("f2", "TRUNCATE"))
    retired_at = entry.retired[0].retired_at
    assert due_for_deletion(entry, retired_at + 999, POLICY) == (None, [])
    updated, keys = due_for_deletion(entry, retired_at + 1000, POLICY)
    assert keys == ["datasets/acme/people/segments/f1-x.parquet"]
    assert updated is not None and updated.retired == () and updated.segments == entry.segments


def test_entries_and_fills_round_trip_through_their_avro_schemas() -> None:
    entry = applied(fill("f1", "TRUNCATE"), fill("f2", columns=[{"name": "x", "type": "string"}]))
    decoded = registry().decode(
        "ManagedDataset", registry().encode("ManagedDataset", entry.to_record())
    )
    assert ManagedDataset.from_record(decoded) == entry
    event = fill("f3")
    raw = registry().encode("DatasetFill", event.to_record())
    assert Fill.from_record(registry().decode("DatasetFill", raw)) == event


@pytest.mark.parametrize(
    "key",
    ["datasets/evil/people/segments/x.parquet", "datasets/acme/people/segments/../../../evil/x",
     "datasets/acme/other/segments/x.parquet", "acme/inputs/x.ndjson", "/etc/passwd"],
)  # fmt: skip
def test_a_fill_naming_another_datasets_key_is_refused_and_never_retired(key: str) -> None:
    """From a producer that writes the fills topic directly: the key is neither written (the
    fill is REJECTED) nor retired (the sweep would delete it)."""
    forged = dataclasses.replace(fill("f9"), segment_key=key)
    outcome = apply_fill(None, forged, 1, 1_000, POLICY)
    assert outcome.counter == "fill_rejected" and outcome.entry is not None
    assert outcome.record is not None and outcome.record.error_code == "INVALID_OBJECT_KEY"
    assert outcome.entry.retired == () and outcome.entry.segments == ()
    entry = dataclasses.replace(
        outcome.entry, retired=(Retired(0, "refused", (Segment(key, 1, 1, "f9", 0),), 0),)
    )
    assert due_for_deletion(entry, 10**12, POLICY)[1] == []  # an old entry: never deleted


def test_the_empty_strings_rule_is_null_keep_or_refused() -> None:
    base = {"user-code": "u", "dataset-code": "people", "columns": COLUMNS, "insert-data": "[]"}
    assert not parse_fill_body(base, 10).keep_empty_strings
    assert parse_fill_body({**base, "empty-strings": "keep"}, 10).keep_empty_strings
    assert not parse_fill_body({**base, "empty-strings": None}, 10).keep_empty_strings
    for bad in ("KEEP", True, 1, "none"):
        with pytest.raises(ExhaustError, match="empty-strings"):
            parse_fill_body({**base, "empty-strings": bad}, 10)


# --- compaction ----------------------------------------------------------------------------

LOOSE = dataclasses.replace(POLICY, max_segments=100)


def filled(count: int) -> ManagedDataset:
    entry: ManagedDataset | None = None
    fills = [fill("f0", "TRUNCATE"), *(fill(f"f{n}") for n in range(1, count))]
    for offset, f in enumerate(fills):
        entry = apply_fill(entry, f, offset, now=100 + offset, policy=LOOSE).entry or entry
    assert entry is not None
    return entry


def compact(entry: ManagedDataset, keys: list[str], rows: int, key: str = "") -> Fill:
    return Fill(
        "COMPACT", "c1", "acme", "people", "exhaust-compactor", "APPEND", entry.columns, rows,
        rows * 5, key or "datasets/acme/people/segments/compact-c1.parquet", 500,
        replaces=tuple(keys),
    )  # fmt: skip


def test_a_compaction_replaces_its_run_in_place_in_a_new_version() -> None:
    entry = filled(6)
    run = [s.key for s in entry.segments[1:4]]
    outcome = apply_fill(entry, compact(entry, run, 30), 99, now=900, policy=LOOSE)
    assert outcome.counter == "compacted" and outcome.entry is not None
    after = outcome.entry
    assert [s.key for s in after.segments] == [entry.segments[0].key,
        "datasets/acme/people/segments/compact-c1.parquet", *[s.key for s in entry.segments[4:]]]  # fmt: skip
    assert (after.rows, after.columns, after.version) == (entry.rows, entry.columns,
                                                            entry.version + 1)  # fmt: skip
    assert after.retired[-1] == Retired(entry.version, "compacted", entry.segments[1:4], 900)
    assert after.fills == entry.fills  # a compaction is no client's fill
    # Redelivered: nothing; the event round-trips through its schema.
    assert apply_fill(after, compact(entry, run, 30), 99, now=901, policy=LOOSE).entry is None
    event = compact(entry, run, 30)
    raw = registry().encode("DatasetFill", event.to_record())
    assert Fill.from_record(registry().decode("DatasetFill", raw)) == event


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("truncate", "the dataset was truncated after the compactor read it"),
        ("other run", "the keys are not a run of the current segments"),
        ("rows", "the rows differ from the run's"),
        ("foreign key", "the new segment is not under the dataset's prefix"),
    ],
)
def test_a_stale_compaction_changes_nothing_but_retires_its_segment(change: str, why: str) -> None:
    entry = filled(5)
    run, rows, key = [s.key for s in entry.segments[:3]], 30, ""
    if change == "truncate":
        entry = apply_fill(entry, fill("t", "TRUNCATE"), 50, now=800, policy=LOOSE).entry  # type: ignore[assignment]
    elif change == "other run":
        run = [entry.segments[0].key, entry.segments[2].key]
    elif change == "rows":
        rows = 31
    else:
        key = "datasets/evil/people/segments/x.parquet"
    outcome = apply_fill(entry, compact(entry, run, rows, key), 99, now=900, policy=LOOSE)
    assert outcome.counter == "compaction_stale", why
    stale = outcome.entry
    assert stale is not None and stale.segments == entry.segments and stale.version == entry.version
    retired = [r for r in stale.retired if r.retired_at == 900]
    assert retired == ([] if change == "foreign key" else
                       [Retired(entry.version, "refused", (retired[0].segments[0],), 900)])  # fmt: skip


def test_the_run_to_compact_is_the_longest_of_small_consecutive_segments() -> None:
    entry = filled(6)
    assert compaction_run(entry, 7, 10_000) == ()  # fewer segments than the minimum
    assert compaction_run(entry, 6, 10_000) == entry.segments
    big = dataclasses.replace(entry.segments[2], bytes=6_000)  # over half the target
    uneven = dataclasses.replace(entry, segments=(*entry.segments[:2], big, *entry.segments[3:]))
    assert compaction_run(uneven, 6, 10_000) == uneven.segments[3:]
    assert compaction_run(uneven, 6, 250) == uneven.segments[:2]  # 100 each: two fit in 250
    assert compaction_run(entry, 0, 10_000) == ()  # 0: never


def test_an_append_that_names_no_date_format_reads_dates_in_the_datasets_own() -> None:
    from app.domain.managed_datasets import inherit_formats

    stored = parse_columns([{"name": "id", "type": "integer"},
                            {"name": "born", "type": "date", "format": "%d/%m/%Y"}], 10)  # fmt: skip
    sent = parse_columns([{"name": "id", "type": "integer"}, {"name": "Born", "type": "date"}], 10)
    assert [c.format for c in inherit_formats(sent, stored)] == [None, "%d/%m/%Y"]
    own = parse_columns([{"name": "born", "type": "date", "format": "%Y-%m-%d"}], 10)
    assert inherit_formats(own, stored)[0].format == "%Y-%m-%d"  # a format given is kept
    as_text = parse_columns([{"name": "born", "type": "string"}], 10)
    assert inherit_formats(as_text, stored)[0].format is None  # another type inherits nothing
