"""Generator runtime: runs one attempt of one job and reports what happened.

Contract of :meth:`Generator.run`:

* reports ``STARTED``, then ``PROGRESS`` at least every ``heartbeat_seconds`` while the dataset
  type generates in a worker thread (never on the event loop), then exactly one of
  ``COMPLETED`` or ``FAILED`` (``retryable`` says whether another attempt may succeed);
* writes outputs under the attempt's deterministic prefix
  ``{channel}/{dataset}/{request_id}/{attempt}/`` and the manifest **last**, so a result is
  visible only once complete; a rerun of the same attempt overwrites the same keys;
* sources (managed datasets' Parquet segments, the job's input files) are downloaded into a
  temporary spool directory first, a few at a time; the type then runs in a worker thread
  (DuckDB for declared types) and writes its files there; they are uploaded with parallel
  parts. The spool is removed afterwards, so disk use is bounded by the jobs running at once,
  and memory by DuckDB's ``memory_limit`` plus the upload parts in flight;
* an encryption key arrives sealed on the work item and is opened here, in memory, for the
  type only (:mod:`app.sealing`).

Events go out through :class:`EventSink`; the caller decides the transport (Kafka in the
worker, a list in unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

from app.catalog.declared import source_format
from app.catalog.types import Catalog, DatasetType, GeneratedFile, GenerationContext, SourceRef
from app.clock import Clock, now_ms
from app.domain import object_keys
from app.domain.dedup import canonical_json
from app.domain.errors import (
    AccessDenied,
    Cancelled,
    ExhaustError,
    InputsTooLarge,
    InvalidEncryptionKey,
    NotFound,
    SourceNotFound,
)
from app.domain.managed_datasets import ManagedDataset
from app.domain.model import (
    JobError,
    JobEvent,
    OutputFile,
    WorkItem,
    attempt_prefix,
    output_record,
)
from app.engine.export import Limits, LocalSource, SourceFormat
from app.engine.query import parse_filters
from app.engine.storage import ObjectStore, delete_under
from app.metrics import Metrics
from app.sealing import Sealer

log = logging.getLogger("exhaust.generator")


T = TypeVar("T")

EventSink = Callable[[WorkItem, JobEvent], Awaitable[None]]
"""Where a generator's events go (Kafka in the worker, a list in unit tests)."""


