"""The worker process: Faust at the edge, everything else plain.

Start-up order: ensure topics (checking their layout) and the bucket, then start the Faust
worker; the HTTP API runs inside it as a Mode service so it starts and stops with the worker.
SIGINT/SIGTERM stop consuming, flush producers and close clients (Faust's worker shutdown),
then the HTTP site is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from aiohttp import web
from mode import Service

from app.errors import ExhaustError, TransientError
from app.health import Health
from app.http_api import create_web_app
from app.settings import Settings
from app.storage import S3ObjectStore
from app.topics import ensure_topics

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
        except (TimeoutError, OSError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise TransientError(f"bootstrap gave up: {exc}") from exc
            log.warning("bootstrap: %s; retrying", exc)
        except Exception as exc:  # aiokafka raises its own KafkaError tree
            if type(exc).__module__.startswith("aiokafka") and time.monotonic() < deadline:
                log.warning("bootstrap: %r; retrying", exc)
            else:
                raise
        await asyncio.sleep(1.0)


class HttpService(Service):
    """Runs the aiohttp API for the lifetime of the Faust worker."""

    def __init__(self, settings: Settings, health: Health) -> None:
        super().__init__()
        self.settings = settings
        self.health = health
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        self._runner = web.AppRunner(create_web_app(self.health), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        log.info("HTTP API on http://%s:%d", self.settings.http_host, self.settings.http_port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def faust_broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


def create_app(settings: Settings, health: Health) -> faust.App:
    """Build the Faust app for ``settings``: idempotent producer, no Faust web, memory store."""
    app = faust.App(
        settings.consumer_group,
        broker=faust_broker_url(settings.kafka_bootstrap),
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_enable_idempotence=True,
        consumer_auto_offset_reset="earliest",
    )
    http = HttpService(settings, health)

    @app.task
    async def mark_started() -> None:
        health.passed("worker")

    app.service(http)  # type: ignore[arg-type]
    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Bootstrap, then run one worker in the foreground until SIGINT/SIGTERM."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    health = Health()
    asyncio.run(bootstrap(settings, health))
    app = create_app(settings, health)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
