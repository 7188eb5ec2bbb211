"""Every rule of the job state machine, and every fence."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.fernet import Fernet

from app.catalog.loader import default_catalog
from app.domain.errors import NotRetryable
from app.domain.model import (
    DatasetRequest,
    EventKind,
    Job,
    JobError,
    JobEvent,
    OutputFile,
    attempt_prefix,
)
from app.domain.state_machine import (
    JobPolicy,
    Outcome,
    identify,
    on_event,
    on_request,
    on_tick,
    retry_request,
)
from app.sealing import Sealer
from tests.corpus import load

POLICY = JobPolicy(
    max_attempts=3, lease_ms=10_000, retention_ms=100_000, dedup_window_seconds=86400
)
CATALOG = default_catalog()
REQ = DatasetRequest(
    tag="t1", dataset="demo-export", channel="acme", requested_by="u1",
    submitted_at=1_000, config='{"rows": 5}',
)  # fmt: skip
OUT = [OutputFile(key="acme/demo-export/x/1/data.csv", rows=5, bytes=50, sha256="ab")]


def submit(existing: Job | None, request: DatasetRequest = REQ, now: int = 2_000) -> Outcome:
    return on_request(existing, request, partition=2, now=now, policy=POLICY, catalog=CATALOG)


def event(
    job: Job, kind: EventKind, now: int = 3_000, attempt: int | None = None, **kw: Any
) -> Outcome:
    if "outputs" in kw:  # files of this attempt, as the generator writes them
        prefix = attempt_prefix(job.channel, job.dataset, job.request_id, attempt or job.attempt)
        kw["outputs"] = [
            dataclasses.replace(o, key=prefix + o.key.rsplit("/", 1)[1]) for o in kw["outputs"]
        ]
    ev = JobEvent(
        kind=kind, request_id=job.request_id, attempt=attempt or job.attempt, at=now, **kw
    )
    return on_event(job, ev, now=now, policy=POLICY)


def names(outputs: list[OutputFile]) -> list[tuple[str, int]]:
    return [(o.key.rsplit("/", 1)[1], o.rows) for o in outputs]


def new_job() -> Job:
    outcome = submit(None)
    assert outcome.job is not None
    return outcome.job


def succeeded(now: int = 4_000) -> Job:
    job = event(new_job(), "STARTED").job
    assert job is not None
    done = event(job, "COMPLETED", now=now, outputs=OUT, total_rows=5).job
    assert done is not None
    return done


def test_a_new_request_creates_a_submitted_job_and_its_work() -> None:
    outcome = submit(None)
    assert outcome.counter == "job_created"
    assert outcome.job is not None and outcome.work is not None
    assert outcome.job.status == "SUBMITTED" and outcome.job.attempt == 1
    assert outcome.job.partition == 2 and outcome.job.fingerprint
    assert outcome.work.request_id == outcome.job.request_id and outcome.work.attempt == 1
    assert outcome.work.prefix == f"acme/demo-export/{outcome.job.request_id}/1/"


@pytest.mark.parametrize("status", ["SUBMITTED", "PROCESSING"])
def test_duplicates_of_a_running_job_are_counted_and_start_nothing(status: str) -> None:
    job = new_job().replace(status=status)
    outcome = submit(job)
    assert outcome.counter == "duplicate" and outcome.work is None
    assert outcome.job is not None and outcome.job.duplicates == 1
    assert outcome.job.status == status and outcome.job.attempt == 1


def test_duplicate_of_an_unexpired_success_is_answered_from_it() -> None:
    done = succeeded()
    outcome = submit(done, now=5_000)
    assert outcome.counter == "duplicate" and outcome.work is None
    assert outcome.job is not None and names(outcome.job.outputs) == names(OUT)


def test_duplicate_of_an_expired_success_regenerates_with_a_new_attempt() -> None:
    done = succeeded(now=4_000)
    assert done.expires_at == 104_000
    outcome = submit(done, now=104_000)
    assert outcome.counter == "regenerated"
    assert outcome.job is not None and outcome.work is not None
    assert outcome.job.attempt == 2 and outcome.job.status == "SUBMITTED"
    assert outcome.job.outputs == [] and outcome.work.attempt == 2


def test_failed_job_is_resubmitted_keeping_its_attempt_count_up_to_the_limit() -> None:
    job = new_job().replace(status="FAILED", error=JobError("X", "boom"))
    outcome = submit(job)
    assert outcome.counter == "resubmitted" and outcome.job is not None
    assert outcome.job.attempt == 2 and outcome.job.error is None
    exhausted = job.replace(attempt=3)
    outcome = submit(exhausted)
    assert outcome.counter == "duplicate" and outcome.work is None
    assert outcome.job is not None and outcome.job.status == "FAILED"


def test_client_id_reused_with_other_parameters_is_a_conflict_and_touches_nothing() -> None:
    first = submit(None, dataclasses.replace(REQ, request_id="job-1")).job
    assert first is not None
    for other in (
        dataclasses.replace(REQ, request_id="job-1", config='{"rows": 6}'),
        dataclasses.replace(REQ, request_id="job-1", tag="t2"),
    ):
        outcome = submit(first, other)
        assert outcome.counter == "conflict"
        assert outcome.job is None and outcome.work is None
        assert outcome.rejection is not None and outcome.rejection.code == "REQUEST_CONFLICT"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"dataset": "no-such-type"}, "UNKNOWN_DATASET"),
        ({"config": '{"rows": -1}'}, "INVALID_CONFIG"),
        ({"config": '{"nope": 1}'}, "INVALID_CONFIG"),
        ({"config": "{not json"}, "INVALID_CONFIG"),
        ({"tag": "  "}, "INVALID_IDENTIFIER"),
        ({"tag": "a b/c"}, "INVALID_IDENTIFIER"),
        ({"channel": "../../../../tmp/x"}, "INVALID_IDENTIFIER"),
        ({"channel": "a b/c"}, "INVALID_IDENTIFIER"),
        ({"dataset": "../x"}, "INVALID_IDENTIFIER"),
        ({"request_id": "a/b"}, "INVALID_IDENTIFIER"),
    ],
)
def test_a_request_that_cannot_run_becomes_a_failed_job_with_a_code(
    change: dict[str, Any], code: str
) -> None:
    outcome = submit(None, dataclasses.replace(REQ, **change))
    assert outcome.counter == "job_rejected" and outcome.work is None
    assert outcome.job is not None and outcome.job.status == "FAILED"
    assert outcome.job.error is not None and outcome.job.error.code == code


def test_happy_path_started_progress_completed() -> None:
    job = new_job()
    started = event(job, "STARTED", now=3_000).job
    assert started is not None and started.status == "PROCESSING"
    assert started.attempts == 1 and started.lease_expires_at == 13_000
    progressed = event(started, "PROGRESS", now=5_000, progress=0.5).job
    assert progressed is not None and progressed.progress == 0.5
    assert progressed.lease_expires_at == 15_000
    done = event(progressed, "COMPLETED", now=6_000, outputs=OUT, total_rows=5).job
    assert done is not None and done.status == "SUCCESS" and names(done.outputs) == names(OUT)
    assert done.lease_expires_at is None and done.expires_at == 106_000


def test_events_of_another_attempt_are_ignored() -> None:
    job = event(new_job(), "STARTED").job
    assert job is not None
    retried = job.replace(attempt=2, status="SUBMITTED")
    outcome = event(retried, "COMPLETED", attempt=1, outputs=OUT)
    assert outcome.counter == "ignored_stale_attempt" and outcome.job is None


def test_events_for_terminal_or_unknown_jobs_are_ignored() -> None:
    done = succeeded()
    assert event(done, "FAILED", error=JobError("X", "late")).counter == "ignored_terminal"
    assert event(done, "CANCEL").counter == "ignored_terminal"
    ghost = JobEvent(kind="STARTED", request_id="nobody", attempt=1, at=1)
    assert on_event(None, ghost, now=1, policy=POLICY).counter == "ignored_unknown_job"


def test_the_late_end_of_an_attempt_that_cannot_count_discards_it_and_nothing_else() -> None:
    started = event(new_job(), "STARTED").job
    assert started is not None
    superseded = started.replace(attempt=2, status="PROCESSING")  # attempt 1's lease ran out
    late = event(superseded, "COMPLETED", attempt=1, outputs=OUT)
    assert late.counter == "ignored_stale_attempt" and late.job is None
    assert late.discard is not None and (late.discard.key, late.discard.attempt) == (
        started.key, 1,
    )  # fmt: skip
    assert late.discard.sealed_key is None, "a discard does not carry the job's key"
    failed = event(superseded, "FAILED", attempt=1, error=JobError("X", "late"))
    assert failed.discard is not None and failed.discard.attempt == 1
    # Reports of an attempt still writing, or of one the job has not reached: no discard.
    assert event(superseded, "PROGRESS", attempt=1, progress=0.5).discard is None
    assert event(superseded, "STARTED", attempt=1).discard is None
    assert event(superseded, "COMPLETED", attempt=3, outputs=OUT).discard is None
    forged = JobEvent(kind="FAILED", request_id=started.request_id, attempt=0, at=3_000)
    assert on_event(superseded, forged, now=3_000, policy=POLICY).discard is None
    # A second copy of a SUCCESS's own attempt reporting: its files are the job's result.
    done = succeeded()
    assert event(done, "COMPLETED", outputs=OUT).discard is None
    assert event(done, "FAILED", error=JobError("X", "late")).discard is None
    earlier = event(done.replace(attempt=2), "COMPLETED", attempt=1, outputs=OUT)
    assert earlier.discard is not None and earlier.discard.attempt == 1
    # A job that ended without its attempt keeps none of its files.
    for status in ("FAILED", "CANCELLED", "EXPIRED"):
        ended = started.replace(status=status)
        outcome = event(ended, "COMPLETED", outputs=OUT)
        assert outcome.counter == "ignored_terminal" and outcome.job is None, status
        assert outcome.discard is not None and outcome.discard.attempt == 1, status
    assert event(started.replace(status="CANCELLED"), "CANCEL").discard is None


def test_redelivered_started_does_not_count_a_second_attempt() -> None:
    started = event(new_job(), "STARTED").job
    assert started is not None
    assert event(started, "STARTED").counter == "ignored_out_of_order"


def test_retryable_failure_retries_then_fails_at_the_limit() -> None:
    job = event(new_job(), "STARTED").job
    assert job is not None
    error = JobError("GENERATION_ERROR", "disk full")
    outcome = event(job, "FAILED", error=error, retryable=True)
    assert outcome.counter == "retried" and outcome.work is not None
    assert outcome.job is not None and outcome.job.attempt == 2
    last = job.replace(attempt=3)
    outcome = event(last, "FAILED", error=error, retryable=True)
    assert outcome.counter == "failed" and outcome.work is None
    assert outcome.job is not None and outcome.job.status == "FAILED" and outcome.job.error == error


def test_non_retryable_failure_fails_at_once() -> None:
    job = event(new_job(), "STARTED").job
    assert job is not None
    outcome = event(job, "FAILED", error=JobError("INVALID_CONFIG", "bad"), retryable=False)
    assert outcome.counter == "failed" and outcome.job is not None and outcome.job.attempt == 1


def test_lease_expiry_retries_with_next_attempt_then_times_out() -> None:
    job = event(new_job(), "STARTED", now=3_000).job
    assert job is not None
    assert on_tick(job, now=12_999, policy=POLICY).counter == "unchanged"
    outcome = on_tick(job, now=13_000, policy=POLICY)
    assert outcome.counter == "lease_expired" and outcome.work is not None
    assert outcome.job is not None and outcome.job.attempt == 2
    final = on_tick(job.replace(attempt=3), now=13_000, policy=POLICY)
    assert final.counter == "failed" and final.job is not None
    assert final.job.error == JobError("LEASE_EXPIRED", "timed out after 3 attempts")


def test_tick_expires_old_successes() -> None:
    done = succeeded(now=4_000)
    assert on_tick(done, now=103_999, policy=POLICY).counter == "unchanged"
    expired = on_tick(done, now=104_000, policy=POLICY)
    assert expired.job is not None and expired.job.status == "EXPIRED"


def test_cancel_stops_a_running_job() -> None:
    job = event(new_job(), "STARTED").job
    assert job is not None
    outcome = event(job, "CANCEL", attempt=0)
    cancelled = outcome.job
    assert cancelled is not None and cancelled.status == "CANCELLED"
    assert event(cancelled, "COMPLETED", outputs=OUT).counter == "ignored_terminal"
    # The running attempt is told to stop, where it runs; a queued one too; a finished job
    # has nothing to stop.
    assert outcome.stop is not None and (outcome.stop.key, outcome.stop.attempt) == (
        job.key,
        job.attempt,
    )
    queued = event(new_job(), "CANCEL", attempt=0)
    assert queued.stop is not None and queued.stop.attempt == 1
    assert event(cancelled, "CANCEL", attempt=0).stop is None


def test_the_job_and_its_work_item_hold_only_the_sealed_encryption_key() -> None:
    sealed = Sealer(Fernet.generate_key()).seal("top-secret")
    outcome = submit(None, dataclasses.replace(REQ, encryption_key=sealed))
    assert outcome.counter == "job_created" and outcome.job is not None
    assert outcome.job.has_encryption_key and outcome.job.sealed_key == sealed
    assert outcome.work is not None and outcome.work.sealed_key == sealed
    for record in (outcome.job.to_record(), outcome.work.to_record()):
        assert "top-secret" not in repr(record)


def test_a_clear_encryption_key_never_reaches_the_job_table() -> None:
    outcome = submit(None, dataclasses.replace(REQ, encryption_key="top-secret"))
    assert outcome.counter == "job_rejected" and outcome.job is not None
    assert outcome.job.error is not None and outcome.job.error.code == "CONFIGURATION_ERROR"
    assert outcome.job.sealed_key is None and outcome.work is None
    assert "top-secret" not in repr(outcome.job.to_record())


@pytest.mark.parametrize(
    "request_",
    [REQ, dataclasses.replace(REQ, request_id="job-9"), dataclasses.replace(REQ, request_id="a/b")],
)
def test_a_precomputed_identity_decides_exactly_as_computing_it_inside(
    request_: DatasetRequest,
) -> None:
    identity = identify(request_, POLICY)
    given = on_request(
        None, request_, partition=2, now=2_000, policy=POLICY, catalog=CATALOG, identity=identity
    )
    assert given == submit(None, request_)
    assert given.job is not None and given.job.request_id == identity.request_id


# --- deadlines of SUBMITTED jobs -----------------------------------------------------------


def test_a_submitted_job_carries_its_dispatch_deadline() -> None:
    job = new_job()
    assert job.lease_expires_at == 2_000 + POLICY.dispatch_timeout_ms


def test_a_submitted_job_past_its_deadline_gets_its_work_again_for_the_same_attempt() -> None:
    job = new_job()
    deadline = job.lease_expires_at
    assert deadline is not None
    assert on_tick(job, now=deadline - 1, policy=POLICY).counter == "unchanged"
    outcome = on_tick(job, now=deadline, policy=POLICY)
    assert outcome.counter == "redispatched"
    assert outcome.work is not None and outcome.work.attempt == job.attempt == 1
    assert outcome.job is not None and outcome.job.status == "SUBMITTED"
    assert outcome.job.lease_expires_at == deadline + POLICY.dispatch_timeout_ms


def test_a_work_item_still_queued_behind_busy_generators_is_not_dispatched_twice() -> None:
    job = new_job()
    assert job.lease_expires_at is not None
    outcome = on_tick(job, now=job.lease_expires_at + 1, policy=POLICY, work_waiting=True)
    assert outcome.counter == "dispatch_deferred"
    assert outcome.job is None and outcome.work is None  # nothing written, nothing sent


def test_a_submitted_record_without_a_deadline_uses_its_last_update() -> None:
    job = new_job().replace(lease_expires_at=None, last_updated=5_000)
    assert on_tick(job, now=5_000 + POLICY.dispatch_timeout_ms - 1, policy=POLICY).job is None
    assert on_tick(job, now=5_000 + POLICY.dispatch_timeout_ms, policy=POLICY).work is not None


def test_a_retry_and_a_resubmission_set_a_fresh_dispatch_deadline() -> None:
    job = event(new_job(), "STARTED").job
    assert job is not None
    retry = event(job, "FAILED", now=7_000, retryable=True, error=JobError("X", "y")).job
    assert retry is not None and retry.status == "SUBMITTED" and retry.attempt == 2
    assert retry.lease_expires_at == 7_000 + POLICY.dispatch_timeout_ms


def test_every_non_terminal_state_has_a_deadline() -> None:
    submitted = new_job()
    processing = event(submitted, "STARTED").job
    assert processing is not None
    for job in (submitted, processing):
        assert job.lease_expires_at is not None
        assert on_tick(job, now=job.lease_expires_at + 1, policy=POLICY).job is not None


AWAIT = dataclasses.replace(REQ, request_id="ds-1", inputs=["acme/inputs/ds-1/0.ndjson"],
                            await_input_until=60_000)  # fmt: skip


def test_a_request_awaiting_input_waits_until_commenced_by_the_same_request() -> None:
    waiting = submit(None, AWAIT)
    assert waiting.counter == "awaiting_input" and waiting.work is None
    job = waiting.job
    assert job is not None and job.status == "AWAITING_INPUT" and job.lease_expires_at == 60_000
    # Asked again to wait: nothing changes but the count.
    again = submit(job, AWAIT, now=3_000)
    assert again.counter == "duplicate" and again.work is None
    assert again.job is not None and again.job.status == "AWAITING_INPUT"
    # The same parameters without await_input_until commence it (same fingerprint, same job).
    commence = dataclasses.replace(AWAIT, await_input_until=None)
    started = submit(job, commence, now=4_000)
    assert started.counter == "commenced" and started.work is not None
    assert started.job is not None and started.job.status == "SUBMITTED"
    assert started.job.attempt == 1 and started.work.inputs == ["acme/inputs/ds-1/0.ndjson"]
    assert started.job.lease_expires_at == 4_000 + POLICY.dispatch_timeout_ms
    # Commenced twice: a duplicate, not a second dispatch.
    twice = submit(started.job, commence, now=5_000)
    assert twice.counter == "duplicate" and twice.work is None
    # Other parameters under the same id: a conflict, the job untouched.
    other = dataclasses.replace(commence, inputs=["acme/inputs/ds-1/9.ndjson"])
    assert submit(job, other).counter == "conflict"


def test_an_awaiting_job_fails_with_input_expired_at_its_deadline_and_can_start_again() -> None:
    job = submit(None, AWAIT).job
    assert job is not None
    assert on_tick(job, now=59_999, policy=POLICY).counter == "unchanged"
    expired = on_tick(job, now=60_000, policy=POLICY)
    assert expired.counter == "input_expired" and expired.work is None
    failed = expired.job
    assert failed is not None and failed.status == "FAILED" and failed.lease_expires_at is None
    assert failed.error is not None and failed.error.code == "INPUT_EXPIRED"
    # Initialised again (new upload deadline): back to waiting, attempt + 1, no work yet.
    restart = submit(failed, dataclasses.replace(AWAIT, await_input_until=200_000), now=70_000)
    assert restart.counter == "resubmitted" and restart.work is None
    assert restart.job is not None and restart.job.status == "AWAITING_INPUT"
    assert restart.job.attempt == 2 and restart.job.lease_expires_at == 200_000
    # A commence after expiry (without a new initialisation) starts nothing.
    late = submit(failed, dataclasses.replace(AWAIT, await_input_until=None), now=70_000)
    assert late.counter == "duplicate" and late.work is None
    assert late.job is not None and late.job.status == "FAILED"


def test_an_awaiting_job_can_be_cancelled_and_ignores_generator_events() -> None:
    job = submit(None, AWAIT).job
    assert job is not None
    assert event(job, "STARTED").counter == "ignored_out_of_order"
    cancelled = event(job, "CANCEL", attempt=0)
    assert cancelled.job is not None and cancelled.job.status == "CANCELLED"


@pytest.mark.parametrize("key", [k for k in load("object_keys") if isinstance(k, str)])
def test_a_hostile_input_key_from_kafka_fails_the_job_with_a_code(key: str) -> None:
    outcome = submit(None, dataclasses.replace(REQ, inputs=[key]))
    assert outcome.counter == "job_rejected" and outcome.work is None
    assert outcome.job is not None and outcome.job.error is not None
    assert outcome.job.error.code == "INVALID_OBJECT_KEY"


def test_inputs_from_kafka_are_deduplicated_and_capped() -> None:
    keys = ["acme/inputs/a.csv", "acme/inputs/a.csv", "acme/inputs/b.csv"]
    outcome = submit(None, dataclasses.replace(REQ, inputs=keys))
    assert outcome.job is not None and outcome.job.inputs == [
        "acme/inputs/a.csv",
        "acme/inputs/b.csv",
    ]
    many = [f"acme/inputs/{n}.csv" for n in range(POLICY.max_inputs + 1)]
    outcome = submit(None, dataclasses.replace(REQ, inputs=many))
    assert outcome.job is not None and outcome.job.error is not None
    assert outcome.job.error.code == "TOO_MANY_INPUTS"


@pytest.mark.parametrize(
    "key",
    ["acme/demo-export/OTHER/1/data.csv", "evil/demo-export/{id}/1/data.csv",
     "acme/demo-export/{id}/2/data.csv", "acme/demo-export/{id}/1/../../x/1/data.csv",
     "acme/demo-export/{id}/1/sub/data.csv", "acme/inputs/secret.csv", "/etc/passwd"],
)  # fmt: skip
def test_a_completion_naming_files_outside_its_attempt_is_ignored(key: str) -> None:
    """Only a producer that writes job-events directly could send one; the job would hand out
    links to those keys. The real attempt's report still lands afterwards."""
    job = event(new_job(), "STARTED").job
    assert job is not None
    forged = JobEvent(kind="COMPLETED", request_id=job.request_id, channel="acme", attempt=1,
                      at=3_000, outputs=[OutputFile(key.format(id=job.request_id), 1, 1, "x")])  # fmt: skip
    assert on_event(job, forged, now=3_000, policy=POLICY).counter == "ignored_foreign_outputs"
    real = event(job, "COMPLETED", outputs=OUT)
    assert real.counter == "succeeded" and real.job is not None


