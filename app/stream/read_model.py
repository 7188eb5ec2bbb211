"""The read model: ``exhaust.jobs`` materialised into an indexed SQLite file.

Every worker that serves the API keeps one, fed from *all* partitions of the jobs topic, so
any worker answers any query (a writer without the API keeps only :class:`IdIndex`). The file
stores, in the same transaction as the rows, the next offset of each partition; a restart
resumes where it stopped and an empty file rebuilds everything from the topic (the compacted
topic alone is the source of truth).

Rows keep the record's Avro bytes exactly as read from the topic (no re-encoding on the way
in) next to the columns that are queried, in an ordinary rowid table (~500-byte rows insert
3x faster than WITHOUT ROWID). A rebuild from offset zero bulk-loads without the listing
indexes and creates them once caught up; the feeder decodes only the queried fields. Two
connections on one WAL file: the feeder writes through one (from a worker thread, under a
lock); reads go through the other from the event loop thread only, without a lock and without
a thread hop (a point read is ~10 µs; WAL readers never wait for the writer). A file written
by an older layout is dropped and rebuilt: it is derived state.

Queries are per channel: a channel never sees another channel's jobs, and ids are per channel
(every read names the channel; the same id in two channels is two rows). A row's key is the
record's key in the topic: :func:`~app.domain.model.job_key` (``{channel}/{request_id}``), or the
bare ``request_id`` of a record written before ids were per channel, which stays readable until
the writer moves it (it writes the job under its new key, then a tombstone for the old one).
Listing is newest first (by ``submitted_at``, then ``request_id``) with an opaque cursor.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain.errors import InvalidConfig
from app.domain.model import Job, job_key
from app.stream.avro import registry

LAYOUT_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key          TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL,
    channel      TEXT NOT NULL,
    tag          TEXT NOT NULL,
    status       TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    record       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_id ON jobs (channel, request_id);
CREATE INDEX IF NOT EXISTS jobs_by_channel ON jobs (channel, submitted_at DESC, request_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_tag ON jobs (channel, tag, submitted_at DESC, request_id DESC);
"""
OFFSETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One record of the jobs topic: a job's new state, or a tombstone (``job is None``).

    ``job`` is a :class:`Job` or its decoded ``JobStatus`` record; ``raw`` the Avro bytes as
    read (stored as they are; encoded from ``job`` when absent).
    """

    partition: int
    offset: int
    key: str  # the record's key in the topic (a job key, or a legacy bare request id)
    job: Job | Record | None
    raw: bytes | None = None
    skip: bool = False  # undecodable: only advance the offset


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[Record]
    next_cursor: str | None


class _SqliteMaterialization:
    """A SQLite file fed from ``exhaust.jobs`` with its offsets in the same transaction.

    One connection writes (from the feeder's worker thread, under a lock); a second one reads,
    from the event-loop thread only (WAL readers never wait for the writer). A file written by
    another layout is dropped and rebuilt: it is derived state.
    """

    layout_version = 0
    schema = ""

    def __init__(self, path: Path, topic: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.topic = topic
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != self.layout_version:
            tables = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (table,) in tables.fetchall():
                self._db.execute(f'DROP TABLE IF EXISTS "{table}"')
            self._db.execute(f"PRAGMA user_version={self.layout_version}")
        self._db.executescript(self.schema + OFFSETS_SCHEMA)
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._reader.execute("PRAGMA query_only=ON")

    def close(self) -> None:
        with self._lock:
            self._reader.close()
            self._db.close()

    def caught_up(self) -> None:
        """Called once the feeder has reached the end of the topic."""

    def offsets(self) -> dict[int, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT partition, next_offset FROM offsets WHERE topic = ?", (self.topic,)
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    @staticmethod
    def _last_states(changes: Iterable[Change]) -> tuple[dict[str, Change], dict[int, int], int]:
        """Each job's last change of a batch (the topic is a changelog: the last state is the
        state), the next offset of every partition the batch advances, and how many it held."""
        latest: dict[str, Change] = {}
        next_offsets: dict[int, int] = {}
        applied = 0
        for change in changes:
            if not change.skip:
                latest[change.key] = change
            next_offsets[change.partition] = change.offset + 1
            applied += 1
        return latest, next_offsets, applied

    def _commit(
        self, statements: list[tuple[str, Iterable[tuple[Any, ...]]]], next_offsets: dict[int, int]
    ) -> None:
        """Run ``statements`` (SQL, rows) and advance the offsets, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for sql, rows in statements:
                    self._db.executemany(sql, rows)
                self._db.executemany(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                    [(self.topic, p, o) for p, o in next_offsets.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


class ReadModel(_SqliteMaterialization):
    """SQLite-backed job index. ``apply``/``offsets`` from any thread; reads on one thread."""

    # What the feeder decodes: the queried columns (the record is stored as read).
    fields: tuple[str, ...] | None = (
        "request_id", "channel", "tag", "status", "dataset", "submitted_at", "last_updated"
    )  # fmt: skip
    layout_version = LAYOUT_VERSION
    schema = SCHEMA
    label = "read_model"  # in exhaust_read_model_lag
    # How long the feeder gathers records for one transaction: the API's reads (and a
    # profile's read-your-writes) wait for the read model.
    linger_seconds = 0.02

    def __init__(self, path: Path, topic: str) -> None:
        super().__init__(path, topic)
        self.schemas = registry()
        if not self.offsets():
            # Built from offset zero: bulk-load without the listing indexes, create them once
            # caught up (:meth:`caught_up`); maintaining them row by row cost more than the rows.
            with self._lock:
                self._db.executescript(
                    "DROP INDEX IF EXISTS jobs_by_channel; DROP INDEX IF EXISTS jobs_by_tag; "
                    "DROP INDEX IF EXISTS jobs_by_id;"
                )

    def caught_up(self) -> None:
        """The feeder has reached the topic's end: make sure the listing indexes exist."""
        with self._lock:
            self._db.executescript(SCHEMA)

    def _row(self, change: Change) -> tuple[Any, ...]:
        job = change.job
        record = job.to_record() if isinstance(job, Job) else job
        assert record is not None
        raw = change.raw or self.schemas.encode("JobStatus", record)
        return (
            change.key, record["request_id"], record["channel"], record["tag"], record["status"],
            record["dataset"], record["submitted_at"], record["last_updated"], raw,
        )  # fmt: skip

    def apply(self, changes: Iterable[Change]) -> int:
        """Apply a batch atomically, with the offsets it advances; return records applied.

        Within a batch only each job's last state is written (the topic is a changelog).
        """
        latest, next_offsets, applied = self._last_states(changes)
        upserts = [self._row(c) for c in latest.values() if c.job is not None]
        deletes = [(c.key,) for c in latest.values() if c.job is None]
        self._commit(
            [
                ("DELETE FROM jobs WHERE key = ?", deletes),
                ("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", upserts),
            ],
            next_offsets,
        )
        return applied

    # --- reads (event-loop thread) ------------------------------------------------------------

    def get_record(self, channel: str, request_id: str) -> Record | None:
        """Job ``request_id`` of ``channel``: no other channel's job can answer for it. While a
        legacy record and its moved copy both exist, the newer state wins."""
        row = self._reader.execute(
            "SELECT record FROM jobs WHERE channel = ? AND request_id = ? "
            "ORDER BY last_updated DESC LIMIT 1",
            (channel, request_id),
        ).fetchone()
        return self.schemas.decode("JobStatus", row[0]) if row else None

    def get(self, channel: str, request_id: str) -> Job | None:
        record = self.get_record(channel, request_id)
        return Job.from_record(record) if record is not None else None

    def list_records(
        self,
        channel: str,
        *,
        tag: str | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        submitted_from: int | None = None,
        submitted_to: int | None = None,
    ) -> RecordPage:
        """A page of the channel's jobs, newest first; ``submitted_from``/``_to`` (epoch ms,
        inclusive) bound ``submitted_at`` in the query, so a narrow window never walks the
        channel's whole history."""
        where: list[str] = ["channel = ?"]
        args: list[Any] = [channel]
        if submitted_from is not None:
            where.append("submitted_at >= ?")
            args.append(submitted_from)
        if submitted_to is not None:
            where.append("submitted_at <= ?")
            args.append(submitted_to)
        if tag is not None:
            where.append("tag = ?")
            args.append(tag)
        if isinstance(status, str):
            where.append("status = ?")
            args.append(status)
        elif status is not None:  # any of several (a profile's word can name several states)
            where.append(f"status IN ({','.join('?' * len(status))})")
            args += list(status)
        if cursor:
            submitted_at, request_id = decode_cursor(cursor)
            where.append("(submitted_at < ? OR (submitted_at = ? AND request_id < ?))")
            args += [submitted_at, submitted_at, request_id]
        sql = (
            f"SELECT record FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY submitted_at DESC, request_id DESC LIMIT ?"
        )
        rows = self._reader.execute(sql, (*args, limit + 1)).fetchall()
        records = [self.schemas.decode("JobStatus", r[0]) for r in rows[:limit]]
        more = len(rows) > limit
        last = records[-1] if records else None
        next_cursor = (
            encode_cursor(last["submitted_at"], last["request_id"]) if more and last else None
        )
        return RecordPage(records, next_cursor)

    def count(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM jobs").fetchone()[0])

    def tag_of(self, channel: str, request_id: str) -> str | None:
        row = self._reader.execute(
            "SELECT tag FROM jobs WHERE channel = ? AND request_id = ? LIMIT 1",
            (channel, request_id),
        ).fetchone()
        return str(row[0]) if row else None


class IdIndex(_SqliteMaterialization):
    """Which tag every job id belongs to: all a writer without the API needs of the jobs topic.

    The writer checks that a client id is not reused with another tag (which lands in another
    partition, where its own table cannot see it). A full :class:`ReadModel` answers that too,
    but costs a processor-only worker a SQLite row with two indexes and the record per status
    change; this keeps one small row per job (a job's tag never changes), with the same
    offsets-in-the-transaction recovery.
    """

    fields: tuple[str, ...] | None = ("request_id", "channel", "tag")  # all the feeder decodes
    layout_version = 2
    label = "id_index"
    linger_seconds = 0.25  # nothing waits for it: fewer, larger transactions
    schema = (
        "CREATE TABLE IF NOT EXISTS ids (key TEXT PRIMARY KEY, job TEXT NOT NULL, "
        "tag TEXT NOT NULL) WITHOUT ROWID; CREATE INDEX IF NOT EXISTS ids_by_job ON ids (job);"
    )

    def apply(self, changes: Iterable[Change]) -> int:
        latest, next_offsets, applied = self._last_states(changes)
        inserts = []
        for key, change in latest.items():
            job = change.job
            if job is not None:
                record = job.to_record() if isinstance(job, Job) else job
                inserts.append(
                    (key, job_key(record["channel"], record["request_id"]), record["tag"])
                )
        deletes = [(key,) for key, c in latest.items() if c.job is None]
        self._commit(
            [
                ("DELETE FROM ids WHERE key = ?", deletes),
                ("INSERT OR IGNORE INTO ids VALUES (?, ?, ?)", inserts),
            ],
            next_offsets,
        )
        return applied

    def tag_of(self, channel: str, request_id: str) -> str | None:
        row = self._reader.execute(
            "SELECT tag FROM ids WHERE job = ? LIMIT 1", (job_key(channel, request_id),)
        ).fetchone()
        return str(row[0]) if row else None


Materialized = ReadModel | IdIndex


def encode_cursor(submitted_at: int, request_id: str) -> str:
    raw = json.dumps([submitted_at, request_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value: Any = json.loads(raw)
        return int(value[0]), str(value[1])
    except (ValueError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise InvalidConfig("cursor is not one this service returned") from exc
