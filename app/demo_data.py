"""Deterministic, realistic sample datasets, so that a new user sees every profile work (and
the tests fill the same data): rows are a pure function of a seed and the dates given.

Sunbird profile: ``users``, ``course-enrolments`` and ``assessment-responses`` (what
``progress-exhaust``, ``response-exhaust`` and ``userinfo-exhaust`` read, by ``batchId``), and
``summary-events`` (what the standard datasets ``summary-rollup``,
``summary-channel-exhaust`` and ``public-summary-rollup`` roll up per day).

USAspending profile: ``awards`` and ``transactions``, with the download columns of
:mod:`app.domain.usaspending` (what ``POST /v2/download/awards`` and ``…/transactions`` read).

Learnosity-style profile: ``sessions`` (what ``sessions-summary-by-group``
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


# --- USAspending profile --------------------------------------------------------------------

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
# name, country, state, state FIPS, city, county, county code, zip, zip+4, district
RECIPIENTS = (
    ("Acme Solar Systems LLC", "USA", "CA", "06", "San Diego", "San Diego", "073", "92101",
     "4512", "50"),
    ("Blue Ridge Analytics Inc", "USA", "VA", "51", "Reston", "Fairfax", "059", "20190", "2201",
     "11"),
    ("Cascade Biomedical Research", "USA", "WA", "53", "Seattle", "King", "033", "98109", "1024",
     "07"),
    ("Delta Cyber Defense Corp", "USA", "MD", "24", "Columbia", "Howard", "027", "21044", "3310",
     "03"),
    ("Evergreen Grid Partners", "USA", "OR", "41", "Portland", "Multnomah", "051", "97204",
     "1120", "03"),
    ("Frontier Aerospace Holdings", "USA", "TX", "48", "Houston", "Harris", "201", "77002", "5005",
     "18"),
    ("Granite State University", "USA", "NH", "33", "Durham", "Strafford", "017", "03824", "3547",
     "01"),
    ("Harbor Logistics Group", "USA", "FL", "12", "Tampa", "Hillsborough", "057", "33602", "4210",
     "14"),
    ("Maple Leaf Research Ltd", "CAN", None, None, "Toronto", None, None, None, None, None),
    ("Nordic Wind Systems AS", "NOR", None, None, "Oslo", None, None, None, None, None),
)  # fmt: skip
COUNTRIES = {"USA": "UNITED STATES", "CAN": "CANADA", "NOR": "NORWAY"}
STATE_NAMES = {"CA": "CALIFORNIA", "VA": "VIRGINIA", "WA": "WASHINGTON", "MD": "MARYLAND",
               "OR": "OREGON", "TX": "TEXAS", "NH": "NEW HAMPSHIRE", "FL": "FLORIDA"}  # fmt: skip
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
PSC = (("R425", "SUPPORT- PROFESSIONAL: ENGINEERING/TECHNICAL"),
       ("AJ11", "GENERAL SCIENCE AND TECHNOLOGY R&D SERVICES; BASIC RESEARCH"),
       ("D302", "IT AND TELECOM - SYSTEMS DEVELOPMENT"),
       ("Y1AA", "CONSTRUCTION OF OFFICE BUILDINGS"))  # fmt: skip
# Disaster emergency fund codes as the download lists them ("code: title;…").
DEFC = ("Q: Excluded from tracking (uses non-emergency/non-disaster designated appropriations)",
        "L: COVID-19 Emergency;M: COVID-19 Emergency",
        "Z: Infrastructure Investment and Jobs Act")  # fmt: skip
MAIN_ACCOUNTS = {"097": "0100", "089": "0222", "080": "0120", "075": "0850", "070": "0530"}


def _fiscal_year(day: str | None) -> int | None:
    """The federal fiscal year of a date: October starts the next year's."""
    if day is None:
        return None
    date = dt.date.fromisoformat(day)
    return date.year + (date.month >= 10)


