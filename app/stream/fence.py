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
partitions' next owner reads the events again from the committed offset. A batch already
decided before the bound passed can still be delivered late if the producer retries for a long
time (a partition leader moving); that window is the producer's delivery time, not the
session's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("exhaust.fence")

POLL_SECONDS = 0.05  # how often a fenced writer looks again; fenced is the rare state


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
    ) -> None:
        self.age = age
        self.limit_seconds = limit_seconds
        self.rebalancing = rebalancing
        self.on_fenced = on_fenced
        self.sleep = sleep

    async def admit(self) -> bool:
        """True when the batch may be decided; False when it must be abandoned (a rebalance,
        or the worker stopping, began while the membership was unconfirmed)."""
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


__all__ = ["MembershipFence"]
