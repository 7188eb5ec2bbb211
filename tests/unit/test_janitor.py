"""Which objects the janitor sweeps after a job ends: a dead attempt's, never the live one's."""

from __future__ import annotations

from typing import Any

from app.stream.janitor import RetryPause, sweep_for


def record(status: str, attempt: int = 1, attempts: int = 1) -> dict[str, Any]:
    return {
        "request_id": "R1", "channel": "acme", "dataset": "demo-export", "status": status,
        "attempt": attempt, "attempts": attempts, "last_updated": 0,
    }  # fmt: skip


def test_a_success_of_a_first_attempt_costs_no_sweep() -> None:
    assert sweep_for(record("SUCCESS"), public=False) is None


def test_a_success_after_a_dead_attempt_keeps_only_the_live_attempt() -> None:
    assert sweep_for(record("SUCCESS", attempt=2, attempts=2), public=False) == (
        "acme/demo-export/R1/",
        "acme/demo-export/R1/2/",
    )
    assert sweep_for(record("SUCCESS", attempt=3, attempts=3), public=True) == (
        "public/acme/demo-export/R1/",
        "public/acme/demo-export/R1/3/",
    )


def test_failed_and_cancelled_jobs_keep_nothing_and_others_are_left_alone() -> None:
    assert sweep_for(record("FAILED", attempt=3, attempts=3), public=False) == (
        "acme/demo-export/R1/",
        None,
    )
    assert sweep_for(record("CANCELLED"), public=False) == ("acme/demo-export/R1/", None)
    for status in ("SUBMITTED", "PROCESSING", "AWAITING_INPUT", "EXPIRED"):
        assert sweep_for(record(status, attempt=2, attempts=2), public=False) is None


def test_records_with_nothing_to_sweep_take_no_place_of_their_own() -> None:
    import collections

    from aiokafka import TopicPartition

    from app.stream.janitor import Sweep, add

    p0, p1 = TopicPartition("jobs", 0), TopicPartition("jobs", 1)
    pending: collections.deque[Sweep] = collections.deque()
    add(pending, Sweep(p0, 1, 0.0, "", None))
    add(pending, Sweep(p0, 2, 0.0, "", None))  # replaces the no-op before it
    add(pending, Sweep(p0, 3, 9.0, "acme/d/R1/", None))  # a real sweep waits for its time
    add(pending, Sweep(p0, 4, 0.0, "", None))
    add(pending, Sweep(p1, 5, 0.0, "", None))  # another partition: its own commit
    add(pending, Sweep(p0, 6, 0.0, "", None))
    assert [(s.tp.partition, s.offset) for s in pending] == [(0, 2), (0, 3), (0, 4), (1, 5), (0, 6)]
    add(pending, Sweep(p0, 7, 0.0, "", None))
    assert pending[-1].offset == 7 and len(pending) == 5


def test_an_object_store_that_keeps_failing_is_asked_ever_less_often_and_logged_once(
    caplog: Any,
) -> None:
    now = [0.0]
    pause = RetryPause(first=1.0, longest=8.0, clock=lambda: now[0])
    assert pause.ready()
    waits = []
    for _ in range(5):
        pause.failed("the object store does not answer")
        waits.append(pause.retry_at - now[0])
        assert not pause.ready()
        now[0] = pause.retry_at
        assert pause.ready()
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    pause.succeeded()
    assert pause.ready()
    pause.failed("down again")  # a new outage starts from the first wait
    assert pause.retry_at - now[0] == 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "janitor: the object store does not answer; retrying with backoff up to 8s",
        "janitor: down again; retrying with backoff up to 8s",
    ]
