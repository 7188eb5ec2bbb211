"""Deterministic, realistic sample datasets, so that a new user sees every profile work (and
the tests fill the same data): rows are a pure function of a seed and the dates given.

Sunbird profile (seed 002): ``users``, ``course-enrolments`` and ``assessment-responses`` (what
``progress-exhaust``, ``response-exhaust`` and ``userinfo-exhaust`` read, by ``batchId``), and
``summary-events`` (what the standard datasets ``summary-rollup``,
``summary-channel-exhaust`` and ``public-summary-rollup`` roll up per day).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

BATCHES = ("0131092891882700800", "0131092891882700801")
COURSES = {
    "0131092891882700800": ("do_11299034610144870411", "Foundations of Data Literacy"),
    "0131092891882700801": ("do_11299034610144870412", "Statistics for Teachers"),
}
STATES = {
    "Karnataka": ("Bengaluru Urban", "Mysuru", "Belagavi"),
    "Maharashtra": ("Pune", "Nagpur", "Nashik"),
    "Tamil Nadu": ("Chennai", "Madurai", "Coimbatore"),
}
FIRST = ("Asha", "Ravi", "Meera", "Arjun", "Kavya", "Rahul", "Divya", "Vikram", "Sneha", "Kiran")
LAST = ("Rao", "Patil", "Iyer", "Sharma", "Nair", "Reddy", "Kulkarni", "Menon", "Das", "Joshi")
CONTENT = tuple(f"do_3129{n:04d}" for n in range(12))
APPS = ("prod.diksha.app", "prod.diksha.portal")


@dataclass(frozen=True, slots=True)
class SampleDataset:
    code: str
    columns: list[dict[str, Any]]
    rows: list[list[Any]]


def _user_id(n: int) -> str:
    return f"95e4942d-cbe8-477d-aebd-{n:012x}"


def users(count: int = 60, seed: int = 7) -> SampleDataset:
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        state = rng.choice(sorted(STATES))
        rows.append([
            _user_id(n), f"{first} {last}", f"{first.lower()}.{last.lower()}{n}@example.org",
            f"9{rng.randrange(10**8, 10**9)}", state, rng.choice(STATES[state]),
            f"{state} State Education Board",
        ])  # fmt: skip
    columns = [
        {"name": "user_id", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "phone", "type": "string"},
        {"name": "state", "type": "string"},
        {"name": "district", "type": "string"},
        {"name": "org_name", "type": "string"},
    ]
    return SampleDataset("users", columns, rows)


def course_enrolments(users_count: int = 60, seed: int = 7) -> SampleDataset:
    """Every user in the first batch, every third also in the second."""
    rng = random.Random(seed + 1)
    rows = []
    start = dt.date(2026, 9, 1)
    for n in range(users_count):
        for b, batch in enumerate(BATCHES):
            if b == 1 and n % 3:
                continue
            course_id, course_name = COURSES[batch]
            enrolled = start + dt.timedelta(days=rng.randrange(30))
            progress = rng.choice((100, 100, 100, 80, 55, 30, 10, 0))
            completed = (
                enrolled + dt.timedelta(days=rng.randrange(5, 40)) if progress == 100 else None
            )
            rows.append([
                batch, course_id, course_name, f"{course_name} - Batch {b + 1}", _user_id(n),
                enrolled.isoformat(), completed.isoformat() if completed else None,
                progress, "Issued" if progress == 100 else "Not Issued",
                round(rng.uniform(40, 100), 1) if progress else None,
            ])  # fmt: skip
    columns = [
        {"name": "batch_id", "type": "string"},
        {"name": "course_id", "type": "string"},
        {"name": "course_name", "type": "string"},
        {"name": "batch_name", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "enrolled_on", "type": "date"},
        {"name": "completed_on", "type": "date"},
        {"name": "progress", "type": "integer"},
        {"name": "certificate_status", "type": "string"},
        {"name": "total_score", "type": "number"},
    ]
    return SampleDataset("course-enrolments", columns, rows)


def assessment_responses(users_count: int = 60, seed: int = 7) -> SampleDataset:
    rng = random.Random(seed + 2)
    rows = []
    for n in range(users_count):
        for batch in BATCHES[: 1 if n % 3 else 2]:
            course_id, _ = COURSES[batch]
            attempt = f"att-{n:04d}-{batch[-1]}"
            when = dt.datetime(2026, 10, 1, 9) + dt.timedelta(hours=rng.randrange(24 * 30))
            for q in range(5):
                score = rng.choice((0, 1, 1, 1))
                rows.append([
                    batch, course_id, _user_id(n), attempt, f"do_q{q:03d}",
                    rng.choice(("mcq", "mcq", "mtf", "ftb")), rng.choice("ABCD"),
                    score, 1, (when + dt.timedelta(minutes=2 * q)).isoformat(sep=" "),
                ])  # fmt: skip
    columns = [
        {"name": "batch_id", "type": "string"},
        {"name": "course_id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "attempt_id", "type": "string"},
        {"name": "question_id", "type": "string"},
        {"name": "question_type", "type": "string"},
        {"name": "response", "type": "string"},
        {"name": "score", "type": "number"},
        {"name": "max_score", "type": "number"},
        {"name": "attempted_on", "type": "datetime"},
    ]
    return SampleDataset("assessment-responses", columns, rows)


def summary_events(days: list[dt.date], per_day: int = 200, seed: int = 7) -> SampleDataset:
    """``per_day`` session summaries on each of ``days`` (UTC), 40 devices, 60 users."""
    rows = []
    for day in days:
        rng = random.Random(f"{seed}-{day.isoformat()}")
        for _ in range(per_day):
            ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randrange(86400))
            rows.append([
                ts.isoformat(sep=" "), f"device-{rng.randrange(40):03d}",
                _user_id(rng.randrange(60)), rng.choice(CONTENT), rng.choice(APPS),
                round(rng.uniform(5, 1800), 2), rng.randrange(0, 60),
            ])  # fmt: skip
    columns = [
        {"name": "ts", "type": "datetime"},
        {"name": "device_id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "content_id", "type": "string"},
        {"name": "pdata_id", "type": "string"},
        {"name": "time_spent", "type": "number"},
        {"name": "interactions", "type": "integer"},
    ]
    return SampleDataset("summary-events", columns, rows)


def sunbird(today: dt.date, history_days: int = 7) -> list[SampleDataset]:
    """The Sunbird profile's datasets, with summary events on the ``history_days`` before
    ``today``."""
    days = [today - dt.timedelta(days=n) for n in range(history_days, 0, -1)]
    return [users(), course_enrolments(), assessment_responses(), summary_events(days)]
