"""Which objects the janitor sweeps after a job ends: a dead attempt's, never the live one's."""

from __future__ import annotations

from typing import Any

from app.stream.janitor import sweep_for


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
