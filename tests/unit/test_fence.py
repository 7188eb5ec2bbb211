"""The writer's fence decides only while the group has recently confirmed its membership."""

from __future__ import annotations

from app.stream.fence import MembershipFence


class World:
    """A membership age and a rebalance flag that move only when the fence waits."""

    def __init__(self, ages: list[float], rebalance_after: int | None = None) -> None:
        self.ages = ages
        self.rebalance_after = rebalance_after
        self.waits = 0
        self.fenced = 0

    def age(self) -> float:
        return self.ages[min(self.waits, len(self.ages) - 1)]

    def rebalancing(self) -> bool:
        return self.rebalance_after is not None and self.waits >= self.rebalance_after

    async def sleep(self, seconds: float) -> None:
        self.waits += 1

    def fence(self) -> MembershipFence:
        def on_fenced() -> None:
            self.fenced += 1

        return MembershipFence(
            self.age, 4.0, self.rebalancing, on_fenced=on_fenced, sleep=self.sleep
        )


async def test_a_fresh_membership_admits_at_once() -> None:
    world = World([0.5])
    assert await world.fence().admit() is True
    assert (world.waits, world.fenced) == (0, 0)


async def test_a_stale_membership_holds_the_batch_until_the_coordinator_confirms_it() -> None:
    world = World([4.5, 5.0, 5.5, 0.1])
    assert await world.fence().admit() is True
    assert (world.waits, world.fenced) == (3, 1)


async def test_a_rebalance_while_fenced_abandons_the_batch() -> None:
    world = World([4.5, 6.0, 9.0], rebalance_after=2)
    assert await world.fence().admit() is False
    assert (world.waits, world.fenced) == (2, 1)


async def test_a_rebalance_with_a_fresh_membership_still_decides() -> None:
    # A member that heartbeats through a rebalance keeps its partitions until it has revoked
    # them itself (Faust waits for the batch before it does).
    world = World([1.0], rebalance_after=0)
    assert await world.fence().admit() is True


def test_a_writer_stops_itself_only_when_unconfirmed_with_effects_undelivered() -> None:
    ages, undelivered = [1.0], [3]
    fence = MembershipFence(lambda: ages[0], 4.0, lambda: False, unsettled=lambda: undelivered[0])
    assert fence.must_stop() is None  # confirmed recently: late deliveries still land in order
    ages[0] = 4.5
    stop = fence.must_stop()
    assert stop is not None and stop.code == "WRITER_FENCED" and "3 effects" in stop.message
    undelivered[0] = 0
    assert fence.must_stop() is None  # nothing left that could land late: hold, do not exit


async def test_a_stopping_or_crashed_worker_decides_nothing_even_with_a_fresh_membership() -> None:
    """A crashing worker leaves its group before its agents stop: a batch decided then would be
    written after the group handed its partitions on."""
    world = World([0.5])
    stopping = [False]
    fence = MembershipFence(
        world.age, 4.0, world.rebalancing, sleep=world.sleep, stopping=lambda: stopping[0]
    )
    assert await fence.admit() is True
    stopping[0] = True
    assert await fence.admit() is False
    assert world.waits == 0  # refused at once, not held
