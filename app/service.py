"""The worker process: Faust at the edge, everything else plain.

Start-up order: ensure topics (checking their layout) and the bucket, then start the Faust
worker. The :class:`Runtime` service starts with it: it opens the object store, the generator,
the read-model feeder and the HTTP API, and closes them when the worker stops.

Shutdown (SIGINT/SIGTERM): Faust stops the agents, flushes the producer and commits; the runtime
stops its children: the work consumer tells running generations to stop (they report a
retryable failure at their next progress report, so the writer retries them elsewhere) and
commits what finished, the read-model feeder stops; then the HTTP site and the S3 client close.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from aiohttp import web
from mode import Service

from app.agents import Pipeline, ReadModelFeeder, now_ms, worker_id
from app.avro import registry
from app.datasets import Catalog, default_catalog
from app.errors import ExhaustError, TransientError
from app.generator import Generator
from app.health import Health
from app.http_api import ApiContext, create_web_app
from app.metrics import Metrics
from app.model import DatasetRequest, Job, JobEvent
from app.read_model import ReadModel
from app.settings import Settings
from app.storage import S3ObjectStore
from app.topics import ensure_topics
from app.work_consumer import WorkConsumer

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


class Runtime(Service):
    """Object store, generator, read-model feeder and HTTP API of one worker."""

    def __init__(self, settings: Settings, health: Health, pipeline: Pipeline) -> None:
        super().__init__()
        self.settings = settings
        self.health = health
        self.pipeline = pipeline
        self.store = S3ObjectStore(settings)
        self.feeder = ReadModelFeeder(settings, pipeline.read_model, pipeline.metrics)
        self.context = ApiContext(
            settings=settings,
            health=health,
            metrics=pipeline.metrics,
            catalog=pipeline.catalog,
            read_model=pipeline.read_model,
            submit=self.submit,
            cancel=self.cancel,
        )
        self._runner: web.AppRunner | None = None
        self.work: WorkConsumer | None = None

    async def on_start(self) -> None:
        await self.store.__aenter__()
        self.context.store = self.store
        generator = Generator(
            self.pipeline.catalog,
            self.store,
            lambda item, event: self.pipeline.send_event(item.tag, event),
            worker_id=worker_id(),
            spool_dir=self.settings.spool_dir,
            heartbeat_seconds=self.settings.heartbeat_seconds,
            timeout_seconds=self.settings.generation_timeout_seconds,
        )
        self.work = WorkConsumer(
            self.settings, generator, self.pipeline.dead_letter, self.pipeline.metrics
        )
        await self.add_runtime_dependency(self.feeder)
        await self.add_runtime_dependency(self.work)
        self._runner = web.AppRunner(create_web_app(self.context), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        log.info("HTTP API on http://%s:%d", self.settings.http_host, self.settings.http_port)

    @Service.task
    async def _readiness(self) -> None:
        await self.feeder.caught_up.wait()
        self.health.passed("worker", worker_id())
        log.info("ready: read model caught up with %s", self.settings.topic("jobs"))

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def on_shutdown(self) -> None:
        # After the children (work consumer, feeder) have stopped: uploads may still be running
        # until then.
        await self.store.__aexit__(None, None, None)

    async def submit(self, request: DatasetRequest) -> None:
        value = registry().encode("DatasetRequest", request.to_record())
        fut = await self.pipeline.requests.send(key=request.tag.encode(), value=value)
        await fut

    async def cancel(self, job: Job) -> None:
        event = JobEvent(kind="CANCEL", request_id=job.request_id, attempt=0, at=now_ms())
        await self.pipeline.send_event(job.tag, event)


def faust_broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


def create_app(
    settings: Settings, health: Health, catalog: Catalog | None = None
) -> tuple[faust.App, Pipeline]:
    """Build the Faust app for ``settings``: idempotent producer, no Faust web."""
    app = faust.App(
        settings.consumer_group,
        broker=faust_broker_url(settings.kafka_bootstrap),
        store=settings.table_store,
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_enable_idempotence=True,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=1,
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=settings.consumer_session_timeout_seconds / 10,
        datadir=str(settings.state_dir / "faust"),
    )
    read_model = ReadModel(settings.state_dir / "read-model.sqlite3", settings.topic("jobs"))
    pipeline = Pipeline(app, settings, catalog or default_catalog(), Metrics(), read_model)
    runtime = Runtime(settings, health, pipeline)
    app.service(runtime)  # type: ignore[arg-type]  # Faust accepts instances too
    return app, pipeline


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    """Bootstrap, then run one worker in the foreground until SIGINT/SIGTERM."""
    logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT)
    health = Health()
    asyncio.run(bootstrap(settings, health))
    app, _ = create_app(settings, health)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


__all__ = ["Runtime", "bootstrap", "create_app", "run_worker"]
