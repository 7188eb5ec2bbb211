"""Job status changes straight from ``exhaust.jobs``, for downstream services on Kafka.

    async for change in job_changes(Settings(), channel="acme", since="now"):
        if change.job.status == "SUCCESS":
            publish(change.job.request_id, change.job.outputs)

``exhaust.jobs`` is compacted and keyed ``{channel}/{request_id}``: every record is one job's
whole state after a change (the Avro ``JobStatus``), so a consumer needs no other source. This
helper reads it without a consumer group (nothing to commit, nothing to rebalance): from the
topic's beginning (every job's latest state and the changes kept since the last compaction),
from a point in time, or from now; ``until_end`` stops at the end the topic had when the read
started (a catch-up, then done). ``channel`` keeps one channel's jobs by their key, before any
decoding. Tombstones (jobs removed after their retention) are skipped.

A service that must not miss a change across its own restarts keeps the last ``(partition,
offset)`` it handled and passes ``offsets`` back; a record is then read once more at worst
(its state is whole, so applying it twice is harmless).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from app.domain.errors import InvalidConfig
from app.domain.model import Job
from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.avro import registry
from app.stream.connection import client_options
from app.stream.topics import assign_all


@dataclass(frozen=True, slots=True)
class JobChange:
    """One job's state after a change, and where it was read."""

    job: Job
    partition: int
    offset: int
    timestamp_ms: int
    type: str  # the CloudEvents type, dev.exhaust.job.<STATUS>


Start = Literal["beginning", "now"] | dt.datetime


async def job_changes(
    settings: Settings | None = None,
    *,
    channel: str | None = None,
    since: Start = "now",
    offsets: Mapping[int, int] | None = None,
    until_end: bool = False,
    poll_ms: int = 500,
) -> AsyncGenerator[JobChange, None]:
    """Every change of the jobs on ``exhaust.jobs`` from ``since`` (or from the ``offsets``
    after those last handled, by partition), in each partition's order."""
    settings = settings or Settings()
    topic = settings.topic("jobs")
    prefix = f"{channel}/".encode() if channel is not None else None
    decode = registry().decode
    reset = "latest" if since == "now" and offsets is None else "earliest"
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, auto_offset_reset=reset
    )
    await aiokafka_compat.start(consumer)
    try:
        partitions = await assign_all(consumer, topic)
        await _position(consumer, partitions, since, offsets)
        ends = await consumer.end_offsets(partitions) if until_end else None
        while ends is None or not await _reached(consumer, ends):
            batch = await consumer.getmany(*partitions, timeout_ms=poll_ms)
            for tp, records in batch.items():
                for record in records:
                    if record.value is None or record.key is None:
                        continue
                    if prefix is not None and not record.key.startswith(prefix):
                        continue
                    job = Job.from_record(decode("JobStatus", record.value))
                    yield JobChange(job, tp.partition, record.offset, record.timestamp,
                                    f"dev.exhaust.job.{job.status}")  # fmt: skip
    finally:
        await asyncio.shield(consumer.stop())


async def _reached(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _position(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since: Start,
    offsets: Mapping[int, int] | None,
) -> None:
    if offsets is not None:
        for tp in partitions:
            if tp.partition in offsets:
                consumer.seek(tp, offsets[tp.partition] + 1)
            else:
                await consumer.seek_to_beginning(tp)
        return
    if since == "beginning":
        await consumer.seek_to_beginning(*partitions)
    elif since == "now":
        await consumer.seek_to_end(*partitions)
    elif isinstance(since, dt.datetime):
        if since.tzinfo is None:
            raise InvalidConfig("since must be an aware datetime (with its time zone)")
        stamp = int(since.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, stamp))
        for tp in partitions:
            at = found.get(tp)
            if at is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, at.offset)
    else:
        raise InvalidConfig("since is 'beginning', 'now' or a datetime")
    for tp in partitions:  # resolve now: a change published from here on is read
        await consumer.position(tp)


__all__ = ["JobChange", "job_changes"]
