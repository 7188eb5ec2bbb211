"""Generator runtime: runs one attempt of one job and reports what happened.

Contract of :meth:`Generator.run`:

* reports ``STARTED``, then ``PROGRESS`` at least every ``heartbeat_seconds`` while the dataset
  type generates in a worker thread (never on the event loop), then exactly one of
  ``COMPLETED`` or ``FAILED`` (``retryable`` says whether another attempt may succeed);
* writes outputs under the attempt's deterministic prefix
  ``{channel}/{dataset}/{request_id}/{attempt}/`` and the manifest **last**, so a result is
  visible only once complete; a rerun of the same attempt overwrites the same keys;
* spool files live in a temporary directory removed afterwards, so disk use is bounded by the
  jobs running at once, and memory by one upload part per job.

Events go out through :class:`EventSink`; the caller decides the transport (Kafka in the
worker, a list in unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.catalog.types import Cancelled, Catalog, GeneratedFile, GenerationContext
from app.domain.dedup import canonical_json
from app.domain.errors import ExhaustError
from app.domain.model import JobError, JobEvent, OutputFile, WorkItem, output_record
from app.engine.storage import ObjectStore
from app.metrics import Metrics

log = logging.getLogger("exhaust.generator")


EventSink = Callable[[WorkItem, JobEvent], Awaitable[None]]
"""Where a generator's events go (Kafka in the worker, a list in unit tests)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class Generator:
    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        emit: EventSink,
        *,
        worker_id: str,
        spool_dir: Path | None = None,
        heartbeat_seconds: float = 2.0,
        timeout_seconds: float = 3600.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.emit = emit
        self.worker_id = worker_id
        self.spool_dir = spool_dir
        self.heartbeat_seconds = heartbeat_seconds
        self.timeout_seconds = timeout_seconds
        self.metrics = metrics
        self.stopping = threading.Event()

    def _event(self, item: WorkItem, kind: str, **fields: object) -> JobEvent:
        return JobEvent(
            kind=kind,  # type: ignore[arg-type]
            request_id=item.request_id,
            attempt=item.attempt,
            at=now_ms(),
            worker=self.worker_id,
            **fields,  # type: ignore[arg-type]
        )

    async def run(self, item: WorkItem) -> JobEvent:
        """Run ``item`` to its end and return the final event it reported."""
        log.info("generating %s attempt %d (%s)", item.request_id, item.attempt, item.dataset)
        await self.emit(item, self._event(item, "STARTED"))
        started = time.monotonic()
        try:
            final = await asyncio.wait_for(self._generate(item, started), self.timeout_seconds)
        except TimeoutError:
            error = JobError("GENERATION_TIMEOUT", f"attempt ran over {self.timeout_seconds:.0f}s")
            final = self._event(item, "FAILED", error=error, retryable=True)
        except Cancelled:
            error = JobError("WORKER_STOPPING", "worker stopped during generation")
            final = self._event(item, "FAILED", error=error, retryable=True)
        except ExhaustError as exc:
            final = self._event(
                item, "FAILED", error=JobError(exc.code, exc.message), retryable=exc.retryable
            )
        except Exception:
            # A bug or an unexpected library error: the user gets a code and a reference, the
            # details (library text, traceback) stay in the worker's log.
            reference = uuid.uuid4().hex[:12]
            log.exception(
                "generation of %s attempt %d crashed (reference %s)",
                item.request_id, item.attempt, reference,
            )  # fmt: skip
            error = JobError(
                "GENERATION_ERROR", f"generation failed unexpectedly (reference {reference})"
            )
            final = self._event(item, "FAILED", error=error, retryable=True)
        await self.emit(item, final)
        if self.metrics is not None:
            self.metrics.observe_generation(
                final.kind,
                time.monotonic() - started,
                final.total_rows or 0,
                final.total_bytes or 0,
            )
        log.info(
            "%s attempt %d: %s in %.1fs%s",
            item.request_id, item.attempt, final.kind, time.monotonic() - started,
            f" ({final.error.code}: {final.error.message})" if final.error else "",
        )  # fmt: skip
        return final

    async def _generate(self, item: WorkItem, started: float) -> JobEvent:
        dataset_type = self.catalog.get(item.dataset, item.channel)
        config = dataset_type.validate(canonical_json(item.config, "config") or {}, item.columns)
        latest = [0.0]
        with tempfile.TemporaryDirectory(prefix="exhaust-", dir=self.spool_dir) as spool:
            ctx = GenerationContext(
                config=config,
                columns=item.columns,
                spool=Path(spool),
                report=lambda fraction: latest.__setitem__(0, fraction),
                should_stop=self.stopping.is_set,
            )
            heartbeat = asyncio.create_task(self._heartbeat(item, latest))
            try:
                files = await asyncio.to_thread(dataset_type.generate, ctx)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            outputs = [await self._upload(item, f) for f in files]
            manifest_key = await self._write_manifest(item, outputs)
        columns = [f.columns for f in files if f.columns is not None]
        return self._event(
            item,
            "COMPLETED",
            outputs=outputs,
            manifest_key=manifest_key,
            total_rows=sum(f.rows for f in files if f.columns is not None),
            total_bytes=sum(o.bytes for o in outputs),
            total_columns=max(columns) if columns else None,
            execution_ms=int((time.monotonic() - started) * 1000),
        )

    async def _heartbeat(self, item: WorkItem, latest: list[float]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self.emit(item, self._event(item, "PROGRESS", progress=latest[0]))

    async def _upload(self, item: WorkItem, generated: GeneratedFile) -> OutputFile:
        key = item.prefix + generated.name
        digest = await asyncio.to_thread(sha256_file, generated.path)
        size = await self.store.upload_file(key, generated.path, generated.content_type)
        return OutputFile(
            key=key,
            rows=generated.rows,
            bytes=size,
            sha256=digest,
            period=generated.period,
            content_type=generated.content_type,
        )

    async def _write_manifest(self, item: WorkItem, outputs: list[OutputFile]) -> str:
        key = item.prefix + "manifest.json"
        manifest = {
            "request_id": item.request_id,
            "attempt": item.attempt,
            "dataset": item.dataset,
            "channel": item.channel,
            "files": [output_record(o) for o in outputs],
        }
        await self.store.put_bytes(key, json.dumps(manifest, indent=2).encode(), "application/json")
        return key
