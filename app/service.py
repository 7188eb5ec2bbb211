"""The worker process: Faust at the edge, everything else plain.

Roles: one process kind, ``exhaust worker --role processor|generator|api|all`` (default ``all``),
so each part scales on its own: ``processor`` runs the Faust agents (the single writer of the
jobs table), ``generator`` consumes ``exhaust.work`` and generates, ``api`` serves HTTP from the
read model. Only the processor imports Faust's worker; the others are plain Mode services.

Start-up order: ensure topics (checking their layout) and the bucket; load the catalog and open
the read model, once; then start the Faust worker (or the plain one). The :class:`Runtime`
service starts with it: :func:`build` creates and opens every part of its role at once (object
store, publisher, generator, read-model feeder, the API's context) over an ``AsyncExitStack``,
the runtime starts the services among them and the HTTP server, and closes the stack when the
worker stops. No part is created empty and filled in later.

Shutdown (SIGINT/SIGTERM): Faust stops the agents, flushes the producer and commits; the runtime
stops its children: the work consumer tells running generations to stop (they report a
retryable failure at their next progress report, so the writer retries them elsewhere) and
commits what finished, the read-model feeder stops; then the HTTP site and the S3 client close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, get_args

import faust
import mode
from aiohttp import web
from mode import Service

from app import logs, tracing
from app.api.fills import FillContext
from app.api.kernel import ApiContext
from app.api.server import create_operations_app, create_web_app
from app.catalog.loader import default_catalog
from app.catalog.types import Catalog
from app.clock import now_ms
from app.domain.errors import ConfigurationError, ExhaustError, TransientError
from app.domain.model import Job, JobEvent
from app.engine.export import Limits
from app.engine.storage import ObjectStore, S3ObjectStore
from app.generator import Generator
from app.health import Health
from app.metrics import Metrics
from app.sealing import sealer_for
from app.settings import WRITER_COMMIT_SECONDS, Settings, unsafe_combinations
from app.stream import aiokafka_compat, connection, faust_compat, local_state
from app.stream.agents import Pipeline, worker_id
from app.stream.compactor import Compactor
from app.stream.dataset_view import DatasetView
from app.stream.feeder import ReadModelFeeder
from app.stream.fill_writer import FillWriter
from app.stream.janitor import Janitor
from app.stream.publisher import KafkaPublisher
from app.stream.read_model import IdIndex, Materialized, ReadModel
from app.stream.scheduler import StandardScheduler
from app.stream.topics import ensure_topics
from app.stream.work_consumer import WorkConsumer

log = logging.getLogger("exhaust")


async def bootstrap(
    settings: Settings, health: Health, role: Role = "all", deadline_seconds: float = 60.0
) -> None:
    """Create (the processor, in create mode) or check topics and the bucket, retrying
    transient failures, and topics not yet created by whoever owns them, until a deadline."""
    create = Parts.of(role).processor and settings.topic_mode == "create"
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            created = await ensure_topics(settings, create=create)
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


def load_catalog(settings: Settings) -> Catalog:
    """The catalog a worker runs with (its directories resolved once, here)."""
    return default_catalog([settings.catalog_dir] if settings.catalog_dir is not None else [])


def open_read_model(settings: Settings, parts: Parts) -> Materialized | None:
    """The one read model of a worker: the full one where the API runs, else the id index the
    writer needs (a client id reused across tags), else none."""
    if parts.api:
        return ReadModel(settings.state_dir / "read-model.sqlite3", settings.topic("jobs"))
    if parts.processor:
        return IdIndex(settings.state_dir / "job-ids.sqlite3", settings.topic("jobs"))
    return None


@dataclass(frozen=True, slots=True)
class Built:
    """A worker's parts besides the Faust agents, built whole by :func:`build`. The services
    (``services``) are created, not started: the runtime starts them as its children."""

    store: ObjectStore | None  # open, where the role writes to object storage
    publisher: KafkaPublisher | None  # started, where the role produces outside the writer
    api: ApiContext | None  # where the API runs
    fills: FillContext | None  # where the API runs
    services: list[Service]
    ready: list[asyncio.Event]  # set once the read model and the datasets' view caught up


async def build(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    parts: Parts,
    health: Health,
    metrics: Metrics,
    catalog: Catalog,
    read_model: Materialized | None,
) -> Built:
    """Create, open and wire every part of a worker of ``parts``, once; ``stack`` closes what
    was opened, in reverse order (the publisher flushes before the object store closes)."""
    services: list[Service] = []
    store: ObjectStore | None = None
    publisher: KafkaPublisher | None = None
    if parts.generator or parts.api:  # they write to S3 and produce outside the writer
        s3 = await stack.enter_async_context(S3ObjectStore(settings))
        store = s3
        publisher = KafkaPublisher(settings, metrics)
        await publisher.start()
        stack.push_async_callback(publisher.stop)
    feeder = ReadModelFeeder(settings, read_model, metrics) if read_model is not None else None
    if feeder is not None:
        services.append(feeder)
    # Generators read managed datasets' segments; the API serves their catalog and fills.
    datasets = DatasetView(settings) if parts.api or parts.generator else None
    if datasets is not None:
        services.append(datasets)
    if parts.generator:
        assert store is not None and publisher is not None
        emit = publisher.job_event
        generator = Generator(
            catalog,
            store,
            lambda item, event: emit(item.tag, event),
            worker_id=worker_id(),
            spool_dir=settings.spool_dir,
            heartbeat_seconds=settings.heartbeat_seconds,
            timeout_seconds=settings.generation_timeout_seconds,
            metrics=metrics,
            datasets=datasets,
            limits=Limits(
                settings.export_memory_limit,
                settings.export_threads,
                settings.export_max_files,
                settings.max_input_bytes,
            ),
            sealer=sealer_for(settings),
            part_bytes=settings.s3_multipart_chunk_bytes,
        )
        services.append(WorkConsumer(settings, generator, publisher.dead_letter, metrics))
        services.append(Janitor(settings, s3, catalog, metrics))
    api = fills = None
    if parts.api:
        assert store is not None and publisher is not None and datasets is not None
        assert isinstance(read_model, ReadModel) and feeder is not None
        api = ApiContext(
            settings=settings,
            health=health,
            metrics=metrics,
            catalog=catalog,
            read_model=read_model,
            store=store,
            submit=publisher.request,
            cancel=partial(cancel_job, publisher),
            sealer=sealer_for(settings),
            visible=feeder.visible,
        )
        fills = FillContext(settings, metrics, datasets, publisher, store)
        if settings.standard_catch_up_days > 0:
            services.append(
                StandardScheduler(
                    settings,
                    catalog,
                    datasets,
                    read_model,
                    publisher.request,
                    ready=[feeder.caught_up, datasets.caught_up],
                    metrics=metrics,
                )
            )
        if settings.compact_min_segments:
            services.append(Compactor(settings, datasets, store, publisher.fill, metrics))
    ready = [view.caught_up for view in (feeder, datasets) if view is not None]
    return Built(store, publisher, api, fills, services, ready)


async def cancel_job(publisher: KafkaPublisher, job: Job) -> None:
    """Ask the job's writer to cancel it (a CANCEL event into its tag's partition)."""
    event = JobEvent(
        kind="CANCEL", request_id=job.request_id, channel=job.channel, attempt=0, at=now_ms()
    )
    await publisher.job_event(job.tag, event)


class Runtime(Service):
    """The parts of one worker besides the Faust agents: generators, read model, HTTP.

    Every role serves ``/healthz``, ``/readyz`` and ``/metrics``; the API's routes only where
    the API runs. The read model is fed where the API or the writer runs (the writer checks
    client ids reused across tags in it). Its parts are built at start by :func:`build` and
    closed at shutdown, after its children (work consumer, feeder) have stopped: uploads and
    reports may still be running until then.
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
        self.read_model = read_model
        self._stack = contextlib.AsyncExitStack()
        self._runner: web.AppRunner | None = None
        self._ready: list[asyncio.Event] = []

    async def on_start(self) -> None:
        built = await build(
            self._stack, self.settings, self.parts, self.health, self.metrics, self.catalog,
            self.read_model,
        )  # fmt: skip
        self._ready = built.ready
        for service in built.services:
            await self.add_runtime_dependency(service)
        if built.api is not None:
            app = create_web_app(built.api, fills=built.fills)
        else:
            app = create_operations_app(self.settings, self.health, self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        log.info("HTTP on http://%s:%d", self.settings.http_host, self.settings.http_port)

    @Service.task
    async def _readiness(self) -> None:
        for caught_up in self._ready:
            await caught_up.wait()
        log.info("read model caught up with %s", self.settings.topic("jobs"))
        self.health.passed("worker", worker_id())
        log.info("ready")

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def on_shutdown(self) -> None:
        await self._stack.aclose()

    def close_at_shutdown(self, *closers: Callable[[], Awaitable[None]]) -> None:
        """Close these too at shutdown (the writer's own clients: its queue probe, the fill
        writer's store)."""
        for close in closers:
            self._stack.push_async_callback(close)


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
        broker_credentials=connection.faust_credentials(settings),
        # Faust's own topics are the two changelogs, created (or, in verify mode, checked)
        # with the others by ensure_topics; its leader topic is off. It declares none itself.
        topic_allow_declare=False,
        store=faust_compat.store_url(settings.table_store),
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_enable_idempotence=True,
        producer_linger_ms=1,
        broker_commit_interval=WRITER_COMMIT_SECONDS,
        consumer_auto_offset_reset="earliest",
        # No standby replicas: with faust-streaming's standbys, a partition handed back to a
        # worker during a rolling restart was sometimes recovered from a stale local copy,
        # missing the other owner's writes (the cluster's checker saw jobs go SUCCESS →
        # SUBMITTED and run again: 4-7 of ~1,100 per rolling restart; none in the same run
        # without standbys). A new owner now reads the changelog from its own last write, or
        # from the start: slower failover, never an old state (docs/reliability.md).
        table_standby_replicas=0,
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=settings.consumer_session_timeout_seconds / 10,
        datadir=str(settings.state_dir / "faust"),
    )
    catalog = catalog or load_catalog(settings)
    parts = Parts.of(role)
    read_model = open_read_model(settings, parts)
    assert read_model is not None  # a role with the processor has one
    metrics = Metrics()
    pipeline = Pipeline(app, settings, catalog, metrics, read_model, health)
    fills = FillWriter(app, settings, metrics, pipeline)
    runtime = Runtime(settings, health, parts, metrics, read_model, catalog)
    runtime.close_at_shutdown(pipeline.probe.stop, fills.close)
    app.service(runtime)  # type: ignore[arg-type]  # Faust accepts instances too
    return app, pipeline


