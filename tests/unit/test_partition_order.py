"""The writer's edge takes each partition's events in order: a gap (events lost between the
consumer's hand-out and the decisions) is sought back, never decided past."""

from __future__ import annotations

from app.stream.partition_order import DROP, TAKE, PartitionOrder, SeekBack

P = ("requests", 2)


def test_events_in_order_and_redeliveries_are_taken() -> None:
    order = PartitionOrder()
    sought = (1, 120)  # the rebalance's recovery sought the partition to its commit, 120
    assert [order.check(P, o, sought) for o in (120, 121, 122)] == [TAKE] * 3
    assert order.check(P, 121, sought) is TAKE  # a redelivery: the state machine ignores it
    assert order.check(P, 123, sought) is TAKE


def test_a_gap_is_sought_back_and_what_was_buffered_beyond_it_is_dropped() -> None:
    """The rolling restart's case: 120..145 handed out and lost, 146 arrives first."""
    order = PartitionOrder()
    assert order.check(P, 146, (1, 120)) == SeekBack(120)
    order.sought_back(P, (2, 120))  # the edge sought it back: the consumer's seek number 2
    assert order.check(P, 147, (2, 120)) is DROP  # from before the seek: it comes again
    assert order.check(P, 148, (2, 120)) is DROP
    assert [order.check(P, o, (2, 120)) for o in range(120, 149)] == [TAKE] * 29
    assert order.check(P, 149, (2, 120)) is TAKE


def test_a_gap_inside_a_run_is_caught_too() -> None:
    order = PartitionOrder()
    assert order.check(P, 10, None) is TAKE  # nothing known yet: taken, and expected after
    assert order.check(P, 11, None) is TAKE
    assert order.check(P, 14, None) == SeekBack(12)


def test_every_new_seek_of_the_consumer_sets_what_comes_next() -> None:
    order = PartitionOrder()
    assert order.check(P, 50, (1, 50)) is TAKE
    assert order.check(P, 51, (1, 50)) is TAKE
    # The watchdog sought it back to its commit, 40: 40 is next, 52 would be a gap.
    assert order.check(P, 52, (2, 40)) == SeekBack(40)
    assert order.check(P, 40, (3, 40)) is TAKE


def test_a_jump_that_every_seek_lands_beyond_is_accepted_after_three() -> None:
    """Records deleted by retention: the partition reads on from what is there."""
    order = PartitionOrder(reseeks=3)
    order.check(P, 9, (1, 9))
    for seek in (2, 3, 4):
        assert order.check(P, 30, (seek, 10)) == SeekBack(10)
        order.sought_back(P, (seek + 10, 10))
        assert order.check(P, 31, (seek + 10, 10)) is DROP
    assert order.check(P, 30, (20, 10)) is TAKE
    assert order.check(P, 31, (20, 10)) is TAKE


def test_partitions_are_independent() -> None:
    order = PartitionOrder()
    other = ("requests", 3)
    assert order.check(P, 5, (1, 5)) is TAKE
    assert order.check(other, 90, (1, 90)) is TAKE
    assert order.check(P, 6, (1, 5)) is TAKE
    assert order.check(other, 92, (1, 90)) == SeekBack(91)
