"""The read model: ``exhaust.jobs`` materialised into an indexed SQLite file.

Every worker keeps one, fed from *all* partitions of the jobs topic (not only the ones it
writes), so any worker answers any query. The file stores, in the same transaction as the rows,
the next offset of each partition; a restart resumes where it stopped and an empty file rebuilds
everything from the topic (the compacted topic alone is the source of truth).

Queries are per channel: a channel never sees another channel's jobs. Listing is newest first
(by ``submitted_at``, then ``request_id``) with an opaque cursor.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import InvalidConfig
from app.model import Job

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    request_id   TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    tag          TEXT NOT NULL,
    status       TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_channel ON jobs (channel, submitted_at DESC, request_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_tag ON jobs (channel, tag, submitted_at DESC, request_id DESC);
CREATE TABLE IF NOT EXISTS offsets (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


@dataclass(frozen=True, slots=True)
class Change:
    """One record of the jobs topic: a job's new state, or a tombstone (``job is None``)."""

    partition: int
    offset: int
    request_id: str
    job: Job | None
    skip: bool = False  # undecodable: only advance the offset


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


class ReadModel:
    """SQLite-backed job index. Thread-safe; call from a worker thread, not the event loop."""

    def __init__(self, path: Path, topic: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.topic = topic
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def offsets(self) -> dict[int, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT partition, next_offset FROM offsets WHERE topic = ?", (self.topic,)
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def apply(self, changes: Iterable[Change]) -> int:
        """Apply a batch atomically, with the offsets it advances; return rows changed."""
        applied = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                next_offsets: dict[int, int] = {}
                for change in changes:
                    if change.skip:
                        pass
                    elif change.job is None:
                        self._db.execute(
                            "DELETE FROM jobs WHERE request_id = ?", (change.request_id,)
                        )
                    else:
                        job = change.job
                        self._db.execute(
                            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                job.request_id, job.channel, job.tag, job.status, job.dataset,
                                job.submitted_at, job.last_updated,
                                json.dumps(job.to_record(), separators=(",", ":")),
                            ),
                        )  # fmt: skip
                    next_offsets[change.partition] = change.offset + 1
                    applied += 1
                self._db.executemany(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                    [(self.topic, p, o) for p, o in next_offsets.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return applied

    def get(self, request_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM jobs WHERE request_id = ?", (request_id,)
            ).fetchone()
        return Job.from_record(json.loads(row[0])) if row else None

    def list(
        self,
        channel: str,
        *,
        tag: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        where: list[str] = ["channel = ?"]
        args: list[Any] = [channel]
        if tag is not None:
            where.append("tag = ?")
            args.append(tag)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if cursor:
            submitted_at, request_id = decode_cursor(cursor)
            where.append("(submitted_at < ? OR (submitted_at = ? AND request_id < ?))")
            args += [submitted_at, submitted_at, request_id]
        sql = (
            f"SELECT record FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY submitted_at DESC, request_id DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        jobs = [Job.from_record(json.loads(r[0])) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(jobs[-1].submitted_at, jobs[-1].request_id) if more else None
        return Page(jobs, next_cursor)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM jobs").fetchone()[0])


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
