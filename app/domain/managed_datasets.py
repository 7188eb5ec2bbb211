"""Managed datasets: declared columns, the catalog entry, and how a fill changes it. No I/O.

A managed dataset belongs to one channel and is named by its code. Its rows are Parquet
segments in object storage; its catalog entry (Avro ``ManagedDataset`` on the compacted topic
``exhaust.datasets``, key ``{channel}/{code}``) says which segments make the current version::

    append    (APPEND)    version v, segments [s1, s2] -> version v,   segments [s1, s2, s3]
    truncate  (TRUNCATE)  version v, segments [s1, s2] -> version v+1, segments [s3]
                                                          retired: [s1, s2] (deleted after grace)

One writer per dataset applies fills in the order of ``exhaust.fills`` (:func:`apply_fill`), so
an entry is a pure function of the fill events before it. A fill is all or nothing: its rows
were validated and written to one segment before its event was published, and applying it is
one write of the entry.

Column rules (``docs/datasets.md`` is the user's version):

* ``name``: letters, digits and ``_``, starting with a letter or ``_``, at most 64; unique
  ignoring case. ``alias`` (default: the name) is the column's label in exports.
* ``type`` and ``subtype``: see :data:`SUBTYPES`; the first subtype listed is the default.
* ``format``: strptime codes (``%d/%m/%Y``) for ``date`` and ``datetime`` only.
* An append must declare the same columns as the dataset: same names in the same order, same
  types and subtypes (``format`` may differ: it only says how this fill's text reads; ``alias``
  may differ: the latest fill's labels win). A truncate may redefine every column.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.domain import object_keys
from app.domain.errors import (
    ColumnsMismatch,
    ExhaustError,
    InvalidColumns,
    InvalidObjectKey,
    TooManyColumns,
    TooManySegments,
)

ColumnType = Literal["STRING", "INTEGER", "NUMBER", "BOOLEAN", "DATE", "DATETIME"]
FillMode = Literal["APPEND", "TRUNCATE"]
FillStatus = Literal["APPLIED", "REJECTED"]

TYPE_NAMES: dict[str, ColumnType] = {
    "string": "STRING", "text": "STRING", "varchar": "STRING",
    "integer": "INTEGER", "int": "INTEGER", "bigint": "INTEGER",
    "number": "NUMBER", "float": "NUMBER", "double": "NUMBER", "decimal": "NUMBER",
    "boolean": "BOOLEAN", "bool": "BOOLEAN",
    "date": "DATE",
    "datetime": "DATETIME", "timestamp": "DATETIME",
}  # fmt: skip
"""Accepted spellings of ``type`` (case-insensitive) and the type each one means."""

SUBTYPES: dict[ColumnType, tuple[str, ...]] = {
    "STRING": ("text", "uuid"),
    "INTEGER": ("int64", "int32", "int16", "int8"),
    "NUMBER": ("double", "float", "decimal(P,S)"),
    "BOOLEAN": ("boolean",),
    "DATE": ("date",),
    "DATETIME": ("timestamp",),
}
"""Supported subtypes per type; the first is the default (an empty or missing subtype)."""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
DECIMAL = re.compile(r"decimal\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)")
KEY_SEPARATOR = "/"  # never inside an identifier (app.domain.identifiers), so keys cannot collide


def segment_prefix(channel: str, code: str) -> str:
    """Where a dataset's segments live: a fill may write and the sweep delete nothing else."""
    return f"datasets/{channel}/{code}/segments/"


UPLOAD_EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
FILE_FORMATS = tuple(UPLOAD_EXTENSIONS)  # the files a fill reads: CSV, JSON Lines, Parquet


def upload_key(channel: str, code: str, upload_id: str, form: str) -> str:
    """Where a client's file for a fill is staged: derived from the caller's channel and the
    server's upload id, never from the client's text, so no upload can name another's."""
    return f"datasets/{channel}/{code}/uploads/{upload_id}{UPLOAD_EXTENSIONS[form]}"


def own_segment(channel: str, code: str, key: str) -> bool:
    """Whether ``key`` is a canonical key under the dataset's segment prefix."""
    return object_keys.is_canonical(key) and key.startswith(segment_prefix(channel, code))


