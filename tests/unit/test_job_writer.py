"""The job writer's decisions, driven directly: batches in, effects out, no broker."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet

from app.catalog.loader import default_catalog
from app.domain.model import DatasetRequest, EventKind, Job, JobEvent, is_sealed, job_key
from app.domain.state_machine import JobPolicy
from app.sealing import Sealer
from app.stream.job_writer import REDACTED, Effects, Input, JobWriter
from app.stream.work_queue import QueueSnapshot, work_partition

POLICY = JobPolicy(max_attempts=3, lease_ms=10_000, dispatch_timeout_ms=5_000,
                   retention_ms=100_000, dedup_window_seconds=86400)  # fmt: skip
CATALOG = default_catalog()
SEALER = Sealer(Fernet.generate_key())


def request(tag: str = "t1", request_id: str | None = "r1", **kw: object) -> DatasetRequest:
    fields: dict[str, object] = {"tag": tag, "dataset": "noop", "channel": "acme",
                                 "requested_by": "u1", "submitted_at": 1_000, "config": "{}",
                                 "request_id": request_id, **kw}  # fmt: skip
    return DatasetRequest(**fields)  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: int = 2_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Table(dict[str, Job]):
    """The jobs table as the edge keeps it: writes applied in order (None deletes)."""

    def apply(self, effects: Effects) -> None:
        for key, job, _ in effects.writes:
            if job is None:
                self.pop(key, None)
            else:
                self[key] = job

    def read(self, key: str, source: object) -> Job | None:
        """A read for the event ``source``; remembered, to check which event each is for."""
        self.reads.append((key, source))
        return self.get(key)

    @property
    def reads(self) -> list[tuple[str, object]]:
        if not hasattr(self, "_reads"):
            self._reads: list[tuple[str, object]] = []
        return self._reads


def writer(clock: Clock | None = None, tags: dict[tuple[str, str], str] | None = None) -> JobWriter:
    known = tags or {}
    return JobWriter(POLICY, CATALOG, SEALER, lambda channel, rid: known.get((channel, rid)),
                     partitions=6, tick_seconds=1.0, expiry_sweep_seconds=60.0, index_size=1000,
                     clock=clock or Clock())  # fmt: skip


def requests(*items: DatasetRequest, partition: int = 2) -> list[Input]:
    return [Input(partition, request=r, source=f"msg-{i}") for i, r in enumerate(items)]


def test_a_new_request_writes_a_submitted_job_then_sends_its_work() -> None:
    effects = writer().decide(requests(request()), Table().read)
    [(key, job, _)] = effects.writes
    assert key == job_key("acme", "r1") and job is not None and job.status == "SUBMITTED"
    assert [w.key for w in effects.work] == [key]
    assert effects.transitions == ["job_created"]
    assert effects.submit_latencies_ms == [1_000]
    assert effects.dead_letters == []


def test_a_cancel_of_a_dispatched_job_sends_a_stop_for_its_attempt() -> None:
    table = Table()
    table.apply(writer().decide(requests(request()), table.read))
    cancel = JobEvent(kind="CANCEL", request_id="r1", channel="acme", attempt=0, at=2_000)
    effects = writer().decide([Input(2, event=cancel)], table.read)
    assert effects.transitions == ["cancelled"]
    assert [(s.key, s.attempt) for s in effects.stops] == [(job_key("acme", "r1"), 1)]
    assert effects.work == []


def test_a_batch_reads_its_own_earlier_writes() -> None:
    table = Table()
    batch = requests(request(), request())  # the same request twice in one batch
    effects = writer().decide(batch, table.read)
    assert effects.transitions == ["job_created", "duplicate"]
    assert len(effects.work) == 1, "a duplicate in the same batch is never dispatched twice"
    table.apply(effects)
    assert table[job_key("acme", "r1")].duplicates == 1


def test_a_report_after_its_request_in_the_same_batch_applies_to_the_new_job() -> None:
    started = JobEvent(kind="STARTED", request_id="r1", channel="acme", attempt=1, at=2_500)
    batch = [*requests(request()), Input(2, event=started)]
    table = Table()
    table.apply(writer().decide(batch, table.read))
    assert table[job_key("acme", "r1")].status == "PROCESSING"


def test_deciding_a_batch_equals_deciding_its_events_one_by_one() -> None:
    events: list[Input] = [
        *requests(request(request_id="a"), request(request_id="b"), request(request_id="a")),
        Input(2, event=JobEvent(kind="STARTED", request_id="a", channel="acme", attempt=1, at=1)),
        Input(2, event=JobEvent(kind="CANCEL", request_id="b", channel="acme", attempt=0, at=1)),
        *requests(request(request_id="b"), request(tag="t2", request_id="c")),
    ]
    together, alone = Table(), Table()
    batched = writer().decide(events, together.read)
    together.apply(batched)
    single = writer()
    transitions = []
    for item in events:
        effects = single.decide([item], alone.read)
        alone.apply(effects)
        transitions += effects.transitions
    assert together == alone
    assert batched.transitions == transitions


def test_a_client_id_held_by_another_tag_is_dead_lettered_and_nothing_written() -> None:
    effects = writer(tags={("acme", "r1"): "other"}).decide(requests(request()), Table().read)
    assert effects.writes == [] and effects.work == []
    [letter] = effects.dead_letters
    assert letter.error.code == "REQUEST_CONFLICT" and letter.source == "msg-0"


def test_another_channels_job_of_the_same_id_is_not_this_one() -> None:
    table = Table()
    table.apply(writer().decide(requests(request()), table.read))
    other = request(channel="globex")
    effects = writer().decide(requests(other), table.read)
    assert effects.transitions == ["job_created"]
    assert effects.writes[0][0] == job_key("globex", "r1")


def test_a_clear_key_is_sealed_and_a_dead_letter_carries_the_request_without_it() -> None:
    table = Table()
    table.apply(writer().decide(requests(request(encryption_key="s3cret-key!")), table.read))
    job = table[job_key("acme", "r1")]
    assert job.sealed_key is not None and is_sealed(job.sealed_key)
    assert "s3cret" not in job.sealed_key
    conflicting = request(encryption_key="s3cret-key!", config='{"x": 1}')
    effects = writer().decide(requests(conflicting), table.read)
    [letter] = effects.dead_letters
    assert letter.redacted is not None and letter.redacted.encryption_key == REDACTED


def test_a_legacy_record_is_moved_to_its_key_and_the_old_key_deleted() -> None:
    table = Table()
    [(_, job, _)] = writer().decide(requests(request()), table.read).writes
    assert job is not None
    table["r1"] = job  # as written before ids were per channel
    started = JobEvent(kind="STARTED", request_id="r1", channel="acme", attempt=1, at=2_500)
    effects = writer().decide([Input(2, event=started)], table.read)
    assert [(k, j is None) for k, j, _ in effects.writes] == [("acme/r1", False), ("r1", True)]
    assert effects.legacy_keys_migrated == 1


def ticked(w: JobWriter, table: Table, now: int, snapshot: Sequence[tuple[str, Job]] | None = None,
           ) -> Effects:  # fmt: skip
    effects = w.tick(2, now, table.read, snapshot)
    table.apply(effects)
    return effects


def test_a_submitted_job_past_its_deadline_is_dispatched_again_unless_queued() -> None:
    clock, table = Clock(), Table()
    w = writer(clock)
    created = w.decide(requests(request()), table.read)
    table.apply(created)
    key = job_key("acme", "r1")
    first = ticked(w, table, clock.now, list(table.items()))  # the first tick sweeps
    assert first.writes == []
    clock.now += POLICY.dispatch_timeout_ms + 1
    # The generators' queue says the item still waits behind them: deferred, nothing written.
    part = work_partition(key, 6)
    w.dispatched(key, 1, part, offset=7)
    w.queue = QueueSnapshot(taken_at=clock.now, committed={part: 3}, end={part: 9})
    deferred = ticked(w, table, clock.now)
    assert deferred.transitions == ["dispatch_deferred"] and deferred.work == []
    # Then the generators moved past it: the work item was lost; sent again, same attempt.
    clock.now += POLICY.dispatch_timeout_ms + 1
    w.queue = QueueSnapshot(taken_at=clock.now, committed={part: 8}, end={part: 9})
    again = ticked(w, table, clock.now)
    assert again.transitions == ["redispatched"]
    assert [(x.key, x.attempt) for x in again.work] == [(key, 1)]


def test_a_sweep_expires_old_success_jobs_from_the_snapshot() -> None:
    clock, table = Clock(), Table()
    w = writer(clock)
    table.apply(w.decide(requests(request()), table.read))
    kinds: tuple[EventKind, ...] = ("STARTED", "COMPLETED")
    for kind in kinds:
        report = JobEvent(kind=kind, request_id="r1", channel="acme", attempt=1, at=clock.now)
        table.apply(w.decide([Input(2, event=report)], table.read))
    assert table["acme/r1"].status == "SUCCESS"
    clock.now += POLICY.retention_ms + 1
    assert w.needs_sweep(2, clock.now)
    effects = ticked(w, table, clock.now, list(table.items()))
    after = table["acme/r1"]
    assert effects.transitions == ["expired"] and after.status == "EXPIRED"


def test_each_decision_reads_the_table_for_its_own_event() -> None:
    """The edge's store is partitioned by event: a read names the event it is for, so a batch
    of several partitions reads each job where that job lives, not in the store of the
    batch's last event."""
    table = Table()
    table.apply(writer().decide(requests(request()), table.read))
    table.reads.clear()
    repeat = Input(2, request=request(), source="repeat-in-partition-2")
    other = Input(5, request=request(tag="t9", request_id="r9"), source="new-in-partition-5")
    effects = writer().decide([repeat, other], table.read)
    assert ("acme/r1", "repeat-in-partition-2") in table.reads
    assert all(source != "new-in-partition-5" for key, source in table.reads if key == "acme/r1")
    assert effects.transitions == ["duplicate", "job_created"]