def test_a_redelivered_request_changes_nothing_and_a_new_copy_is_counted() -> None:
    """A writer that restarts before committing reads its requests again: the job remembers
    the last request offset applied, so the same record is not its own duplicate, and a
    failed job is not run again by its own request."""
    created = on_request(None, REQ, partition=2, now=2_000, policy=POLICY, catalog=CATALOG,
                         offset=7)  # fmt: skip
    assert created.job is not None and created.job.request_offset == 7
    again = on_request(created.job, REQ, partition=2, now=2_500, policy=POLICY, catalog=CATALOG,
                       offset=7)  # fmt: skip
    assert again.counter == "replayed" and again.job is None and again.work is None
    failed = created.job.replace(status="FAILED", error=JobError("X", "x"))
    assert on_request(failed, REQ, partition=2, now=2_500, policy=POLICY, catalog=CATALOG,
                      offset=5).counter == "replayed"  # fmt: skip
    copy = on_request(created.job, REQ, partition=2, now=3_000, policy=POLICY, catalog=CATALOG,
                      offset=9)  # fmt: skip
    assert copy.counter == "duplicate" and copy.job is not None
    assert copy.job.duplicates == 1 and copy.job.request_offset == 9
    # Without an offset (a caller that has none) every request is applied, as before.
    assert submit(copy.job).counter == "duplicate"


