"""The dead-letter topic, read and replayed by an operator (``exhaust dlq``).

A message the writer could not use (undecodable, or refused before it reached the state
machine) goes to ``exhaust.dlq`` as it was, with the error and where it came from in its
headers (:func:`app.stream.publisher.dead_letter_headers`). :func:`read` lists them;
:func:`replay` sends chosen ones back to the topic they came from, once the cause is fixed
(a schema deployed, a type added to the catalog): the writer reads them as new messages, and
a request already applied meanwhile is a duplicate, never a second job. A replayed message
carries ``replayed-from: dlq/<partition>/<offset>`` so a second failure can be traced back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.domain.errors import InvalidConfig, TransientError
from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.connection import client_options
from app.stream.topics import assign_all

READ_SECONDS = 60.0  # a listing that cannot reach the topic's end by then gives up
REPLAYABLE = frozenset({"requests", "job-events", "fills"})  # the writers' source topics


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def code(self) -> str:
        return self.headers.get("error-code", "")

    @property
    def source(self) -> str:
        topic = self.headers.get("source-topic", "?")
        return f"{topic}[{self.headers.get('source-partition', '?')}]@" + self.headers.get(
            "source-offset", "?"
        )

    def summary(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "source": self.source,
            "error_code": self.code,
            "error_message": self.headers.get("error-message", ""),
            "bytes": len(self.value),
            "replayed_from": self.headers.get("replayed-from"),
        }


async def read(settings: Settings, code: str | None = None, limit: int = 100) -> list[DeadLetter]:
    """The dead letters on the topic now (oldest first), of error ``code`` if given, at most
    ``limit`` (the newest ones)."""
    # "earliest": a reset requested on assignment must not land after the seek (aiokafka races)
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await aiokafka_compat.start(consumer)
    found: list[DeadLetter] = []
    try:
        partitions = await assign_all(consumer, settings.topic("dlq"))
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + READ_SECONDS
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TransientError(f"could not read the dead letters within {READ_SECONDS}s")
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        continue  # arrived after the listing began
                    headers = {k: v.decode(errors="replace") for k, v in message.headers or ()}
                    letter = DeadLetter(tp.partition, message.offset, message.timestamp,
                                        message.key, message.value or b"", headers)  # fmt: skip
                    if code is None or letter.code == code:
                        found.append(letter)
    finally:
        await consumer.stop()
    found.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    return found[-limit:]


async def replay(settings: Settings, letters: Sequence[DeadLetter]) -> int:
    """Send each dead letter's original bytes back to its source topic; the number sent."""
    targets = []
    for letter in letters:
        source = letter.headers.get("source-topic", "")
        if not any(source == settings.topic(name) for name in REPLAYABLE):
            raise InvalidConfig(
                f"dead letter {letter.partition}/{letter.offset} came from {source or 'nowhere'}"
                f", not a topic the writers read ({', '.join(sorted(REPLAYABLE))})"
            )
        targets.append((source, letter))
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True)
    await producer.start()
    try:
        for source, letter in targets:
            marker = f"dlq/{letter.partition}/{letter.offset}".encode()
            await producer.send_and_wait(
                source, letter.value, key=letter.key, headers=[("replayed-from", marker)]
            )
    finally:
        await producer.stop()
    return len(targets)


__all__ = ["DeadLetter", "read", "replay"]
