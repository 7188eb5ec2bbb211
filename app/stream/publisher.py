"""Producing outside the writer: generators' reports, API submissions, dead letters of work items.

The writer (Faust agents) produces through Faust's producer under the commit guard of
:mod:`app.stream.effects`. Everything else in a worker (generators, the HTTP API) produces through
one plain idempotent aiokafka producer and awaits each delivery: its callers need the answer (a
generator must not commit a work item before its COMPLETED is durable; an HTTP 202 must mean the
request is in Kafka).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from app.domain.errors import ExhaustError, TransientError
from app.domain.managed_datasets import Fill
from app.domain.model import DatasetRequest, JobEvent
from app.metrics import Metrics
from app.settings import Settings
from app.stream.avro import registry
from app.stream.connection import client_options

log = logging.getLogger("exhaust.publisher")

Headers = list[tuple[str, bytes]]


def dead_letter_headers(message: Any, error: ExhaustError) -> Headers:
    """DLQ headers: the error and the coordinates of the message it came from.

    ``message`` is a Faust ``Message`` or an aiokafka ``ConsumerRecord``: both carry the topic,
    partition and offset read. A ``replayed-from`` header on the source (an operator's replay
    of an earlier dead letter) is carried over, so a second failure points at the first.
    """
    headers: Headers = [
        ("error-code", error.code.encode()),
        ("error-message", error.message.encode()[:1000]),
        ("source-topic", str(message.topic).encode()),
        ("source-partition", str(message.partition).encode()),
        ("source-offset", str(message.offset).encode()),
    ]
    replayed = _header(message, "replayed-from")
    if replayed is not None:
        headers.append(("replayed-from", replayed[:200]))
    return headers


def _header(message: Any, name: str) -> bytes | None:
    """One header of a Faust ``Message`` (a mapping or a list of pairs) or an aiokafka record
    (a tuple of pairs), or None."""
    found = getattr(message, "headers", None) or ()
    pairs = found.items() if isinstance(found, Mapping) else found
    for key, value in pairs:
        if key == name and isinstance(value, bytes | bytearray):
            return bytes(value)
    return None


def log_dead_letter(message: Any, error: ExhaustError) -> None:
    log.warning(
        "dead-lettered %s[%d]@%d: %s %s",
        message.topic, message.partition, message.offset, error.code, error.message,
    )  # fmt: skip


class KafkaPublisher:
    """One idempotent producer; every send is awaited until the broker has it."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.schemas = registry()
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Created here: aiokafka binds the producer to the running loop.
        self.producer = AIOKafkaProducer(
            **client_options(self.settings), enable_idempotence=True, linger_ms=1
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        if self.producer is None:
            raise TransientError("the worker is still starting")
        await self.producer.send_and_wait(
            self.settings.topic(topic), value, key=key, headers=headers
        )

    async def request(self, request: DatasetRequest) -> None:
        value = self.schemas.encode("DatasetRequest", request.to_record())
        await self.send("requests", request.tag.encode(), value)

    async def job_event(self, tag: str, event: JobEvent) -> None:
        await self.send(
            "job-events", tag.encode(), self.schemas.encode("JobEvent", event.to_record())
        )

    async def fill(self, fill: Fill) -> None:
        await self.send(
            "fills", fill.key.encode(), self.schemas.encode("DatasetFill", fill.to_record())
        )

    async def dead_letter(self, message: Any, error: ExhaustError) -> None:
        await self.send("dlq", message.key, message.value, dead_letter_headers(message, error))
        self.metrics.dead_letter(error.code)
        log_dead_letter(message, error)
