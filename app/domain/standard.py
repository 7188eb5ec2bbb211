"""Standard datasets: one job per channel and day for every type declared ``schedule: daily``
(Sunbird's ``summary-rollup`` and ``summary-channel-exhaust``). No I/O and no clock: the
scheduler, ``exhaust backfill`` and ``GET /dataset/get`` all derive the same request (and so the
same job id) for a (type, channel, day), which makes a second submission a duplicate and lets
the listing find a day's job with one point read.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

from app.domain.dedup import sunbird_request_id
from app.domain.errors import InvalidConfig
from app.domain.model import DatasetRequest

SCHEDULER = "exhaust-scheduler"  # requested_by of every standard job


def standard_request_id(dataset: str, channel: str, day: dt.date) -> str:
    iso = day.isoformat()
    return sunbird_request_id(dataset, iso, SCHEDULER, channel, iso)


def standard_request(dataset: str, channel: str, day: dt.date, now_ms: int) -> DatasetRequest:
    """The request of ``dataset`` for ``channel`` and ``day`` (the type's ``config.date``)."""
    return DatasetRequest(
        request_id=standard_request_id(dataset, channel, day),
        tag=f"{dataset}:{channel}",
        dataset=dataset,
        channel=channel,
        requested_by=SCHEDULER,
        config=json.dumps({"date": day.isoformat()}),
        submitted_at=now_ms,
        labels={"schedule": "daily"},
    )


def days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """``first`` .. ``last`` inclusive."""
    for n in range((last - first).days + 1):
        yield first + dt.timedelta(days=n)


def parse_day(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidConfig(f"{what} must be a date (yyyy-mm-dd); got {value[:40]!r}") from exc


def due_days(today: dt.date, catch_up_days: int) -> list[dt.date]:
    """The days a scheduler run submits: the last ``catch_up_days`` complete days (yesterday
    first), so a worker that was down for a while fills the gap when it comes back."""
    return [today - dt.timedelta(days=n) for n in range(1, catch_up_days + 1)]
