"""The stall rule: lag without progress for a window is a stall; progress or no lag is not."""

from __future__ import annotations

from app.stream.watchdog import StallDetector

P = ("requests", 0)


def test_lag_without_progress_for_the_window_is_a_stall_reported_once() -> None:
    d = StallDetector(stall_seconds=10)
    assert d.observe({P: 5}, {P: 9}, now=0).stalled == []
    assert d.observe({P: 5}, {P: 12}, now=9.9).stalled == []
    assert d.observe({P: 5}, {P: 12}, now=10).stalled == [P]
    assert d.stalled == [P]
    assert d.observe({P: 5}, {P: 12}, now=11).stalled == []  # already being recovered


def test_progress_or_no_lag_is_healthy() -> None:
    d = StallDetector(stall_seconds=10)
    d.observe({P: 5}, {P: 9}, now=0)
    assert d.observe({P: 6}, {P: 9}, now=15).stalled == []  # moved
    assert d.observe({P: 6}, {P: 6}, now=40).stalled == []  # idle: no lag
    assert d.observe({P: 6}, {P: 7}, now=45).stalled == []  # lag just appeared
    assert d.observe({P: 6}, {P: 7}, now=55).stalled == [P]


def test_a_stall_that_recovers_is_reported_healthy_and_one_that_does_not_is_hopeless() -> None:
    d = StallDetector(stall_seconds=10)
    d.observe({P: 5}, {P: 9}, now=0)
    d.observe({P: 5}, {P: 9}, now=10)
    assert d.observe({P: 7}, {P: 9}, now=12).healthy_again == [P]
    assert d.stalled == []
    d.observe({P: 7}, {P: 9}, now=22)  # stalled again
    assert d.observe({P: 7}, {P: 9}, now=31).hopeless == []
    assert d.observe({P: 7}, {P: 9}, now=32).hopeless == [P]


def test_partitions_no_longer_consumed_are_forgotten() -> None:
    d = StallDetector(stall_seconds=10)
    d.observe({P: 5}, {P: 9}, now=0)
    d.observe({}, {}, now=5)
    assert d.observe({P: 5}, {P: 9}, now=12).stalled == []  # its clock restarted


def test_a_partition_still_delivering_after_its_recovery_is_never_hopeless() -> None:
    """Commits trailing deliveries (a worker catching up, its commits waiting on the producer)
    are sought back once, then watched as long as the partition delivers."""
    d = StallDetector(stall_seconds=10)
    d.observe({P: 5}, {P: 90}, now=0, delivered={P: 40})
    assert d.observe({P: 5}, {P: 90}, now=10, delivered={P: 60}).stalled == [P]  # sought to 5
    assert d.observe({P: 5}, {P: 90}, now=20, delivered={P: 30}).hopeless == []  # 5 → 30
    assert d.observe({P: 5}, {P: 90}, now=30, delivered={P: 55}).hopeless == []
    assert d.observe({P: 70}, {P: 90}, now=35, delivered={P: 80}).healthy_again == [P]


def test_a_partition_sought_back_that_delivers_nothing_is_hopeless() -> None:
    d = StallDetector(stall_seconds=10)
    d.observe({P: 5}, {P: 90}, now=0, delivered={P: 40})
    assert d.observe({P: 5}, {P: 90}, now=10, delivered={P: 40}).stalled == [P]
    # Sought to 5 and nothing handed out since: the marker stands at the seek's offset.
    assert d.observe({P: 5}, {P: 90}, now=20, delivered={P: 5}).hopeless == [P]
    # A marker that moved once and then stood still is hopeless a window later.
    d = StallDetector(stall_seconds=10)
    d.observe({P: 5}, {P: 90}, now=0, delivered={P: 40})
    d.observe({P: 5}, {P: 90}, now=10, delivered={P: 40})
    assert d.observe({P: 5}, {P: 90}, now=20, delivered={P: 12}).hopeless == []
    assert d.observe({P: 5}, {P: 90}, now=30, delivered={P: 12}).hopeless == [P]


def test_forgetting_restarts_every_clock() -> None:
    d = StallDetector(stall_seconds=10)
    d.observe({P: 5}, {P: 9}, now=0)
    d.observe({P: 5}, {P: 9}, now=10)
    assert d.stalled == [P]
    d.forget()  # a rebalance: nothing was consumed meanwhile
    assert d.stalled == []
    assert d.observe({P: 5}, {P: 9}, now=25).stalled == []
    assert d.observe({P: 5}, {P: 9}, now=34).stalled == []
    assert d.observe({P: 5}, {P: 9}, now=35).stalled == [P]
