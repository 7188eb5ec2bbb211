"""The writer's fence: a processor that may have lost its group membership decides nothing.

Faust's writer is fenced by nothing at the broker: a processor whose session expired at the
group coordinator (the coordinator's host cut off, a frozen process) goes on reading from the
partition leaders and deciding the events it holds until its next heartbeat tells it, while the
group has handed its partitions to another processor. Both then write the same jobs: the
cluster's checker saw four jobs go SUCCESS → PROCESSING → SUCCESS after the coordinator's host
was cut off. Kafka's own answer, transactions with a producer fenced by epoch, is what
faust-streaming does not do reliably.

So the writer decides a batch only while the coordinator has confirmed its membership within
half the session timeout (:class:`~app.stream.aiokafka_compat.Membership`). The coordinator
removes a member only after a whole session without a heartbeat, so a writer inside that bound
still owns its partitions. Past it, the batch waits: the next heartbeat either confirms the
membership (the batch is decided as usual) or starts a rebalance, and then the batch is
*abandoned*: not decided and not acknowledged, so its offsets are never committed and the
partitions' next owner reads the events again from the committed offset. The writer's edge
abandons every later event of that generation too: decided before the abandoned ones are read
again, a later event would overtake an earlier one of its partition.

Deciding is not all: a batch decided in time can be *delivered* late. The writer's producer
is idempotent, so it retries a send to a partition whose leader is unreachable until it
lands, however long that takes; the checker saw a processor's records, decided while the
group coordinator's host was cut off, land 22 s later, after the new owner's records for the
same jobs (SUCCESS, then the old SUBMITTED). So the writer also *stops itself*
(:meth:`MembershipFence.must_stop`): past the same bound, with any effect still undelivered,
it exits at once (:data:`EXIT_CODE`, ``WRITER_FENCED``) rather than let the producer deliver
after the group may have moved on. Its supervisor starts it again, and its events are read
again by whoever owns their partitions then (their offsets never committed). A request
already on the wire to the old leader when the process exits can still arrive there, and is
refused once that broker no longer leads the partition; Kafka's transactions, which fence a
producer by epoch, would close that last gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.domain.errors import ExhaustError

log = logging.getLogger("exhaust.fence")

POLL_SECONDS = 0.05  # how often a fenced writer looks again; fenced is the rare state
EXIT_CODE = 75  # EX_TEMPFAIL: a writer that stopped itself; start it again


class WriterFenced(ExhaustError):
    """The writer's membership went unconfirmed with effects still undelivered."""

    code = "WRITER_FENCED"
    retryable = True


class MembershipFence:
    """Admits a batch while the group membership is fresh (see module docstring)."""

    def __init__(
        self,
        age: Callable[[], float],
        limit_seconds: float,
        rebalancing: Callable[[], bool],
        *,
        on_fenced: Callable[[], None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        unsettled: Callable[[], int] = lambda: 0,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.stopping = stopping
        self.age = age
        self.limit_seconds = limit_seconds
        self.rebalancing = rebalancing
        self.on_fenced = on_fenced
        self.sleep = sleep
        self.unsettled = unsettled

    def must_stop(self) -> WriterFenced | None:
        """The reason to exit now, when the membership is past the bound with effects still
        undelivered; None otherwise (see module docstring)."""
        age, undelivered = self.age(), self.unsettled()
        if age <= self.limit_seconds or not undelivered:
            return None
        return WriterFenced(
            f"the group coordinator has not confirmed this writer's membership for {age:.1f}s "
            f"and {undelivered} effects are still undelivered: exiting before they can land "
            "after another writer took the partitions over"
        )

    async def admit(self) -> bool:
        """True when the batch may be decided; False when it must be abandoned (a rebalance,
        or the worker stopping, began while the membership was unconfirmed; or the worker is
        stopping or has crashed, whatever the membership: a crashing worker leaves its group
        first and then stops its agents, and a batch decided in between is written after the
        group has handed its partitions on)."""
        if self.stopping():
            return False
        if self.age() <= self.limit_seconds:
            return True
        self.on_fenced()
        log.warning(
            "the group coordinator has not confirmed this writer's membership for %.1fs "
            "(more than half the session): holding its events until it does",
            self.age(),
        )
        while True:
            if self.rebalancing():
                log.warning("a rebalance began while fenced: the held events are left uncommitted")
                return False
            if self.age() <= self.limit_seconds:
                log.warning("membership confirmed again: deciding the held events")
                return True
            await self.sleep(POLL_SECONDS)


__all__ = ["EXIT_CODE", "MembershipFence", "WriterFenced"]
