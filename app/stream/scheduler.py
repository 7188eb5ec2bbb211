"""The scheduler of standard datasets: every ``settings.scheduler_interval_seconds``, for each
type declared ``schedule: daily``, it submits the last complete days' jobs of every channel
that holds the type's managed datasets (Sunbird's daily ``summary-rollup``).

It runs in every worker that serves the API (which has the read model and the dataset catalog).
Submissions are idempotent by construction: the job id of a (type, channel, day) is derived
(:func:`app.domain.standard.standard_request_id`), so two API workers, or a run after a
restart, submit the same job and the writer counts the second as a duplicate; a job the read
model already holds is not submitted again. A FAILED day is retried by ``exhaust backfill``
(the writer resubmits a failed job while it has attempts left).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from mode import Service

from app.catalog.types import Catalog, DatasetType
from app.domain import standard
from app.domain.errors import ExhaustError
from app.domain.model import DatasetRequest
from app.metrics import Metrics
from app.settings import Settings
from app.stream.dataset_view import DatasetView
from app.stream.read_model import ReadModel

log = logging.getLogger("exhaust.scheduler")


def dataset_sources(dataset_type: DatasetType) -> list[str]:
    """The managed dataset codes a scheduled type reads (its ``{dataset: code}`` sources)."""
    specs: dict[str, dict[str, str]] = getattr(dataset_type, "source_specs", {})
    return [spec["dataset"] for spec in specs.values() if "dataset" in spec]


class StandardScheduler(Service):
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        datasets: DatasetView,
        read_model: ReadModel,
        submit: Callable[[DatasetRequest], Awaitable[None]],
        ready: list[asyncio.Event],
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.catalog = catalog
        self.datasets = datasets
        self.read_model = read_model
        self.submit = submit
        self.ready = ready
        self.metrics = metrics
        self.clock = clock

    def due(self) -> list[DatasetRequest]:
        """The standard jobs due now that the read model does not hold yet."""
        now = self.clock()
        delayed = dt.datetime.fromtimestamp(now - self.settings.standard_delay_seconds, dt.UTC)
        days = standard.due_days(delayed.date(), self.settings.standard_catch_up_days)
        due = []
        for dataset_type in sorted(self.catalog.types.values(), key=lambda t: t.name):
            if dataset_type.schedule != "daily":
                continue
            channels = self.datasets.channels_with(dataset_sources(dataset_type))
            for channel in channels:
                if not dataset_type.admits(channel, None):
                    continue
                for day in days:
                    request_id = standard.standard_request_id(dataset_type.name, channel, day)
                    if self.read_model.get_record(channel, request_id) is None:
                        request = standard.standard_request(
                            dataset_type.name, channel, day, int(now * 1000)
                        )
                        due.append(request)
        return due

    async def run_once(self) -> int:
        submitted = 0
        for request in self.due():
            try:
                await self.submit(request)
                submitted += 1
            except ExhaustError as exc:  # the next run tries again
                log.warning("standard job %s not submitted: %s", request.request_id, exc)
        if submitted:
            log.info("submitted %d standard dataset jobs", submitted)
            if self.metrics is not None:
                self.metrics.count("standard_jobs_submitted", submitted)
        return submitted

    @Service.task
    async def _schedule(self) -> None:
        for event in self.ready:
            await event.wait()
        while not self.should_stop:
            await self.run_once()
            await self.sleep(self.settings.scheduler_interval_seconds)
