"""The scheduler of standard datasets decides, without a broker, which (type, channel, day)
jobs are due: complete days only (after the delay), channels holding the type's datasets, and
nothing the read model already holds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from app.catalog.loader import default_catalog
from app.domain import standard
from app.domain.model import Job
from app.settings import Settings
from app.stream.read_model import Change, ReadModel
from app.stream.scheduler import StandardScheduler, dataset_sources

NOW = dt.datetime(2026, 11, 30, 0, 30, tzinfo=dt.UTC).timestamp()  # 00:30 UTC


class Datasets:
    """The channels holding datasets, as DatasetView.channels_with answers."""

    def __init__(self, holders: dict[str, set[str]]) -> None:
        self.holders = holders

    def channels_with(self, codes: list[str]) -> list[str]:
        sets = [self.holders.get(code, set()) for code in codes]
        return sorted(set.intersection(*sets)) if sets else []


def scheduler(tmp_path: Path, delay: int, read_model: ReadModel) -> StandardScheduler:
    settings = Settings(standard_catch_up_days=2, standard_delay_seconds=delay)
    datasets: Any = Datasets({"summary-events": {"acme", "globex"}, "other": {"initech"}})
    return StandardScheduler(settings, default_catalog(), datasets, read_model,
                             submit=None, ready=[], clock=lambda: NOW)  # type: ignore[arg-type]  # fmt: skip


def test_due_jobs_are_the_complete_days_of_channels_holding_the_sources(tmp_path: Path) -> None:
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    assert dataset_sources(default_catalog().types["summary-rollup"]) == ["summary-events"]
    due = scheduler(tmp_path, 0, read_model).due()
    keys = {(r.dataset, r.channel, json.loads(r.config)["date"]) for r in due}
    types = ("public-summary-rollup", "summary-channel-exhaust", "summary-rollup")
    assert keys == {(t, c, d) for t in types for c in ("acme", "globex")
                    for d in ("2026-11-29", "2026-11-28")}  # fmt: skip
    assert all(r.request_id == standard.standard_request_id(
        r.dataset, r.channel, dt.date.fromisoformat(json.loads(r.config)["date"])) for r in due)  # fmt: skip
    # An hour's delay at 00:30: yesterday is not complete enough yet.
    late = {json.loads(r.config)["date"] for r in scheduler(tmp_path, 3600, read_model).due()}
    assert late == {"2026-11-28", "2026-11-27"}
    read_model.close()


def test_a_job_the_read_model_holds_is_not_submitted_again(tmp_path: Path) -> None:
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    day = dt.date(2026, 11, 29)
    request = standard.standard_request("summary-rollup", "acme", day, 1)
    job = Job(request_id=str(request.request_id), tag=request.tag, dataset=request.dataset,
              channel="acme", requested_by=request.requested_by, status="FAILED",
              last_updated=1, config=request.config, fingerprint="f", attempt=1,
              max_attempts=3, submitted_at=1)  # fmt: skip
    read_model.apply([Change(0, 0, job.request_id, job)])
    due = scheduler(tmp_path, 0, read_model).due()
    assert ("summary-rollup", "acme", "2026-11-29") not in {
        (r.dataset, r.channel, json.loads(r.config)["date"]) for r in due
    }
    assert len(due) == 11
    read_model.close()
