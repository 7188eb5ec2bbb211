"""The worker process: Faust at the edge, everything else plain.

Roles: one process kind, ``exhaust worker --role processor|generator|api|all`` (default ``all``),
so each part scales on its own: ``processor`` runs the Faust agents (the single writer of the
jobs table), ``generator`` consumes ``exhaust.work`` and generates, ``api`` serves HTTP from the
read model. Only the processor imports Faust's worker; the others are plain Mode services.

Start-up order: ensure topics (checking their layout) and the bucket, then start the Faust
worker (or the plain one). The :class:`Runtime` service starts with it: it opens the object
store, the publisher, the generator, the read-model feeder and the HTTP API of its role, and
closes them when the worker stops.

Shutdown (SIGINT/SIGTERM): Faust stops the agents, flushes the producer and commits; the runtime
stops its children: the work consumer tells running generations to stop (they report a
retryable failure at their next progress report, so the writer retries them elsewhere) and
commits what finished, the read-model feeder stops; then the HTTP site and the S3 client close.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import faust
import mode
from aiohttp import web
from mode import Service

from app.api.fills import FillContext
from app.api.kernel import ApiContext
from app.api.server import create_web_app
from app.catalog.loader import default_catalog
from app.catalog.types import Catalog
from app.clock import now_ms
from app.domain.errors import ConfigurationError, ExhaustError, TransientError
from app.domain.model import Job, JobEvent
from app.engine.export import Limits
from app.engine.storage import S3ObjectStore
from app.generator import Generator
from app.health import Health
from app.metrics import Metrics
from app.sealing import sealer_for
from app.settings import Settings, unsafe_combinations
from app.stream import aiokafka_compat, faust_compat
from app.stream.agents import Pipeline, worker_id
from app.stream.compactor import Compactor
from app.stream.dataset_view import DatasetView
from app.stream.feeder import ReadModelFeeder
from app.stream.fill_writer import FillWriter
from app.stream.publisher import KafkaPublisher
from app.stream.read_model import IdIndex, Materialized, ReadModel
from app.stream.scheduler import StandardScheduler
from app.stream.topics import ensure_topics
from app.stream.work_consumer import WorkConsumer

log = logging.getLogger("exhaust")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


async def bootstrap(settings: Settings, health: Health, deadline_seconds: float = 60.0) -> None:
    """Create or check topics and the bucket, retrying transient failures until a deadline."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            created = await ensure_topics(settings)
            health.passed("topics", f"created {len(created)}" if created else "checked")
            async with S3ObjectStore(settings) as store:
                await store.ensure_bucket()
            health.passed("bucket", settings.s3_bucket)
            return
        except ExhaustError as exc:
            if not exc.retryable or time.monotonic() > deadline:
                raise
            log.warning("bootstrap: %s; retrying", exc.message)
        except Exception as exc:  # aiokafka / botocore connection errors while servers start
            if time.monotonic() > deadline:
                raise TransientError(f"bootstrap gave up: {exc!r}") from exc
            log.warning("bootstrap: %r; retrying", exc)
        await asyncio.sleep(1.0)


Role = Literal["processor", "generator", "api", "all"]
ROLES: tuple[str, ...] = get_args(Role)


@dataclass(frozen=True, slots=True)
class Parts:
    """What a worker of a role runs (``all`` = every part in one process)."""

    processor: bool  # the Faust agents: the single writer of the jobs table
    generator: bool  # consumes exhaust.work and generates
    api: bool  # HTTP /v1 and the read model

    @classmethod
    def of(cls, role: Role) -> Parts:
        return cls(
            role in ("processor", "all"), role in ("generator", "all"), role in ("api", "all")
        )


