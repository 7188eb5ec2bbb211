"""Deterministic, realistic sample datasets, so that a new user sees every profile work (and
the tests fill the same data): rows are a pure function of a seed and the dates given.

Sunbird profile (seed 002): ``users``, ``course-enrolments`` and ``assessment-responses`` (what
``progress-exhaust``, ``response-exhaust`` and ``userinfo-exhaust`` read, by ``batchId``), and
``summary-events`` (what the standard datasets ``summary-rollup``,
``summary-channel-exhaust`` and ``public-summary-rollup`` roll up per day).

USAspending profile (seed 004): ``awards`` and ``transactions``, with the download columns of
:mod:`app.domain.usaspending` (what ``POST /v2/download/awards`` and ``…/transactions`` read).

Learnosity-style profile (seeds 000/001): ``sessions`` (what ``sessions-summary-by-group``
joins the uploaded users with) and the users-by-school NDJSON a client uploads.
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


# --- USAspending profile (seed 004) --------------------------------------------------------

AGENCIES = (
    ("097", "Department of Defense", ("Department of the Army", "Department of the Navy")),
    ("089", "Department of Energy", ("Department of Energy",)),
    ("080", "National Aeronautics and Space Administration",
     ("National Aeronautics and Space Administration",)),
    ("075", "Department of Health and Human Services",
     ("National Institutes of Health", "Centers for Disease Control and Prevention")),
    ("070", "Department of Homeland Security",
     ("Cybersecurity and Infrastructure Security Agency",)),
)  # fmt: skip
RECIPIENTS = (
    ("Acme Solar Systems LLC", "CA", "San Diego"),
    ("Blue Ridge Analytics Inc", "VA", "Reston"),
    ("Cascade Biomedical Research", "WA", "Seattle"),
    ("Delta Cyber Defense Corp", "MD", "Columbia"),
    ("Evergreen Grid Partners", "OR", "Portland"),
    ("Frontier Aerospace Holdings", "TX", "Houston"),
    ("Granite State University", "NH", "Durham"),
    ("Harbor Logistics Group", "FL", "Tampa"),
)  # fmt: skip
CONTRACT_TYPES = {"A": "BPA CALL", "B": "PURCHASE ORDER", "C": "DELIVERY ORDER",
                  "D": "DEFINITIVE CONTRACT"}  # fmt: skip
GRANT_TYPES = {"02": "BLOCK GRANT", "03": "FORMULA GRANT", "04": "PROJECT GRANT",
               "05": "COOPERATIVE AGREEMENT"}  # fmt: skip
SUBJECTS = ("solar array maintenance", "cybersecurity operations support", "vaccine research",
            "satellite ground systems", "grid modernization study", "logistics IT services",
            "STEM education outreach", "wildfire sensing network")  # fmt: skip
NAICS = (("541511", "CUSTOM COMPUTER PROGRAMMING SERVICES"),
         ("541715", "RESEARCH AND DEVELOPMENT IN THE PHYSICAL SCIENCES"),
         ("221114", "SOLAR ELECTRIC POWER GENERATION"),
         ("336414", "GUIDED MISSILE MANUFACTURING"))  # fmt: skip
PSC = ("R425", "AJ11", "D302", "Y1AA")


def awards_and_transactions(count: int = 400, seed: int = 11) -> list[SampleDataset]:
    """``count`` awards (half contracts, half assistance) from fiscal year 2024 on, each with
    1-5 transactions whose obligations sum to the award's total."""
    from app.domain.usaspending import AWARD_COLUMNS, TRANSACTION_COLUMNS

    rng = random.Random(seed)
    awards, transactions = [], []
    for n in range(count):
        code, agency, subs = rng.choice(AGENCIES)
        sub = rng.choice(subs)
        funder = rng.choice(AGENCIES) if rng.random() < 0.2 else (code, agency, subs)
        f_code, f_agency, f_subs = funder
        f_sub = rng.choice(f_subs)
        recipient, state, city = rng.choice(RECIPIENTS)
        contract = n % 2 == 0
        type_code = rng.choice(sorted(CONTRACT_TYPES if contract else GRANT_TYPES))
        type_name = (CONTRACT_TYPES if contract else GRANT_TYPES)[type_code]
        piid = f"{code}{n:06d}C{rng.randrange(10**4):04d}" if contract else None
        fain = None if contract else f"{code}G{n:07d}"
        naics, naics_description = rng.choice(NAICS) if contract else (None, None)
        psc = rng.choice(PSC) if contract else None
        cfda = None if contract else f"{int(code) % 100:02d}.{rng.randrange(1, 999):03d}"
        subject = rng.choice(SUBJECTS)
        base = dt.date(2023, 10, 1) + dt.timedelta(days=rng.randrange(3 * 365 - 60))
        actions = sorted(
            base + dt.timedelta(days=rng.randrange(0, 360)) for _ in range(rng.randrange(1, 6))
        )
        actions[0] = base
        amounts = [round(rng.uniform(5_000, 2_500_000), 2) for _ in actions]
        total = round(sum(amounts), 2)
        uei = f"{chr(65 + rng.randrange(26))}{rng.randrange(10**10, 10**11)}"[:12]
        description = f"{subject.upper()} FOR {sub.upper()}"
        assistance = None if contract else f"{type_name} ({type_code})"
        awarding = f"{agency} ({code})"
        awards.append([
            piid, fain, None, type_code, type_name, assistance, total, round(total * 1.2, 2),
            round(total * 1.5, 2), base.isoformat(), actions[-1].isoformat(), base.isoformat(),
            (base + dt.timedelta(days=730)).isoformat(), awarding, code, agency,
            f"{int(code):04d}", sub, f_code, f_agency, f_sub, uei, recipient.upper(),
            recipient.upper(), "USA", state, city.upper(), state, description, naics,
            naics_description, psc, cfda,
        ])  # fmt: skip
        running = 0.0
        for m, (day, amount) in enumerate(zip(actions, amounts, strict=True)):
            running = round(running + amount, 2)
            action = ("A", "NEW") if m == 0 else ("C", "FUNDING ONLY ACTION")
            transactions.append([
                piid, fain, str(m), str(m), amount, running, day.isoformat(), action[0],
                action[1], type_code, type_name, assistance, awarding, code, agency,
                f"{int(code):04d}", sub, f_code, f_agency, f_sub, uei, recipient.upper(), "USA",
                state, city.upper(), state,
                description if m == 0 else f"{description}: MODIFICATION {m}", naics, psc, cfda,
            ])  # fmt: skip
    award_columns = [{"name": c.value, "type": c.type} for c in AWARD_COLUMNS]
    transaction_columns = [{"name": c.value, "type": c.type} for c in TRANSACTION_COLUMNS]
    return [SampleDataset("awards", award_columns, awards),
            SampleDataset("transactions", transaction_columns, transactions)]  # fmt: skip