def prepare_directories(settings: Settings) -> None:
    """Create the state and spool directories a worker writes to, or refuse to start naming
    the setting: a spool directory that does not exist failed every generation."""
    for name in ("state_dir", "spool_dir"):
        path: Path | None = getattr(settings, name)
        if path is None:
            continue
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"EXHAUST_{name.upper()}={path} cannot be created: {exc.strerror}"
            ) from exc


def run_worker(settings: Settings, loglevel: str = "info", role: Role = "all") -> int:
    """Bootstrap, then run one worker of ``role`` in the foreground until SIGINT/SIGTERM.

    Refuses (:class:`ConfigurationError`, exit 9) unsafe settings before anything starts."""
    problems = unsafe_combinations(settings, serves_api=Parts.of(role).api)
    if problems:
        raise ConfigurationError("refusing to start: " + "; ".join(problems))
    prepare_directories(settings)
    parts = Parts.of(role)
    # Held until the process exits: one processor per state directory (app.stream.local_state).
    state_lock = local_state.claim(settings.state_dir / "faust") if parts.processor else None
    log_config = logs.configure(loglevel, settings.log_format, settings.secret_values())
    if tracing.configure(role):  # before the HTTP application is built (app.tracing)
        log.info("traces on: exported as the OTEL_* variables say")
    health = Health()
    asyncio.run(bootstrap(settings, health, role))
    log.info("starting a worker: role %s", role)
    if parts.processor:
        app, _ = create_app(settings, health, role=role)
        local_state.discard_tables(Path(app.conf.tabledir))  # rebuilt from the changelog
        faust_worker = faust.Worker(
            app, loglevel=loglevel, quiet=True, redirect_stdouts=False, logging_config=log_config
        )
        # Faust's terminal spinner, on at WARN and above, turns the root logger to DEBUG so it
        # can spin on every record: every debug call of aiokafka and Faust then builds a record
        # (~7 % of the writer's time in the benchmark). A service has no terminal to spin in.
        faust_worker.spinner = None
        worker: mode.Worker = faust_worker
    else:
        runtime = Runtime(
            settings, health, parts, Metrics(), open_read_model(settings, parts),
            load_catalog(settings),
        )  # fmt: skip
        worker = mode.Worker(
            runtime, loglevel=loglevel, quiet=True, redirect_stdouts=False,
            logging_config=log_config,
        )  # fmt: skip
    # Start-up objects (Faust, botocore, schemas) are permanent: keep them out of every
    # collection, and collect the young generation less often. Full collections over them
    # showed as 100-250 ms pauses of the writer at 500 req/s.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    try:
        worker.execute_from_commandline()
    finally:
        tracing.shutdown()  # the last spans leave before the process does
    if state_lock is not None:
        state_lock.close()
    return 0


__all__ = [
    "ROLES",
    "Built",
    "Parts",
    "Role",
    "Runtime",
    "bootstrap",
    "build",
    "create_app",
    "load_catalog",
    "open_read_model",
    "prepare_directories",
    "run_worker",
]