def dataset_key(channel: str, code: str) -> str:
    """The Kafka key of a dataset's fills and catalog entry."""
    return f"{channel}{KEY_SEPARATOR}{code}"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    alias: str
    type: ColumnType
    subtype: str | None = None
    format: str | None = None

    @property
    def shape(self) -> tuple[str, str, str]:
        """What an append must match: the name (ignoring case), the type, the subtype."""
        return (self.name.lower(), self.type, self.subtype or SUBTYPES[self.type][0])

    @property
    def decimal(self) -> tuple[int, int] | None:
        match = DECIMAL.fullmatch(self.subtype or "")
        return (int(match.group(1)), int(match.group(2))) if match else None

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "type": self.type,
            "subtype": self.subtype,
            "format": self.format,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Column:
        return cls(**record)


def parse_columns(raw: object, max_columns: int) -> list[Column]:
    """A fill's ``columns`` array as :class:`Column` values; the error names the field."""
    if not isinstance(raw, list) or not raw:
        raise InvalidColumns("columns must be a non-empty array of column objects")
    if len(raw) > max_columns:
        raise TooManyColumns(
            f"{len(raw)} columns; a dataset has at most {max_columns} (EXHAUST_DATASET_MAX_COLUMNS)"
        )
    columns: list[Column] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"columns[{i}]"
        if not isinstance(item, dict):
            raise InvalidColumns(f"{where} must be an object with name, alias, type")
        name = item.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidColumns(
                f"{where}.name {name!r} must be 1-64 letters, digits or _, not starting "
                "with a digit"
            )
        if name.lower() in seen:
            raise InvalidColumns(f"{where}.name {name!r} is declared twice (ignoring case)")
        seen.add(name.lower())
        alias = item.get("alias") or name
        if not isinstance(alias, str) or len(alias) > 128 or not alias.isprintable():
            raise InvalidColumns(f"{where}.alias must be printable text of at most 128 characters")
        type_name = item.get("type")
        kind = TYPE_NAMES.get(type_name.lower()) if isinstance(type_name, str) else None
        if kind is None:
            raise InvalidColumns(
                f"{where}.type {type_name!r} is not one of string, integer, number, boolean, "
                "date, datetime"
            )
        subtype = _subtype(where, kind, item.get("subtype"))
        fmt = item.get("format") or None
        if fmt is not None:
            if kind not in ("DATE", "DATETIME"):
                raise InvalidColumns(f"{where}.format applies to date and datetime columns only")
            if not isinstance(fmt, str) or "%" not in fmt or len(fmt) > 64:
                raise InvalidColumns(
                    f"{where}.format {fmt!r} must be strptime codes such as %d/%m/%Y"
                )
        columns.append(Column(name, alias, kind, subtype, fmt))
    return columns


def _subtype(where: str, kind: ColumnType, raw: object) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidColumns(f"{where}.subtype must be a string")
    value = raw.strip().lower()
    allowed = SUBTYPES[kind]
    if value in allowed and value != "decimal(p,s)":
        return None if value == allowed[0] else value
    match = DECIMAL.fullmatch(value)
    if kind == "NUMBER" and match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if 1 <= precision <= 38 and scale <= precision:
            return f"decimal({precision},{scale})"
    raise InvalidColumns(
        f"{where}.subtype {raw!r} is not supported for {kind.lower()} "
        f"(supported: {', '.join(allowed)})"
    )


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    rows: int
    bytes: int
    fill_id: str
    added_at: int


@dataclass(frozen=True, slots=True)
class Fill:
    """A ``DatasetFill`` event: a fill validated into one Parquet segment, or a SWEEP."""

    kind: Literal["FILL", "SWEEP", "COMPACT"]
    fill_id: str
    channel: str
    dataset_code: str
    user_code: str
    mode: FillMode
    columns: tuple[Column, ...]
    rows: int
    bytes: int
    segment_key: str
    requested_at: int
    data: builtins.bytes | None = None  # (the field `bytes` shadows the type here)
    replaces: tuple[str, ...] = ()  # COMPACT: the run of segments the new one replaces

    @property
    def key(self) -> str:
        return dataset_key(self.channel, self.dataset_code)

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fill_id": self.fill_id,
            "channel": self.channel,
            "dataset_code": self.dataset_code,
            "user_code": self.user_code,
            "mode": self.mode,
            "columns": [c.to_record() for c in self.columns],
            "rows": self.rows,
            "bytes": self.bytes,
            "segment_key": self.segment_key,
            "data": self.data,
            "requested_at": self.requested_at,
            "replaces": list(self.replaces),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Fill:
        values = dict(record)
        values["columns"] = tuple(Column.from_record(c) for c in record["columns"])
        values["replaces"] = tuple(record.get("replaces") or ())
        return cls(**values)

    @classmethod
    def sweep(cls, at: int) -> Fill:
        return cls("SWEEP", "", "", "", "", "APPEND", (), 0, 0, "", at)