# --- Learnosity-style profile (seeds 000/001) ----------------------------------------------

SCHOOLS = ("Northside Primary", "Lakeview Middle", "Riverside High", "Hillcrest Academy")
ACTIVITIES = ("act-math-2026-t1", "act-ela-2026-t1", "act-science-2026-t1")


def learnosity_sessions(users_count: int = 120, seed: int = 5) -> SampleDataset:
    """Assessment sessions of ``users_count`` learners: each takes every activity once or
    twice in term 1 of 2026 (score out of 20)."""
    rng = random.Random(seed)
    rows = []
    for n in range(users_count):
        ability = rng.uniform(0.3, 0.95)
        for activity in ACTIVITIES:
            for attempt in range(rng.choice((1, 1, 2))):
                done = dt.datetime(2026, 2, 2, 9) + dt.timedelta(hours=rng.randrange(24 * 60))
                score = max(0, min(20, round(rng.gauss(ability * 20, 2.5))))
                rows.append([
                    str(uuid_for(seed, n, activity, attempt)), f"learner-{n:04d}", activity,
                    score, 20, done.isoformat(sep=" "),
                ])  # fmt: skip
    columns = [
        {"name": "session_id", "type": "string", "subtype": "uuid"},
        {"name": "user_id", "type": "string"},
        {"name": "activity_id", "type": "string"},
        {"name": "score", "type": "number"},
        {"name": "max_score", "type": "number"},
        {"name": "dt_completed", "type": "datetime"},
    ]
    return SampleDataset("sessions", columns, rows)


def uuid_for(*parts: object) -> str:
    """A deterministic UUID of ``parts`` (sample data must not change between runs)."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(str(p) for p in parts)))


def learnosity_users(users_count: int = 120) -> str:
    """The upload of a sessions-summary-by-group dataset: one NDJSON line per learner with
    their group (school)."""
    import json

    return (
        "\n".join(
            json.dumps({"user_id": f"learner-{n:04d}", "group": SCHOOLS[n % len(SCHOOLS)]})
            for n in range(users_count)
        )
        + "\n"
    )
