"""Keeps a read model (or the writer's id index) up to date with ``exhaust.jobs``.

A plain aiokafka consumer without a group reads *every* partition of the jobs topic from the
offsets stored in the SQLite file itself (so a restart resumes and an empty file rebuilds from
zero), and applies batches in a worker thread. ``caught_up`` is set once it has reached the end
offsets the topic had at start: a worker reports ready only then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from mode import Service

from app.domain.errors import PoisonMessage
from app.metrics import Metrics
from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.avro import registry
from app.stream.connection import client_options
from app.stream.job_columns import JobColumns
from app.stream.read_model import Change, Materialized, ReadModel
from app.stream.topics import assign_all

log = logging.getLogger("exhaust.feeder")


class ReadModelFeeder(Service):
    """Keeps the read model up to date with every partition of ``exhaust.jobs``."""

    BATCH = 20_000

    def __init__(
        self, settings: Settings, read_model: Materialized, metrics: Metrics, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.read_model = read_model
        self.metrics = metrics
        self.schemas = registry()
        self.caught_up = asyncio.Event()
        self._applied = asyncio.Event()  # set (and replaced) after every batch applied
        self.columns = JobColumns(self.schemas)
        fields = read_model.fields or ()
        self.needs_submitted_at = "submitted_at" in fields
        self.linger = read_model.linger_seconds
        self.model = read_model.label
        self._lag_reported = 0.0

    @Service.task
    async def _feed(self) -> None:
        topic = self.settings.topic("jobs")
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await aiokafka_compat.start(consumer)
        try:
            partitions = await assign_all(consumer, topic)
            stored = await asyncio.to_thread(self.read_model.offsets)
            for tp in partitions:
                if tp.partition in stored:
                    consumer.seek(tp, stored[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            targets = await consumer.end_offsets(partitions)
            # One batch is written (in a thread; SQLite releases the GIL) while the next one is
            # fetched and decoded.
            writing: asyncio.Future[int] | None = None
            try:
                while not self.should_stop:
                    changes = self._changes(await self._gather(consumer))
                    if writing is not None:
                        await writing
                        writing = None
                    await self._report_lag(consumer, partitions)
                    if changes:
                        apply = asyncio.to_thread(self.read_model.apply, changes)
                        writing = asyncio.ensure_future(apply)
                        writing.add_done_callback(self._signal)
                        self.metrics.count("read_model_records", len(changes))
                    if not self.caught_up.is_set() and all(
                        await asyncio.gather(
                            *(self._reached(consumer, tp, targets) for tp in partitions)
                        )
                    ):
                        if writing is not None:
                            await writing
                            writing = None
                        await asyncio.to_thread(self.read_model.caught_up)
                        self.caught_up.set()
            finally:
                if writing is not None:
                    await writing
        finally:
            await consumer.stop()

    async def _report_lag(self, consumer: Any, partitions: list[Any]) -> None:
        """Set ``exhaust_read_model_lag`` (at most once a second): the partitions' high
        watermarks from the last fetches minus what was read."""
        now = time.monotonic()
        if now < self._lag_reported + 1.0:
            return
        self._lag_reported = now
        lag = 0
        for tp in partitions:
            high = consumer.highwater(tp)
            if high is not None:
                lag += max(0, high - await consumer.position(tp))
        self.metrics.read_model_lag.labels(self.model).set(lag)

    def _signal(self, _: object = None) -> None:
        applied, self._applied = self._applied, asyncio.Event()
        applied.set()

    async def visible(
        self,
        channel: str,
        request_id: str,
        seconds: float,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any] | None:
        """The job's record once the read model holds it (and ``until`` holds of it, when
        given): read-your-writes for a profile whose answer promises that the next read finds
        the job as the submission left it. The last record read (or None) after ``seconds``.
        """
        read_model = self.read_model
        if not isinstance(read_model, ReadModel):
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            applied = self._applied  # taken before the read: no batch slips in between
            record = read_model.get_record(channel, request_id)
            left = deadline - loop.time()
            if (record is not None and (until is None or until(record))) or left <= 0:
                return record
            try:
                await asyncio.wait_for(applied.wait(), left)
            except TimeoutError:
                return read_model.get_record(channel, request_id)

    async def _gather(self, consumer: Any) -> list[Any]:
        """Records for one transaction: up to ``BATCH`` of them, or what arrived within
        ``linger`` of the first. One SQLite commit per handful of records (the steady state
        of a busy topic) cost more than the rows themselves."""
        batch = await consumer.getmany(timeout_ms=500, max_records=self.BATCH)
        messages = [m for ms in batch.values() for m in ms]
        deadline = time.monotonic() + self.linger
        while messages and len(messages) < self.BATCH and (left := deadline - time.monotonic()) > 0:
            more = await consumer.getmany(
                timeout_ms=int(left * 1000) + 1, max_records=self.BATCH - len(messages)
            )
            messages += [m for ms in more.values() for m in ms]
        return messages

    def _changes(self, messages: list[Any]) -> list[Change]:
        """Decode only each job's last record of the batch; earlier ones only advance offsets
        (the topic is a changelog: the last state is the state)."""
        last = {m.key: i for i, m in enumerate(messages)}
        return [
            self._change(m)
            if last[m.key] == i
            else Change(m.partition, m.offset, m.key.decode(), None, skip=True)
            for i, m in enumerate(messages)
        ]

    @staticmethod
    async def _reached(consumer: Any, tp: Any, targets: dict[Any, int]) -> bool:
        return bool(await consumer.position(tp) >= targets[tp])

    def _change(self, message: Any) -> Change:
        key = message.key.decode()
        if message.value is None:
            return Change(message.partition, message.offset, key, None)
        record = self.columns.read(message.value, message.headers, self.needs_submitted_at)
        if record is not None:
            return Change(message.partition, message.offset, key, record, raw=message.value)
        try:
            record = self.schemas.decode("JobStatus", message.value, self.read_model.fields)
        except PoisonMessage:
            log.error("jobs record %s@%d is undecodable; skipped", key, message.offset)
            return Change(message.partition, message.offset, key, None, skip=True)
        return Change(message.partition, message.offset, key, record, raw=message.value)