class Runtime(Service):
    """The parts of one worker besides the Faust agents: generators, read model, HTTP.

    Every role serves ``/healthz``, ``/readyz`` and ``/metrics``; the ``/v1`` routes only where
    the API runs. The read model is fed where the API or the writer runs (the writer checks
    client ids reused across tags in it).
    """

    def __init__(
        self,
        settings: Settings,
        health: Health,
        parts: Parts,
        metrics: Metrics,
        read_model: Materialized | None,
        catalog: Catalog,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.health = health
        self.parts = parts
        self.metrics = metrics
        self.catalog = catalog
        self.store = S3ObjectStore(settings)
        self.publisher = KafkaPublisher(settings, metrics)
        self.feeder = (
            ReadModelFeeder(settings, read_model, metrics) if read_model is not None else None
        )
        self.context = ApiContext(
            settings=settings,
            health=health,
            metrics=metrics,
            catalog=catalog,
            read_model=read_model if isinstance(read_model, ReadModel) else None,
            submit=self.publisher.request,
            cancel=self.cancel,
            sealer=sealer_for(settings),
            visible=self.feeder.visible if self.feeder is not None else None,
        )
        # Generators read managed datasets' segments; the API serves their catalog and fills.
        self.datasets = DatasetView(settings) if parts.api or parts.generator else None
        self.fills = (
            FillContext(settings, metrics, self.datasets, self.publisher)
            if self.datasets is not None and parts.api
            else None
        )
        self._runner: web.AppRunner | None = None
        self.work: WorkConsumer | None = None
        self.closers: list[Callable[[], Awaitable[None]]] = []

    @property
    def produces(self) -> bool:
        """Generators and the API write to S3 / produce outside the writer; a processor-only
        worker needs neither (the writer produces through Faust)."""
        return self.parts.generator or self.parts.api

    async def on_start(self) -> None:
        if self.produces:
            await self.store.__aenter__()
            await self.publisher.start()
            self.context.store = self.store
            if self.fills is not None:
                self.fills.store = self.store
        if self.parts.generator:
            generator = Generator(
                self.catalog,
                self.store,
                lambda item, event: self.publisher.job_event(item.tag, event),
                worker_id=worker_id(),
                spool_dir=self.settings.spool_dir,
                heartbeat_seconds=self.settings.heartbeat_seconds,
                timeout_seconds=self.settings.generation_timeout_seconds,
                metrics=self.metrics,
                datasets=self.datasets,
                limits=Limits(
                    self.settings.export_memory_limit,
                    self.settings.export_threads,
                    self.settings.export_max_files,
                    self.settings.max_input_bytes,
                ),
                sealer=sealer_for(self.settings),
                part_bytes=self.settings.s3_multipart_chunk_bytes,
            )
            self.work = WorkConsumer(
                self.settings, generator, self.publisher.dead_letter, self.metrics
            )
            await self.add_runtime_dependency(self.work)
        if self.feeder is not None:
            await self.add_runtime_dependency(self.feeder)
        if self.datasets is not None:
            await self.add_runtime_dependency(self.datasets)
        if (
            self.parts.api
            and self.datasets is not None
            and self.feeder is not None
            and self.context.read_model is not None
            and self.settings.standard_catch_up_days > 0
        ):
            scheduler = StandardScheduler(
                self.settings,
                self.catalog,
                self.datasets,
                self.context.read_model,
                self.publisher.request,
                ready=[self.feeder.caught_up, self.datasets.caught_up],
                metrics=self.metrics,
            )
            await self.add_runtime_dependency(scheduler)
        if self.parts.api and self.datasets is not None and self.settings.compact_min_segments:
            compactor = Compactor(
                self.settings, self.datasets, self.store, self.publisher.fill, self.metrics
            )
            await self.add_runtime_dependency(compactor)
        app = create_web_app(self.context, api=self.parts.api, fills=self.fills)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        log.info("HTTP on http://%s:%d", self.settings.http_host, self.settings.http_port)

    @Service.task
    async def _readiness(self) -> None:
        if self.feeder is not None:
            await self.feeder.caught_up.wait()
            log.info("read model caught up with %s", self.settings.topic("jobs"))
        if self.datasets is not None:
            await self.datasets.caught_up.wait()
        self.health.passed("worker", worker_id())
        log.info("ready")

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def on_shutdown(self) -> None:
        # After the children (work consumer, feeder) have stopped: uploads and reports may
        # still be running until then.
        if self.produces:
            await self.publisher.stop()
            await self.store.__aexit__(None, None, None)
        for close in self.closers:
            await close()

    async def cancel(self, job: Job) -> None:
        event = JobEvent(
            kind="CANCEL", request_id=job.request_id, channel=job.channel, attempt=0, at=now_ms()
        )
        await self.publisher.job_event(job.tag, event)


def create_app(
    settings: Settings, health: Health, catalog: Catalog | None = None, role: Role = "all"
) -> tuple[faust.App, Pipeline]:
    """Build the Faust app (the writer) for ``settings``: idempotent producer, no Faust web.

    Refuses (:class:`ConfigurationError`) a faust-streaming or aiokafka whose internals the
    writer relies on have moved (:mod:`app.stream.faust_compat`)."""
    faust_compat.check_library()
    aiokafka_compat.check_library()
    app = faust.App(
        settings.consumer_group,
        broker=faust_compat.broker_url(settings.kafka_bootstrap),
        store=settings.table_store,
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_enable_idempotence=True,
        producer_linger_ms=1,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=1,
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=settings.consumer_session_timeout_seconds / 10,
        datadir=str(settings.state_dir / "faust"),
    )
    catalog = catalog or default_catalog(_catalog_dirs(settings))
    parts = Parts.of(role)
    read_model: Materialized = (
        ReadModel(settings.state_dir / "read-model.sqlite3", settings.topic("jobs"))
        if parts.api
        else IdIndex(settings.state_dir / "job-ids.sqlite3", settings.topic("jobs"))
    )
    metrics = Metrics()
    pipeline = Pipeline(app, settings, catalog, metrics, read_model, health)
    fills = FillWriter(app, settings, metrics, pipeline)
    runtime = Runtime(settings, health, parts, metrics, read_model, catalog)
    runtime.closers += [pipeline.probe.stop, fills.close]
    app.service(runtime)  # type: ignore[arg-type]  # Faust accepts instances too
    return app, pipeline


def run_worker(settings: Settings, loglevel: str = "info", role: Role = "all") -> int:
    """Bootstrap, then run one worker of ``role`` in the foreground until SIGINT/SIGTERM.

    Refuses (:class:`ConfigurationError`, exit 2) unsafe settings before anything starts."""
    problems = unsafe_combinations(settings)
    if problems:
        raise ConfigurationError("refusing to start: " + "; ".join(problems))
    logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT)
    health = Health()
    asyncio.run(bootstrap(settings, health))
    parts = Parts.of(role)
    log.info("starting a worker: role %s", role)
    if parts.processor:
        app, _ = create_app(settings, health, role=role)
        faust_worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
        # Faust's terminal spinner, on at WARN and above, turns the root logger to DEBUG so it
        # can spin on every record: every debug call of aiokafka and Faust then builds a record
        # (~7 % of the writer's time in the benchmark). A service has no terminal to spin in.
        faust_worker.spinner = None
        worker: mode.Worker = faust_worker
    else:
        read_model = (
            ReadModel(settings.state_dir / "read-model.sqlite3", settings.topic("jobs"))
            if parts.api
            else None
        )
        runtime = Runtime(
            settings, health, parts, Metrics(), read_model, default_catalog(_catalog_dirs(settings))
        )
        worker = mode.Worker(runtime, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Start-up objects (Faust, botocore, schemas) are permanent: keep them out of every
    # collection, and collect the young generation less often. Full collections over them
    # showed as 100-250 ms pauses of the writer at 500 req/s.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    worker.execute_from_commandline()
    return 0


__all__ = ["ROLES", "Parts", "Role", "Runtime", "bootstrap", "create_app", "run_worker"]


def _catalog_dirs(settings: Settings) -> list[Path]:
    return [settings.catalog_dir] if settings.catalog_dir is not None else []