def _filler(column: Any, n: int, rng: random.Random) -> Any:
    """A plausible value for a column the sample does not set by name."""
    value: str = column.value
    if column.type == "number":
        return round(rng.uniform(0, 50_000), 2) if rng.random() < 0.3 else 0.0
    if column.type == "integer":
        return rng.randrange(1, 12)
    if column.type == "date":
        return None
    if value.endswith("_code"):
        return rng.choice(("A", "B", "C", "N", "X"))
    if value.endswith(("_name", "_description", "_text", "_title")) or "officer" in value:
        return None if rng.random() < 0.5 else f"{value.replace('_', ' ').upper()} {n % 7}"
    return rng.choice(("t", "f", "f", "f"))  # the business-type flags


def awards_and_transactions(count: int = 400, seed: int = 11) -> list[SampleDataset]:
    """``count`` awards (half contracts, half assistance) from fiscal year 2024 on, each with
    1-5 transactions whose obligations sum to the award's total, with a value in every column
    of usaspending-api's download for its kind (a contract's columns are null on assistance
    rows and the other way round, as in the two files of the real download)."""
    from app.domain.usaspending import AWARD_COLUMNS, TRANSACTION_COLUMNS

    rng = random.Random(seed)
    awards, transactions = [], []
    for n in range(count):
        code, agency, subs = rng.choice(AGENCIES)
        sub = rng.choice(subs)
        funder = rng.choice(AGENCIES) if rng.random() < 0.2 else (code, agency, subs)
        f_code, f_agency, f_subs = funder
        f_sub = rng.choice(f_subs)
        recipient = rng.choice(RECIPIENTS)
        name, country, state, _, city, county, _, zip5, zip4, _ = recipient
        pop = recipient if country == "USA" or rng.random() < 0.5 else rng.choice(RECIPIENTS[:8])
        contract = n % 2 == 0
        type_code = rng.choice(sorted(CONTRACT_TYPES if contract else GRANT_TYPES))
        type_name = (CONTRACT_TYPES if contract else GRANT_TYPES)[type_code]
        piid = f"{code}{n:06d}C{rng.randrange(10**4):04d}" if contract else None
        fain = None if contract else f"{code}G{n:07d}"
        naics, naics_description = rng.choice(NAICS) if contract else (None, None)
        psc, psc_description = rng.choice(PSC) if contract else (None, None)
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
        award_key = (f"CONT_AWD_{piid}_{code}00_-NONE-_-NONE-" if contract
                     else f"ASST_NON_{fain}_{int(code):04d}")  # fmt: skip
        main = MAIN_ACCOUNTS[f_code]
        defc = DEFC[0] if rng.random() < 0.7 else rng.choice(DEFC[1:])
        covid = round(total * 0.4, 2) if defc.startswith("L") else 0.0
        iija = round(total * 0.3, 2) if defc.startswith("Z") else 0.0
        shared: dict[str, Any] = {
            "award_id_piid": piid, "award_id_fain": fain,
            "award_id_uri": None if contract else f"URI{n:08d}",
            "sai_number": None if contract else f"SAI-{state or 'NA'}-{n:05d}",
            "award_type_code": type_code, "award_type": type_name, "assistance_type": assistance,
            "assistance_type_code": None if contract else type_code,
            "assistance_type_description": None if contract else type_name,
            "awarding_agency": f"{agency} ({code})", "awarding_agency_code": code,
            "awarding_agency_name": agency, "awarding_sub_agency_code": f"{int(code):04d}",
            "awarding_sub_agency_name": sub, "funding_agency_code": f_code,
            "funding_agency_name": f_agency, "funding_sub_agency_code": f"{int(f_code):04d}",
            "funding_sub_agency_name": f_sub,
            "awarding_office_code": f"{code}OF1", "awarding_office_name": f"{sub.upper()} OFFICE",
            "funding_office_code": f"{f_code}OF1", "funding_office_name": f"{f_sub.upper()} OFFICE",
            "recipient_uei": uei, "recipient_name": name.upper(), "recipient_name_raw": name,
            "recipient_parent_uei": uei, "recipient_parent_name": name.upper(),
            "recipient_parent_name_raw": name, "recipient_duns": None,
            "recipient_parent_duns": None,
            "recipient_country_code": country, "recipient_country_name": COUNTRIES[country],
            "recipient_state_code": state, "recipient_state_name": STATE_NAMES.get(state or ""),
            "recipient_city_name": city.upper(), "recipient_county_name": (county or "").upper()
            or None, "recipient_zip_4_code": f"{zip5}{zip4}" if zip5 else None,
            "recipient_zip_code": zip5, "recipient_zip_last_4_code": zip4,
            "recipient_address_line_1": f"{100 + n % 900} MAIN ST",
            "recipient_address_line_2": None,
            "recipient_foreign_city_name": None if country == "USA" else city.upper(),
            "recipient_foreign_postal_code": None if country == "USA" else f"P{n:05d}",
            "recipient_city_code": None, "recipient_foreign_province_name": None,
            "primary_place_of_performance_country_code": pop[1],
            "primary_place_of_performance_country_name": COUNTRIES[pop[1]],
            "primary_place_of_performance_state_code": pop[2],
            "primary_place_of_performance_state_name": STATE_NAMES.get(pop[2] or ""),
            "primary_place_of_performance_city_name": pop[4].upper(),
            "primary_place_of_performance_county_name": (pop[5] or "").upper() or None,
            "primary_place_of_performance_zip_4": f"{pop[7]}{pop[8]}" if pop[7] else None,
            "primary_place_of_performance_scope": "Domestic" if pop[1] == "USA" else "Foreign",
            "primary_place_of_performance_code": f"{pop[2]}**{pop[6]}" if pop[2] else "00FORGN",
            "primary_place_of_performance_foreign_location": None if pop[1] == "USA" else pop[4],
            "naics_code": naics, "naics_description": naics_description,
            "product_or_service_code": psc, "product_or_service_code_description": psc_description,
            "cfda_number": cfda, "cfda_title": None if contract else subject.title(),
            "cfda_numbers_and_titles": None if contract else f"{cfda}: {subject.title()}",
            "disaster_emergency_fund_codes": defc,
            "treasury_accounts_funding_this_award": f"{f_code}-X-{main}-000",
            "federal_accounts_funding_this_award": f"{f_code}-{main}",
            "object_classes_funding_this_award": "25.1: Advisory and assistance services",
            "program_activities_funding_this_award": "0001: OPERATIONS",
            "period_of_performance_start_date": base.isoformat(),
            "period_of_performance_current_end_date": (base + dt.timedelta(days=730)).isoformat(),
            "period_of_performance_potential_end_date": (base + dt.timedelta(days=1095)).isoformat()
            if contract else None,
            "solicitation_date": (base - dt.timedelta(days=60)).isoformat() if contract else None,
            "ordering_period_end_date": None,
            "last_modified_date": (actions[-1] + dt.timedelta(days=5)).isoformat(),
            "current_total_value_of_award": round(total * 1.2, 2) if contract else None,
            "potential_total_value_of_award": round(total * 1.5, 2) if contract else None,
            "usaspending_permalink": f"https://www.usaspending.gov/award/{award_key}",
            "number_of_actions": len(actions) if contract else None,
            "award_or_idv_flag": "AWARD" if contract else None,
        }  # fmt: skip
        for prefix, place in (("recipient", recipient), ("place_of_performance", pop)):
            cd = f"{place[2]}-{place[9]}" if place[9] else None
            fips = f"{place[3]}{place[6]}" if place[6] else None
            for level in ("summary", "transaction"):
                shared[f"prime_award_{level}_{prefix}_county_fips_code"] = fips
                shared[f"prime_award_{level}_{prefix}_state_fips_code"] = place[3]
                shared[f"prime_award_{level}_{prefix}_cd_original"] = cd
                shared[f"prime_award_{level}_{prefix}_cd_current"] = cd
        award = {
            **shared, "contract_award_unique_key": award_key if contract else None,
            "assistance_award_unique_key": None if contract else award_key,
            "total_obligated_amount": total, "total_outlayed_amount": round(total * 0.6, 2),
            "award_base_action_date": base.isoformat(),
            "award_latest_action_date": actions[-1].isoformat(),
            "award_base_action_date_fiscal_year": _fiscal_year(base.isoformat()),
            "award_latest_action_date_fiscal_year": _fiscal_year(actions[-1].isoformat()),
            "prime_award_base_transaction_description": description,
            "award_description": description,
            "obligated_amount_from_COVID-19_supplementals": covid,
            "outlayed_amount_from_COVID-19_supplementals": round(covid / 2, 2),
            "obligated_amount_from_IIJA_supplemental": iija,
            "outlayed_amount_from_IIJA_supplemental": round(iija / 2, 2),
            "total_funding_amount": None if contract else total,
        }  # fmt: skip
        awards.append(_row(AWARD_COLUMNS, award, contract, n, rng))
        running = 0.0
        for m, (day, amount) in enumerate(zip(actions, amounts, strict=True)):
            running = round(running + amount, 2)
            action = ("A", "NEW") if m == 0 else ("C", "FUNDING ONLY ACTION")
            transaction = {
                **shared, "contract_award_unique_key": award_key if contract else None,
                "assistance_award_unique_key": None if contract else award_key,
                "contract_transaction_unique_key": f"{award_key}_{m}" if contract else None,
                "assistance_transaction_unique_key": None if contract else f"{award_key}_{m}",
                "modification_number": str(m), "transaction_number": str(m),
                "federal_action_obligation": amount, "total_dollars_obligated": running,
                "total_obligated_amount": total, "action_date": day.isoformat(),
                "action_date_fiscal_year": _fiscal_year(day.isoformat()),
                "action_type_code": action[0], "action_type": action[1],
                "action_type_description": action[1],
                "transaction_description": description if m == 0
                else f"{description}: MODIFICATION {m}",
                "prime_award_base_transaction_description": description,
                "disaster_emergency_fund_codes_for_overall_award": defc,
                "obligated_amount_from_COVID-19_supplementals_for_overall_award": covid,
                "outlayed_amount_from_COVID-19_supplementals_for_overall_award":
                    round(covid / 2, 2),
                "obligated_amount_from_IIJA_supplemental_for_overall_award": iija,
                "outlayed_amount_from_IIJA_supplemental_for_overall_award": round(iija / 2, 2),
                "initial_report_date": (day + dt.timedelta(days=3)).isoformat(),
                "last_modified_date": (day + dt.timedelta(days=5)).isoformat(),
            }  # fmt: skip
            transactions.append(_row(TRANSACTION_COLUMNS, transaction, contract, n, rng))
    return [_sample("awards", AWARD_COLUMNS, awards),
            _sample("transactions", TRANSACTION_COLUMNS, transactions)]  # fmt: skip


def _row(columns: Any, values: dict[str, Any], contract: bool, n: int,
         rng: random.Random) -> list[Any]:  # fmt: skip
    """A row in column order: the values set by name, a filler in the row's kind's columns."""
    row = []
    for column in columns:
        if column.value in values:
            row.append(values[column.value])
        elif column.contracts if contract else column.assistance:
            row.append(_filler(column, n, rng))
        else:
            row.append(None)
    return row


def _sample(code: str, columns: Any, rows: list[list[Any]]) -> SampleDataset:
    declared = [{"name": c.name, "alias": c.value, "type": c.type} for c in columns]
    return SampleDataset(code, declared, rows)


# --- Learnosity-style profile -----------------------------------------------------------

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