class Stop:
    """The stop of one attempt (its job was cancelled): seen by the engine's thread, which
    interrupts DuckDB within half a second, and by the event loop, which cancels downloads and
    uploads (a multipart upload is aborted)."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        self.event = asyncio.Event()

    def set(self) -> None:
        self._flag.set()
        self.event.set()

    def is_set(self) -> bool:
        return self._flag.is_set()


class DatasetLookup(Protocol):
    """The managed datasets a generator reads (the worker's :class:`DatasetView`)."""

    def dataset(self, channel: str, code: str) -> ManagedDataset | None: ...

    async def sync(self, seconds: float) -> bool: ...


MANIFEST = "manifest.json"  # written last, under the attempt's prefix
DOWNLOADS_AT_ONCE = 16  # small segments: a GET costs more in round trips than in bytes
SMALL_UPLOADS_AT_ONCE = 16  # files of one part (splits write thousands of them)
DISCARD_FIRST_PAUSE, DISCARD_LONGEST_PAUSE = 1.0, 32.0  # 1+2+…+32 s: about a minute of retries
# A file of several parts is uploaded alone, with settings.upload_concurrency parts in flight, so
# memory stays a few parts whatever the files.


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
        datasets: DatasetLookup | None = None,
        limits: Limits | None = None,
        sealer: Sealer | None = None,
        part_bytes: int = 8 * 1024 * 1024,
        clock: Clock = now_ms,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.emit = emit
        self.worker_id = worker_id
        self.spool_dir = spool_dir
        self.heartbeat_seconds = heartbeat_seconds
        self.timeout_seconds = timeout_seconds
        self.metrics = metrics
        self.datasets = datasets
        self.limits = limits or Limits()
        self.sealer = sealer
        self.part_bytes = part_bytes  # the store's multipart part size
        self.clock = clock
        self.stopping = threading.Event()

    def _event(self, item: WorkItem, kind: str, **fields: object) -> JobEvent:
        return JobEvent(
            kind=kind,  # type: ignore[arg-type]
            request_id=item.request_id,
            channel=item.channel,
            attempt=item.attempt,
            at=self.clock(),
            worker=self.worker_id,
            **fields,  # type: ignore[arg-type]
        )

    async def run(self, item: WorkItem, stop: Stop | None = None) -> JobEvent:
        """Run ``item`` to its end and return the final event it reported. ``stop`` set (the
        job was cancelled) ends the attempt within seconds, deletes what it uploaded, and
        reports FAILED with ``CANCELLED`` (the writer, which cancelled the job, ignores it)."""
        log.info("generating %s attempt %d (%s)", item.request_id, item.attempt, item.dataset)
        stop = stop or Stop()
        planned: list[str] = []  # every key the attempt may have written, once it knows them
        await self.emit(item, self._event(item, "STARTED"))
        started = time.monotonic()
        if self.metrics is not None:
            self.metrics.generations_running.inc()
        try:
            final = await asyncio.wait_for(
                self._generate(item, started, stop, planned), self.timeout_seconds
            )
        except TimeoutError:
            error = JobError("GENERATION_TIMEOUT", f"attempt ran over {self.timeout_seconds:.0f}s")
            final = self._event(item, "FAILED", error=error, retryable=True)
        except Cancelled:
            if stop.is_set():
                await self._discard(item, planned)
                error = JobError(
                    "CANCELLED", "the job was cancelled; its partial outputs are deleted"
                )
                final = self._event(item, "FAILED", error=error, retryable=False)
            else:
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
        finally:
            if self.metrics is not None:
                self.metrics.generations_running.dec()
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

    async def _discard(self, item: WorkItem, planned: list[str]) -> None:
        """Delete every object a stopped attempt may have written: each of its files and its
        manifest, uploaded or not (an upload cancelled after the store had the object would
        otherwise be left behind; deleting a missing key is no error). An unfinished multipart
        upload was aborted when its task was cancelled."""
        if not planned:
            return
        try:
            await self.store.delete_keys(sorted(set(planned)))
        except ExhaustError as exc:  # the bucket's lifecycle rule or a later sweep removes them
            log.warning("could not delete the outputs of cancelled %s: %s", item.key, exc.message)

    async def discard(self, item: WorkItem) -> int:
        """Delete everything under the dead attempt ``item`` names (its objects, its unfinished
        multipart uploads): the writer sends it when that attempt reported its end too late to
        count, maybe after the janitor had swept the job. The number of objects and uploads
        removed. A store that fails is asked again, for about a minute, then the objects are
        left to the bucket's lifecycle rule with a warning."""
        prefix = self._prefix(item)
        pause = DISCARD_FIRST_PAUSE
        while True:
            try:
                keys, uploads = await delete_under(self.store, prefix)
                break
            except ExhaustError as exc:
                if pause > DISCARD_LONGEST_PAUSE:
                    log.warning(
                        "could not delete the objects of dead attempt %s: %s", prefix, exc.message
                    )
                    return 0
                await asyncio.sleep(pause)
                pause *= 2
        if keys or uploads:
            if self.metrics is not None:
                self.metrics.orphans_deleted.inc(keys + uploads)
            log.info(
                "%s attempt %d ended too late to count: deleted its %d objects and %d "
                "unfinished uploads", item.request_id, item.attempt, keys, uploads,
            )  # fmt: skip
        return keys + uploads

    async def _until_stopped(self, work: Awaitable[T], stop: Stop) -> T:
        """``work``, or :class:`Cancelled` as soon as ``stop`` is set (``work`` is cancelled)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(stop.event.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise Cancelled()
        return task.result()

    async def _generate(
        self, item: WorkItem, started: float, stop: Stop, planned: list[str]
    ) -> JobEvent:
        dataset_type = self.catalog.get(item.dataset, item.channel)
        config = dataset_type.check(
            canonical_json(item.config, "config") or {},
            item.columns,
            item.filters,
            item.output,
            item.sealed_key is not None,
        )
        latest = [0.0]
        async with self._spool() as spool:
            download = self._download(item, dataset_type, config, Path(spool))
            sources = await self._until_stopped(download, stop)
            ctx = GenerationContext(
                config=config,
                columns=item.columns,
                spool=Path(spool),
                report=lambda fraction: latest.__setitem__(0, fraction),
                should_stop=lambda: self.stopping.is_set() or stop.is_set(),
                filters=parse_filters(item.filters),
                output=item.output,
                encryption_key=self._open_key(item),
                sources=sources,
                limits=self.limits,
            )
            heartbeat = asyncio.create_task(self._heartbeat(item, latest))
            try:
                files = await asyncio.to_thread(dataset_type.generate, ctx)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            ctx.encryption_key = None
            prefix = self._prefix(item)
            planned += [prefix + f.name for f in files] + [prefix + MANIFEST]
            if stop.is_set():  # a type that finished without looking at should_stop
                raise Cancelled()
            outputs = await self._until_stopped(self._upload_all(item, files), stop)
            manifest_key = await self._write_manifest(item, outputs, files, ctx.manifest)
        columns = [f.columns for f in files if f.columns is not None]
        return self._event(
            item,
            "COMPLETED",
            outputs=outputs,
            manifest_key=manifest_key,
            total_rows=ctx.manifest.get(
                "total_rows", sum(f.rows for f in files if f.columns is not None)
            ),
            total_bytes=sum(o.bytes for o in outputs),
            total_columns=max(columns) if columns else None,
            execution_ms=int((time.monotonic() - started) * 1000),
        )

    @contextlib.asynccontextmanager
    async def _spool(self) -> AsyncIterator[str]:
        """A fresh spool directory for one attempt, removed afterwards in a thread: a spool can
        hold gigabytes, and unlinking them on the event loop would stall every other job."""
        spool = await asyncio.to_thread(tempfile.mkdtemp, prefix="exhaust-", dir=self.spool_dir)
        try:
            yield spool
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, spool, ignore_errors=True))

    def _open_key(self, item: WorkItem) -> str | None:
        if item.sealed_key is None:
            return None
        if self.sealer is None:
            raise AccessDenied("this worker cannot open encryption keys (no secrets key)")
        key = self.sealer.open(item.sealed_key)
        if not key:  # from a producer that wrote the topic directly: never a plain "encrypted" zip
            raise InvalidEncryptionKey("the request's encryption key is empty")
        return key

    async def _download(
        self, item: WorkItem, dataset_type: DatasetType, config: dict[str, object], spool: Path
    ) -> list[LocalSource]:
        """Each source of the type, downloaded into the spool (a few objects at a time)."""
        refs = dataset_type.sources(config, list(item.inputs))
        if not refs:
            return []
        plan: list[tuple[str, SourceFormat, list[str], ManagedDataset | None]] = []
        for ref in refs:
            plan.append(await self._resolve(item, ref))
        merged: dict[str, tuple[SourceFormat, list[str], ManagedDataset | None]] = {}
        for view, fmt, keys, entry in plan:  # several inputs may feed one view
            if view in merged:
                merged[view][1].extend(keys)
            else:
                merged[view] = (fmt, list(keys), entry)
        slots = asyncio.Semaphore(DOWNLOADS_AT_ONCE)
        inputs = [key for ref, (_, _, keys, _) in zip(refs, plan, strict=True) if ref.input
                  for key in keys]  # fmt: skip
        await self._check_sizes(slots, list(dict.fromkeys(inputs)))
        sources: list[LocalSource] = []
        jobs: list[Awaitable[int]] = []
        for n, (view, (fmt, keys, entry)) in enumerate(merged.items()):
            folder = spool / "sources" / f"{n}-{view}"
            folder.mkdir(parents=True)
            paths = []
            for i, key in enumerate(keys):
                path = folder / f"{i:06d}{Path(key).suffix or '.bin'}"
                paths.append(path)
                jobs.append(self._fetch(slots, key, path))
            columns = entry.columns if entry is not None else ()
            sources.append(LocalSource(view, fmt, paths, columns))
        await asyncio.gather(*jobs)
        return sources

    async def _check_sizes(self, slots: asyncio.Semaphore, keys: list[str]) -> None:
        """Refuse inputs that are missing or together larger than the limit, before any is
        downloaded (a HEAD each, a few at a time)."""

        async def size(key: str) -> int:
            async with slots:
                found = await self.store.size(key)
            if found is None:
                raise SourceNotFound(f"source file {key} is missing from object storage")
            return found

        total = sum(await asyncio.gather(*(size(key) for key in keys)))
        if total > self.limits.max_input_bytes:
            raise InputsTooLarge(
                f"the inputs hold {total} bytes; a job may read at most "
                f"{self.limits.max_input_bytes} (EXHAUST_MAX_INPUT_BYTES)"
            )

    async def _fetch(self, slots: asyncio.Semaphore, key: str, path: Path) -> int:
        async with slots:
            try:
                return await self.store.download_file(key, path)
            except NotFound as exc:
                raise SourceNotFound(f"source file {key} is missing from object storage") from exc

    async def _resolve(
        self, item: WorkItem, ref: SourceRef
    ) -> tuple[str, SourceFormat, list[str], ManagedDataset | None]:
        if ref.input:
            if not ref.name:
                raise SourceNotFound(f"{item.dataset} reads uploaded input files; none was given")
            # Checked at submit and by the writer already; a work item is read from a topic.
            object_keys.check_under("input", ref.name, object_keys.input_prefix(item.channel))
            fmt = source_format(ref.name, ref.format)
            return ref.view, fmt, [ref.name], None  # type: ignore[return-value]
        entry = self.datasets.dataset(item.channel, ref.name) if self.datasets else None
        if entry is None and self.datasets is not None:
            await self.datasets.sync(5.0)  # a dataset filled moments ago
            entry = self.datasets.dataset(item.channel, ref.name)
        if entry is None:
            hint = " or input" if ref.optional_input else ""
            raise SourceNotFound(f"no managed dataset{hint} {ref.name!r} in channel {item.channel}")
        return ref.view, "parquet", [s.key for s in entry.segments], entry

    async def _upload_all(self, item: WorkItem, files: list[GeneratedFile]) -> list[OutputFile]:
        small, large = asyncio.Semaphore(SMALL_UPLOADS_AT_ONCE), asyncio.Semaphore(1)

        async def one(generated: GeneratedFile) -> OutputFile:
            size = (await asyncio.to_thread(generated.path.stat)).st_size
            async with small if size < self.part_bytes else large:
                return await self._upload(item, generated)

        return list(await asyncio.gather(*(one(f) for f in files)))

    async def _heartbeat(self, item: WorkItem, latest: list[float]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self.emit(item, self._event(item, "PROGRESS", progress=latest[0]))

    def _prefix(self, item: WorkItem) -> str:
        """The attempt's key prefix: under ``public/`` for a type whose outputs are public."""
        found = self.catalog.types.get(item.dataset)
        public = found is not None and found.public
        return attempt_prefix(item.channel, item.dataset, item.request_id, item.attempt, public)

    async def _upload(self, item: WorkItem, generated: GeneratedFile) -> OutputFile:
        key = self._prefix(item) + generated.name
        sent = await self.store.upload_file(key, generated.path, generated.content_type)
        return OutputFile(
            key=key,
            rows=generated.rows,
            bytes=sent.bytes,
            sha256=sent.sha256,
            period=generated.period,
            content_type=generated.content_type,
        )

    async def _write_manifest(
        self,
        item: WorkItem,
        outputs: list[OutputFile],
        files: list[GeneratedFile],
        extra: dict[str, object],
    ) -> str:
        """The manifest, written last: per-file rows, bytes, sha256, period and group, the
        type's data dictionary and totals. No clock in it, so a rerun writes the same bytes."""
        key = self._prefix(item) + MANIFEST
        listed = []
        for output, generated in zip(outputs, files, strict=True):
            record = output_record(output)
            if generated.group is not None:
                record["group"] = generated.group
            listed.append(record)
        manifest = {
            "request_id": item.request_id,
            "attempt": item.attempt,
            "dataset": item.dataset,
            "channel": item.channel,
            **extra,
            "total_bytes": sum(o.bytes for o in outputs),
            "files": listed,
        }
        await self.store.put_bytes(key, json.dumps(manifest, indent=2).encode(), "application/json")
        return key
