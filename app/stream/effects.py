"""The commit guard: effects are sent without awaiting each one, yet never committed past.

The writer agents used to await the delivery of every work item before taking the next event;
that kept the guarantee (no source offset committed before its effects are durable) but made
every send its own produce request, ~30x below what the framework allows. Now an agent hands its
effects to the producer and moves on, and this guard keeps the guarantee at the one place it
matters, the offset commit:

* Faust commits a source offset only after ``producer.flush()`` (``Consumer._commit_offsets``,
  non-transactional mode). :func:`guard_producer` wraps that ``flush`` so that it returns only
  when (1) every table write made so far has reached the Kafka client (Faust hands changelog
  writes to a background buffer whose own flush gives up after 0.1 s idle), (2) the client has
  delivered everything, and (3) no delivery failed since the process started. Otherwise it raises
  :class:`EffectLost`: the commit does not happen, the worker stops, and its events are replayed
  by the next owner of the partition (replays are idempotent).
* Every send's future is watched (``producer.send`` is wrapped too), so a failure that aiokafka
  reports only on the future is seen. A lost *work item* alone would also be repaired by the
  dispatch deadline (:func:`app.domain.state_machine.on_tick`); the guard is what protects the table
  write and the dead letters.

Wrapping two methods of Faust's producer instance is the narrowest hook Faust offers here: its
producer class is not configurable and its ``flush`` is what its commit path calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.domain.errors import ExhaustError

log = logging.getLogger("exhaust.effects")


class EffectLost(ExhaustError):
    """A message the writer produced was not delivered; its source offset must not commit."""

    code = "EFFECT_LOST"
    retryable = True


class EffectLedger:
    """Counts the writer's effects and the failures of their deliveries."""

    def __init__(self, *changelog_topics: str, handoff_timeout: float = 30.0) -> None:
        self.changelog_topics = frozenset(changelog_topics)
        self.handoff_timeout = handoff_timeout
        self.table_writes = 0  # table writes made by the agents
        self.handed_over = 0  # changelog sends that reached the Kafka client
        self.failures: list[str] = []

    def table_write(self) -> None:
        self.table_writes += 1

    def watch(self, topic: str, future: Any) -> None:
        if topic in self.changelog_topics:
            self.handed_over += 1
        future.add_done_callback(self._delivered)

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self._fail("delivery cancelled")
        elif (exc := future.exception()) is not None:
            self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, reason: str) -> None:
        self.failures.append(reason)
        log.critical("a produced message was not delivered (%s); offsets will not commit", reason)

    async def wait_handed_over(self) -> None:
        deadline = time.monotonic() + self.handoff_timeout
        while self.handed_over < self.table_writes:
            if time.monotonic() > deadline:
                raise EffectLost(
                    f"{self.table_writes - self.handed_over} table writes did not reach the "
                    f"Kafka client within {self.handoff_timeout:.0f}s"
                )
            await asyncio.sleep(0.001)

    def check(self) -> None:
        if self.failures:
            raise EffectLost(
                f"{len(self.failures)} produced messages were not delivered "
                f"(first: {self.failures[0]}); refusing to commit their source offsets"
            )


def guard_producer(producer: Any, ledger: EffectLedger) -> None:
    """Wrap a Faust producer's ``send`` and ``flush`` with ``ledger`` (see module docstring)."""
    send: Callable[..., Awaitable[Any]] = producer.send
    flush: Callable[[], Awaitable[None]] = producer.flush

    async def watched_send(topic: str, *args: Any, **kwargs: Any) -> Any:
        future = await send(topic, *args, **kwargs)
        ledger.watch(topic, future)
        return future

    async def guarded_flush() -> None:
        ledger.check()
        await ledger.wait_handed_over()
        await flush()
        ledger.check()

    producer.send = watched_send
    producer.flush = guarded_flush
