"""The jobs client's one implementation of its logic, driven step by step without a network."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.client.jobs import Call, JobsCore, Operation, Pause
from app.domain.errors import (
    InvalidIdentifier,
    TransientError,
    UnknownDataset,
    WaitTimedOut,
)

JOB = {"request_id": "r1", "tag": "t", "dataset": "demo-export", "status": "PROCESSING",
       "attempt": 1, "progress": 0.5, "outputs": [], "download_urls": []}  # fmt: skip


def drive(operation: Operation[Any], answers: list[Any]) -> tuple[Any, list[Any]]:
    """Run ``operation``, answering its calls with ``answers`` in turn; its result and steps."""
    steps: list[Any] = []
    answer: Any = None
    try:
        while True:
            step = operation.send(answer)
            steps.append(step)
            answer = answers.pop(0) if isinstance(step, Call) else None
    except StopIteration as done:
        return done.value, steps


def test_a_busy_answer_is_retried_after_the_time_it_names_with_the_same_request_id() -> None:
    core = JobsCore("acme", None, retries=3)
    busy = httpx.Response(503, headers={"Retry-After": "7"}, json={"error": {"code": "BUSY",
                          "message": "at the limit"}})  # fmt: skip
    limited = httpx.Response(429, json={})
    accepted = httpx.Response(202, json={"request_id": "x", "status": "SUBMITTED"})
    submitted, steps = drive(core.submit("t", "demo-export"), [busy, limited, accepted])
    assert submitted.status == "SUBMITTED"
    calls = [s for s in steps if isinstance(s, Call)]
    assert [s for s in steps if isinstance(s, Pause)] == [Pause(7.0), Pause(1.0)]
    assert len(calls) == 3 and len({c.json["request_id"] for c in calls}) == 1  # one job
    assert calls[0].headers == {"X-Channel-ID": "acme"}


def test_lost_connections_back_off_then_fail_as_transient() -> None:
    core = JobsCore("acme", None, retries=2)
    lost = httpx.ConnectError("refused")
    with pytest.raises(TransientError, match="no answer"):
        drive(core.get("r1"), [lost, lost, lost])


def test_a_refusal_is_the_services_own_error_and_is_not_retried() -> None:
    core = JobsCore("acme", None, retries=5)
    refused = httpx.Response(400, json={"error": {"code": "UNKNOWN_DATASET", "message": "no"}})
    with pytest.raises(UnknownDataset):
        drive(core.submit("t", "nope"), [refused])
    garbage = httpx.Response(500, text="<html>")
    with pytest.raises(Exception, match="HTTP 500"):
        drive(core.get("r1"), [garbage])


def test_a_job_id_cannot_walk_the_apis_paths() -> None:
    core = JobsCore("acme", None, retries=0)
    for hostile in ("../datasets", "a/b", "..", ""):
        with pytest.raises(InvalidIdentifier):
            drive(core.get(hostile), [])


def test_waiting_reports_changes_only_and_gives_up_at_its_limit() -> None:
    core = JobsCore("acme", None, retries=0)
    seen: list[str] = []
    running = httpx.Response(200, json=JOB)
    done = httpx.Response(200, json={**JOB, "status": "SUCCESS", "progress": 1.0})
    job, steps = drive(
        core.wait("r1", None, 0.5, lambda j: seen.append(j.status)), [running, running, done]
    )
    assert job.status == "SUCCESS" and seen == ["PROCESSING", "SUCCESS"]
    assert steps.count(Pause(0.5)) == 2
    with pytest.raises(WaitTimedOut) as timed_out:
        drive(core.wait("r1", 0.1, 5.0, None), [running])
    assert timed_out.value.details == {"status": "PROCESSING"}


def test_a_job_just_accepted_is_waited_for_until_the_api_shows_it() -> None:
    core = JobsCore("acme", None, retries=0)
    unseen = httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "no job"}})
    done = httpx.Response(200, json={**JOB, "status": "SUCCESS"})
    job, steps = drive(core.wait("r1", None, 0.2, None), [unseen, unseen, done])
    assert job.status == "SUCCESS" and steps.count(Pause(0.2)) == 2
