"""The commit guard: effects are sent without awaiting each one, yet never committed past.

The writer agents used to await the delivery of every work item before taking the next event;
that kept the guarantee (no source offset committed before its effects are durable) but made
every send its own produce request, ~30x below what the framework allows. Now an agent hands its
effects to the producer and moves on, and this guard keeps the guarantee at the one place it
matters, the offset commit. The order of one commit is:

1. **table writes** (the agents write the ``jobs`` / ``datasets`` tables; Faust hands changelog
   records to a background buffer),
2. **sends** (work items, dead letters, changelog records: every future is watched),
3. **the flush guard** (:meth:`GuardedProducer.flush`): returns only when every table write made
   so far has reached the Kafka client, the client has delivered everything, and no delivery
   failed since the process started; otherwise it raises :class:`EffectLost`,
4. **the offset commit**, which Faust's consumer makes only after that flush returns
   (``Consumer._commit_offsets``, non-transactional mode; :mod:`app.stream.faust_compat` checks
   at start-up that it still does). After :class:`EffectLost` the commit does not happen, the
   worker stops, and its events are replayed by the next owner of the partition (replays are
   idempotent).

:class:`GuardedProducer` is Faust's own aiokafka producer with ``send`` and ``flush`` extended
(a subclass, installed through the transport registry by :mod:`app.stream.faust_compat`, not
methods patched at run time). A lost *work item* alone would also be repaired by the dispatch
deadline (:func:`app.domain.state_machine.on_tick`); the guard is what protects the table write
and the dead letters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from app.domain.errors import ExhaustError
from app.stream import cloud_events

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
        self.in_flight = 0  # sends handed to the Kafka client, not yet delivered or failed
        self.failures: list[str] = []

    def track_changelogs(self, *topics: str) -> None:
        """Count the sends to ``topics`` as table writes handed over."""
        self.changelog_topics = self.changelog_topics | frozenset(topics)

    def table_write(self) -> None:
        self.table_writes += 1

    def watch(self, topic: str, future: Any) -> None:
        if topic in self.changelog_topics:
            self.handed_over += 1
        self.in_flight += 1
        future.add_done_callback(self._delivered)

    def unsettled(self) -> int:
        """Effects made but not yet delivered (or failed): table writes not yet handed to the
        Kafka client and sends it has not answered."""
        return self.in_flight + max(0, self.table_writes - self.handed_over)

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        self.in_flight -= 1
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


class GuardedProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer whose every send is watched by :attr:`ledger` and whose
    ``flush`` (what Faust's commit path calls) is the commit guard."""

    ledger: EffectLedger

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ledger = EffectLedger()
        self.annotated: frozenset[str] = frozenset()

    def annotate(self, *topics: str) -> None:
        """Attach to the records sent to ``topics`` the headers their values were filed with
        (:mod:`app.stream.cloud_events`)."""
        self.annotated = self.annotated | frozenset(topics)

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        if topic in self.annotated:
            args, kwargs = cloud_events.attach(args, kwargs)
        future = await super().send(topic, *args, **kwargs)
        self.ledger.watch(topic, future)
        return future

    async def flush(self) -> None:
        self.ledger.check()
        await self.ledger.wait_handed_over()
        await super().flush()
        self.ledger.check()


__all__ = ["EffectLedger", "EffectLost", "GuardedProducer"]