@dataclass(frozen=True, slots=True)
class FillRecord:
    """The outcome of one fill, kept in the entry (the operation a client polls)."""

    fill_id: str
    user_code: str
    mode: FillMode
    status: FillStatus
    rows: int
    version: int
    requested_at: int
    applied_at: int
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Retired:
    version: int
    reason: str
    segments: tuple[Segment, ...]
    retired_at: int


@dataclass(frozen=True, slots=True)
class ManagedDataset:
    """A catalog entry (Avro ``ManagedDataset``)."""

    channel: str
    code: str
    version: int = 0
    columns: tuple[Column, ...] = ()
    segments: tuple[Segment, ...] = ()
    rows: int = 0
    bytes: int = 0
    created_at: int = 0
    updated_at: int = 0
    fills_offset: int = -1
    fills: tuple[FillRecord, ...] = ()
    retired: tuple[Retired, ...] = field(default=())

    @property
    def key(self) -> str:
        return dataset_key(self.channel, self.code)

    def fill(self, fill_id: str) -> FillRecord | None:
        return next((f for f in reversed(self.fills) if f.fill_id == fill_id), None)

    def to_record(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "code": self.code,
            "version": self.version,
            "columns": [c.to_record() for c in self.columns],
            "segments": [_segment_record(s) for s in self.segments],
            "rows": self.rows,
            "bytes": self.bytes,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "fills_offset": self.fills_offset,
            "fills": [_fill_record(f) for f in self.fills],
            "retired": [
                {
                    "version": r.version,
                    "reason": r.reason,
                    "segments": [_segment_record(s) for s in r.segments],
                    "retired_at": r.retired_at,
                }
                for r in self.retired
            ],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ManagedDataset:
        return cls(
            channel=record["channel"],
            code=record["code"],
            version=record["version"],
            columns=tuple(Column.from_record(c) for c in record["columns"]),
            segments=tuple(Segment(**s) for s in record["segments"]),
            rows=record["rows"],
            bytes=record["bytes"],
            created_at=record["created_at"],
            updated_at=record["updated_at"],
            fills_offset=record["fills_offset"],
            fills=tuple(FillRecord(**f) for f in record["fills"]),
            retired=tuple(
                Retired(
                    r["version"],
                    r["reason"],
                    tuple(Segment(**s) for s in r["segments"]),
                    r["retired_at"],
                )
                for r in record["retired"]
            ),
        )


def _segment_record(s: Segment) -> dict[str, Any]:
    return {
        "key": s.key,
        "rows": s.rows,
        "bytes": s.bytes,
        "fill_id": s.fill_id,
        "added_at": s.added_at,
    }


def _fill_record(f: FillRecord) -> dict[str, Any]:
    return {
        "fill_id": f.fill_id,
        "user_code": f.user_code,
        "mode": f.mode,
        "status": f.status,
        "rows": f.rows,
        "version": f.version,
        "requested_at": f.requested_at,
        "applied_at": f.applied_at,
        "error_code": f.error_code,
        "error_message": f.error_message,
    }


@dataclass(frozen=True, slots=True)
class DatasetPolicy:
    history: int = 20
    max_segments: int = 2000
    max_columns: int = 500
    grace_ms: int = 3_600_000


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What applying one fill event does: the entry to write (None: nothing to write)."""

    # fill_applied | fill_rejected | fill_redelivered | fill_repeated | compacted |
    # compaction_stale
    counter: str
    entry: ManagedDataset | None
    record: FillRecord | None = None


def inherit_formats(columns: Sequence[Column], current: Sequence[Column]) -> list[Column]:
    """An append's columns, each date or datetime column that names no ``format`` taking the
    dataset's stored one (the rows of an append are written as the dataset's were)."""
    stored = {c.name.lower(): c for c in current}
    inherited = []
    for column in columns:
        own = stored.get(column.name.lower())
        if column.format is None and own is not None and own.type == column.type and own.format:
            column = replace(column, format=own.format)
        inherited.append(column)
    return inherited


def check_append(current: Sequence[Column], columns: Sequence[Column]) -> None:
    """Raise :class:`ColumnsMismatch` unless ``columns`` may be appended to ``current``."""
    if [c.shape for c in current] == [c.shape for c in columns]:
        return
    want = ", ".join(f"{c.name} {c.type.lower()}" for c in current)
    got = ", ".join(f"{c.name} {c.type.lower()}" for c in columns)
    raise ColumnsMismatch(
        f"an append must declare the dataset's columns ({want}); this fill declares ({got}). "
        "Send append=false to redefine them (truncate)"
    )


def apply_compaction(
    entry: ManagedDataset | None, fill: Fill, offset: int, now: int
) -> FillOutcome:
    """Apply a COMPACT event: while the current version still holds ``fill.replaces`` as one
    run of consecutive segments, that run becomes the one new segment (same rows, same place),
    in a new version; the replaced segments are retired, so the sweep deletes them after the
    grace period (a job that listed them before still reads them). Otherwise (the dataset was
    truncated, or another compaction came first) nothing changes but the new segment, which
    is retired unused. Rows and columns never change."""
    if entry is None or offset <= entry.fills_offset:
        return FillOutcome("fill_redelivered", None)
    segment = Segment(fill.segment_key, fill.rows, fill.bytes, fill.fill_id, now)
    keys = [s.key for s in entry.segments]
    run = list(fill.replaces)
    start = next((i for i in range(len(keys) - len(run) + 1) if keys[i : i + len(run)] == run),
                 None) if len(run) >= 2 else None  # fmt: skip
    replaced = entry.segments[start : start + len(run)] if start is not None else ()
    if (
        not own_segment(entry.channel, entry.code, fill.segment_key)
        or start is None
        or sum(s.rows for s in replaced) != fill.rows
        or fill.columns != entry.columns
    ):
        ours = own_segment(entry.channel, entry.code, fill.segment_key)  # else not ours to delete
        unused = (Retired(entry.version, "refused", (segment,), now),) if ours else ()
        stale = replace(entry, fills_offset=offset, retired=(*entry.retired, *unused))
        return FillOutcome("compaction_stale", stale)
    assert start is not None
    segments = (*entry.segments[:start], segment, *entry.segments[start + len(run) :])
    updated = replace(
        entry,
        version=entry.version + 1,
        segments=segments,
        bytes=sum(s.bytes for s in segments),
        updated_at=now,
        fills_offset=offset,
        retired=(*entry.retired, Retired(entry.version, "compacted", tuple(replaced), now)),
    )
    return FillOutcome("compacted", updated)


def compaction_run(
    entry: ManagedDataset, min_segments: int, target_bytes: int
) -> tuple[Segment, ...]:
    """The run of consecutive segments to compact next (empty: none): once the version holds
    ``min_segments`` or more, the longest run of segments each under half ``target_bytes``
    whose total stays within it."""
    if min_segments < 2 or len(entry.segments) < min_segments:
        return ()
    best: list[Segment] = []
    run: list[Segment] = []
    for segment in entry.segments:
        small = segment.bytes < target_bytes // 2
        if small and sum(s.bytes for s in run) + segment.bytes <= target_bytes:
            run.append(segment)
            continue
        best = max(best, run, key=len)
        run = [segment] if small else []
    best = max(best, run, key=len)
    return tuple(best) if len(best) >= 2 else ()


def apply_fill(
    entry: ManagedDataset | None, fill: Fill, offset: int, now: int, policy: DatasetPolicy
) -> FillOutcome:
    """Apply one FILL event read at ``offset`` of its fills partition to a dataset's entry.

    Redelivered events (at or before the entry's ``fills_offset``) change nothing; a fill id
    the entry already holds (a client that sent the same fill twice) is recorded as seen and
    not applied again. A refused fill leaves rows, columns and segments exactly as they were;
    its staged segment is retired so the sweep deletes it.
    """
    if fill.kind == "COMPACT":
        return apply_compaction(entry, fill, offset, now)
    current = entry or ManagedDataset(fill.channel, fill.dataset_code, created_at=now)
    if offset <= current.fills_offset:
        return FillOutcome("fill_redelivered", None)
    if not own_segment(fill.channel, fill.dataset_code, fill.segment_key):
        # From a producer that wrote the fills topic directly: the key is neither written nor
        # retired (the sweep would delete it), so no fill can touch another dataset's objects.
        error = InvalidObjectKey(
            f"segment key {fill.segment_key[:120]!r} is not under "
            f"{segment_prefix(fill.channel, fill.dataset_code)!r}"
        )
        record = _record(fill, "REJECTED", current.version, now, error)
        refused = replace(
            current, fills_offset=offset, fills=_history(current.fills, record, policy),
            updated_at=now,
        )  # fmt: skip
        return FillOutcome("fill_rejected", refused, record)
    segment = Segment(fill.segment_key, fill.rows, fill.bytes, fill.fill_id, now)
    if current.fill(fill.fill_id) is not None:
        # Every HTTP attempt stages under its own key: this copy is never used.
        unused = Retired(current.version, "repeated", (segment,), now)
        return FillOutcome(
            "fill_repeated",
            replace(current, fills_offset=offset, retired=(*current.retired, unused)),
        )
    try:
        if len(fill.columns) > policy.max_columns:
            raise TooManyColumns(
                f"{len(fill.columns)} columns; a dataset has at most {policy.max_columns}"
            )
        if fill.mode == "APPEND" and current.version > 0:
            check_append(current.columns, fill.columns)
            if len(current.segments) >= policy.max_segments:
                raise TooManySegments(
                    f"version {current.version} of {fill.dataset_code!r} already has "
                    f"{len(current.segments)} segments (EXHAUST_DATASET_MAX_SEGMENTS); send "
                    "the rows again with append=false to start a new version"
                )
    except ExhaustError as exc:
        record = _record(fill, "REJECTED", current.version, now, exc)
        retired = Retired(current.version, "refused", (segment,), now)
        updated = replace(
            current,
            fills_offset=offset,
            fills=_history(current.fills, record, policy),
            retired=(*current.retired, retired),
            updated_at=now,
        )
        return FillOutcome("fill_rejected", updated, record)
    if fill.mode == "APPEND" and current.version > 0:
        version, segments = current.version, (*current.segments, segment)
        retired_now: tuple[Retired, ...] = ()
    else:
        version, segments = current.version + 1, (segment,)
        retired_now = (
            (Retired(current.version, "superseded", current.segments, now),)
            if current.segments
            else ()
        )
    record = _record(fill, "APPLIED", version, now)
    updated = replace(
        current,
        version=version,
        columns=fill.columns,
        segments=segments,
        rows=sum(s.rows for s in segments),
        bytes=sum(s.bytes for s in segments),
        updated_at=now,
        fills_offset=offset,
        fills=_history(current.fills, record, policy),
        retired=(*current.retired, *retired_now),
    )
    return FillOutcome("fill_applied", updated, record)


def _record(
    fill: Fill, status: FillStatus, version: int, now: int, error: ExhaustError | None = None
) -> FillRecord:
    return FillRecord(
        fill_id=fill.fill_id,
        user_code=fill.user_code,
        mode=fill.mode,
        status=status,
        rows=fill.rows if status == "APPLIED" else 0,
        version=version,
        requested_at=fill.requested_at,
        applied_at=now,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
    )


def _history(
    fills: tuple[FillRecord, ...], record: FillRecord, policy: DatasetPolicy
) -> tuple[FillRecord, ...]:
    return (*fills, record)[-policy.history :]


def due_for_deletion(
    entry: ManagedDataset, now: int, policy: DatasetPolicy
) -> tuple[ManagedDataset | None, list[str]]:
    """Retired segments past their grace: the entry without them, and the keys to delete.

    ``(None, [])`` when nothing is due. The caller deletes the objects first, then writes the
    entry: a crash in between deletes them again (deleting a missing object succeeds).
    """
    due = [r for r in entry.retired if r.retired_at + policy.grace_ms <= now]
    if not due:
        return None, []
    live = {s.key for s in entry.segments}
    keys = sorted({s.key for r in due for s in r.segments} - live)
    keys = [k for k in keys if own_segment(entry.channel, entry.code, k)]  # never another's
    kept = tuple(r for r in entry.retired if r.retired_at + policy.grace_ms > now)
    return replace(entry, retired=kept), keys


__all__ = [
    "SUBTYPES",
    "TYPE_NAMES",
    "Column",
    "ColumnType",
    "DatasetPolicy",
    "Fill",
    "FillMode",
    "FillOutcome",
    "FillRecord",
    "ManagedDataset",
    "Retired",
    "Segment",
    "apply_fill",
    "check_append",
    "dataset_key",
    "due_for_deletion",
    "parse_columns",
]