def _ended(status: str, **kw: Any) -> Job:
    sealed = Sealer(Fernet.generate_key()).seal("k")
    request = dataclasses.replace(REQ, columns=["id"], filters='{"id": 1}',
                                  output={"format": "PARQUET"}, encryption_key=sealed)  # fmt: skip
    job = submit(None, request).job
    assert job is not None
    return job.replace(status=status, **kw)


@pytest.mark.parametrize(
    ("job", "counter"),
    [
        (_ended("FAILED", error=JobError("X", "boom")), "resubmitted"),
        (_ended("CANCELLED"), "resubmitted"),
        (_ended("EXPIRED"), "regenerated"),
        (_ended("SUCCESS", expires_at=1_500), "regenerated"),
    ],
)
def test_a_retry_is_the_jobs_own_request_and_starts_a_new_attempt(job: Job, counter: str) -> None:
    """Its parameters and sealed key give the same fingerprint under the same id (a derived id
    of another dedup window too), so the writer applies it as a repeat with work to do."""
    retry = retry_request(job, now=90_000_000_000)
    outcome = submit(job, retry, now=90_000_000_000)
    assert outcome.counter == counter and outcome.work is not None
    assert outcome.job is not None and outcome.job.request_id == job.request_id
    assert outcome.job.attempt == job.attempt + 1 and outcome.work.sealed_key == job.sealed_key


@pytest.mark.parametrize(
    "job",
    [
        _ended("SUBMITTED"),
        _ended("PROCESSING"),
        _ended("SUCCESS", expires_at=10**12),
        _ended("FAILED", attempt=3),
        _ended("FAILED", error=JobError("INPUT_EXPIRED", "no upload")),
        _ended("FAILED").replace(sealed_key=None),
    ],
)
def test_a_retry_that_would_change_nothing_is_refused_with_the_status(job: Job) -> None:
    with pytest.raises(NotRetryable) as refused:
        retry_request(job, now=2_000)
    assert refused.value.details["status"] == job.status
