"""The seams over library internals refuse to start when an internal is gone or misbehaves."""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import NotLeaderForPartitionError, RequestTimedOutError
from faust import streams
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from intervaltree import IntervalTree  # type: ignore[import-untyped]
from mode import Service

from app.domain.errors import ConfigurationError
from app.health import Health
from app.service import create_app
from app.settings import Settings
from app.stream import aiokafka_compat, faust_compat


def test_the_installed_libraries_pass_their_checks() -> None:
    faust_compat.check_library()
    aiokafka_compat.check_library()


def test_a_faust_without_the_current_event_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(streams, "_current_event")
    with pytest.raises(ConfigurationError, match="_current_event"):
        faust_compat.check_library()


def test_a_faust_whose_commit_no_longer_flushes_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def commit_offsets(self: object, offsets: object, **kwargs: object) -> bool:
        return True  # commits without flushing the producer first

    monkeypatch.setattr(faust_consumer.Consumer, "_commit_offsets", commit_offsets)
    with pytest.raises(ConfigurationError, match="flushes the producer"):
        faust_compat.check_library()


class Event:
    """An event as a table write sees it: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def test_a_write_is_attributed_to_the_event_it_belongs_to_and_only_inside() -> None:
    event = Event(4)
    assert streams.current_event() is None
    with faust_compat.acting_for(event):
        current: object = streams.current_event()
        assert current is event
    assert streams.current_event() is None


def test_the_fetch_wait_is_set_and_read_back_or_refused() -> None:
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=1500))
    aiokafka_compat.cap_fetch_wait(consumer, 10)
    assert consumer._fetcher._fetch_max_wait_ms == 10
    with pytest.raises(ConfigurationError, match="fetch wait"):
        aiokafka_compat.cap_fetch_wait(SimpleNamespace(_fetcher=SimpleNamespace()), 10)


class Coordinator:
    """The two methods of aiokafka's group coordinator that the membership watch wraps."""

    def __init__(self) -> None:
        self.answers = [True, False]
        self.joined: list[tuple[object, ...]] = []

    async def _do_heartbeat(self) -> bool:
        return self.answers.pop(0)

    async def _on_join_complete(self, *args: object) -> None:
        self.joined.append(args)


async def test_membership_is_confirmed_by_a_good_heartbeat_or_a_join_only() -> None:
    now = [100.0]
    coordinator = Coordinator()
    membership = aiokafka_compat.watch_membership(
        SimpleNamespace(_coordinator=coordinator), clock=lambda: now[0]
    )
    now[0] = 105.0
    assert membership.age() == 5.0
    assert await coordinator._do_heartbeat() is True  # the wrapped call answers as before
    now[0] = 108.0
    assert membership.age() == 3.0
    assert await coordinator._do_heartbeat() is False  # a failed heartbeat confirms nothing
    now[0] = 110.0
    assert membership.age() == 5.0
    await coordinator._on_join_complete(7, "member", "roundrobin", b"")
    assert coordinator.joined == [(7, "member", "roundrobin", b"")]
    assert membership.age() == 0.0


def test_a_consumer_whose_coordinator_cannot_be_watched_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="coordinator"):
        aiokafka_compat.watch_membership(SimpleNamespace(_coordinator=None))


def test_an_aiokafka_whose_heartbeat_routine_changed_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    async def heartbeat_routine(self: object) -> None:
        return None  # heartbeats some other way

    monkeypatch.setattr(GroupCoordinator, "_heartbeat_routine", heartbeat_routine)
    with pytest.raises(ConfigurationError, match="_do_heartbeat"):
        aiokafka_compat.check_library()


class Message:
    acked = False


def test_an_abandoned_event_is_no_longer_waited_for_and_never_acknowledged() -> None:
    kept, dropped = Message(), Message()
    app: Any = SimpleNamespace(consumer=SimpleNamespace(_unacked_messages={kept, dropped}))
    faust_compat.abandon(app, [SimpleNamespace(message=dropped)])
    assert app.consumer._unacked_messages == {kept}
    assert dropped.acked is False


class Fetcher:
    """A fetcher whose offset lookups fail as a moved leader's answer does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def _proc_offset_request(self, node_id: int, topic_data: object) -> object:
        raise self.error


class Client:
    def __init__(self) -> None:
        self.refreshes = 0

    def force_metadata_update(self) -> None:
        self.refreshes += 1


async def test_an_offset_lookup_at_a_moved_leader_refreshes_the_metadata() -> None:
    client = Client()
    consumer: Any = SimpleNamespace(_fetcher=Fetcher(NotLeaderForPartitionError()), _client=client)
    aiokafka_compat.refresh_metadata_on_offset_errors(consumer)
    with pytest.raises(NotLeaderForPartitionError):  # the fetcher still waits and retries
        await consumer._fetcher._proc_offset_request(2, {})
    assert client.refreshes == 1
    consumer._fetcher.error = RequestTimedOutError()  # not a metadata error: no refresh
    with pytest.raises(RequestTimedOutError):
        await consumer._fetcher._proc_offset_request(2, {})
    assert client.refreshes == 1


def test_a_consumer_without_the_offset_lookup_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="offset lookup"):
        aiokafka_compat.refresh_metadata_on_offset_errors(
            SimpleNamespace(_fetcher=SimpleNamespace(), _client=Client())
        )


def bare_consumer() -> Any:
    """The writer's Faust consumer with only the bookkeeping its commits read (not started:
    a started one would open its thread and sockets)."""
    consumer: Any = faust_compat.Consumer.__new__(faust_compat.Consumer)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._gap = defaultdict(IntervalTree)
    return consumer


def test_the_commit_waits_for_an_unacknowledged_message_at_the_committed_offset() -> None:
    assert faust_compat.Transport.Consumer is faust_compat.Consumer
    consumer = bare_consumer()
    tp = TP("exhaust.requests", 2)

    def acked(*offsets: int, committed: int) -> None:
        consumer._acked[tp] = list(offsets)
        consumer._acked_index[tp] = set(offsets)
        consumer._committed_offset[tp] = committed

    # 133 was committed (next to read: 134); 134 was skipped, 135 and 136 processed.
    acked(135, 136, committed=134)
    assert faust_consumer.Consumer._new_offset(consumer, tp) == 137  # Faust: 134 lost
    acked(135, 136, committed=134)
    assert consumer._new_offset(tp) is None  # held until 134 is processed
    acked(134, 135, 136, committed=134)
    assert consumer._new_offset(tp) == 137


async def test_a_jump_in_the_offsets_read_counts_nothing_as_acknowledged() -> None:
    consumer = bare_consumer()
    tp = TP("exhaust.requests", 2)
    consumer._committed_offset[tp] = 128
    await consumer._add_gap(tp, 128, 134)  # a seek landed while a fetched batch was handed out
    consumer._acked[tp] = [135]
    consumer._acked_index[tp] = {135}
    assert consumer._new_offset(tp) is None
    await faust_consumer.Consumer._add_gap(consumer, tp, 128, 134)  # Faust's own
    assert faust_consumer.Consumer._new_offset(consumer, tp) == 136  # 128..134 never processed


class ConsumerThread:
    """The consumer thread's seeks, recorded (the committed offsets are given)."""

    def __init__(self, committed: dict[TP, int]) -> None:
        self.committed = committed
        self.seeks: list[tuple[TP, int]] = []
        self.in_thread = False

    def assignment(self) -> set[TP]:
        return set(self.committed)

    def seek(self, tp: TP, offset: int) -> None:
        # aiokafka's fetcher is not safe across threads: a seek runs in the thread's own turn.
        assert self.in_thread, "a seek made outside the consumer's thread"
        self.seeks.append((tp, offset))

    async def call_thread(self, fun: Callable[..., Any], *args: Any) -> Any:
        self.in_thread = True
        try:
            result = fun(*args)
            return await result if inspect.isawaitable(result) else result
        finally:
            self.in_thread = False

    async def seek_to_committed(self) -> dict[TP, int]:
        self.seeks.extend(self.committed.items())
        return self.committed


def fetching(monkeypatch: pytest.MonkeyPatch, *batches: list[tuple[TP, int]]) -> None:
    """Make ``batches`` the consumer's next fetches, handed out one message at a time as
    Faust's ``getmany`` does (its scheduling across partitions is its own)."""
    pending = list(batches)

    async def getmany(self: Any, timeout: float) -> Any:
        for tp, offset in pending.pop(0):
            yield tp, SimpleNamespace(tp=tp, topic=tp.topic, offset=offset)

    monkeypatch.setattr(faust_consumer.Consumer, "getmany", getmany)


def seeking_consumer(cls: Any, committed: dict[TP, int]) -> Any:
    """A bare consumer of ``cls`` (Faust's or ours) whose thread records its seeks; every
    topic is a stream's source (acknowledged)."""
    consumer: Any = cls.__new__(cls)
    consumer.log = SimpleNamespace(dev=lambda *args: None)
    consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    consumer._read_offset = defaultdict(lambda: None)
    consumer._committed_offset = defaultdict(lambda: None, committed)
    consumer._thread = ConsumerThread(committed)
    consumer._next, consumer._jumps = {}, {}
    consumer._seeks, consumer._sought = 0, {}
    return consumer


async def hand_out(consumer: Any, at: Callable[[TP, int], Awaitable[None]] | None = None) -> Any:
    """One ``getmany``: what it handed out; ``at`` runs after each message."""
    handed_out = []
    async for tp, message in consumer.getmany(1.0):
        handed_out.append((tp, message.offset))
        if at is not None:
            await at(tp, message.offset)
    return handed_out


async def test_a_batch_fetched_before_a_seek_is_not_handed_out_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The end of a rebalance's recovery seeks every partition to its committed offset (408)
    while the batch 408..422 is being handed out: the rest of it must not follow."""
    moved, other = TP("exhaust.requests", 4), TP("exhaust.requests", 2)
    batch = [(moved, offset) for offset in range(408, 423)] + [(other, 100), (other, 101)]
    committed = {moved: 408, other: 100}

    async def recovery_ends(tp: TP, offset: int) -> None:
        if (tp, offset) == (moved, 416):
            await consumer.seek_to_committed()

    # Faust's own consumer goes on with 417..422, and its read offset (422) then drops
    # 408..421 when they are fetched again: the partition is read out of order.
    fetching(monkeypatch, batch)
    consumer = seeking_consumer(faust_aiokafka.Consumer, committed)
    assert [o for tp, o in await hand_out(consumer, recovery_ends) if tp == moved] == list(
        range(408, 423)
    )
    fetching(monkeypatch, batch, [(moved, o) for o in range(408, 425)])
    consumer = seeking_consumer(faust_compat.Consumer, committed)
    handed_out = await hand_out(consumer, recovery_ends)
    assert [o for tp, o in handed_out if tp == moved] == list(range(408, 417))
    assert [o for tp, o in handed_out if tp == other] == [100, 101]  # where it was sought
    assert consumer._thread.seeks[-1] == (moved, 408)  # fetched again from there
    assert consumer._read_offset[moved] == 408  # and Faust reads it again
    # The writer's edge learns where each partition was last sought (partition_order).
    seek, at = consumer.sought(moved)
    assert at == 408 and consumer.sought(other)[1] == 100
    await consumer.seek(moved, 408)
    assert consumer.sought(moved) == (seek + 1, 408)  # every seek tells a new one
    assert await hand_out(consumer) == [(moved, o) for o in range(408, 425)]


async def test_a_jump_seeks_back_and_is_accepted_only_when_the_log_holds_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tp = TP("exhaust.job-events", 1)
    consumer = seeking_consumer(faust_compat.Consumer, {tp: 706})
    stale = [(tp, 730), (tp, 731)]
    gone = [(tp, 900), (tp, 901)]  # retention deleted 706..899
    fetching(monkeypatch, [(tp, 706)], stale, [(tp, 707), (tp, 708)], gone, gone, gone, gone)
    assert await hand_out(consumer) == [(tp, 706)]
    assert await hand_out(consumer) == []  # 707 expected: sought back, once
    assert consumer._thread.seeks == [(tp, 707)]
    assert await hand_out(consumer) == [(tp, 707), (tp, 708)]
    for _ in range(faust_compat.JUMP_RESEEKS):
        assert await hand_out(consumer) == []
    assert consumer._thread.seeks[1:] == [(tp, 709)] * faust_compat.JUMP_RESEEKS
    assert await hand_out(consumer) == gone  # the same jump each time: accepted


async def test_a_revoked_partition_is_expected_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    tp = TP("exhaust.requests", 3)
    consumer = seeking_consumer(faust_compat.Consumer, {tp: 50})
    fetching(monkeypatch, [(tp, 50)], [(tp, 80)])
    assert await hand_out(consumer) == [(tp, 50)]
    consumer._next.pop(tp)  # what the revocation does (Faust's own part needs a running app)
    assert await hand_out(consumer) == [(tp, 80)]  # another worker went on meanwhile


class _Fetcher(Service):
    """What :meth:`faust_compat.Consumer._deliver` needs of the consumer: ``wait_first``
    (mode's) and the flow's suspension."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()
        self.raced = 0

    async def _deliver(self, callback: Any, message: Any) -> None:
        await faust_compat.Consumer._deliver(self, callback, message)  # type: ignore[arg-type]

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        self.raced += 1
        return await super().wait_first(*coros, timeout=timeout)


async def test_a_delivery_that_completes_at_once_takes_no_task_and_no_race() -> None:
    fetcher, delivered = _Fetcher(), []

    async def on_message(message: str) -> None:
        delivered.append(message)

    tasks = len(asyncio.all_tasks())
    for message in ("a", "b", "c"):
        await fetcher._deliver(on_message, message)
        assert len(asyncio.all_tasks()) == tasks  # nothing scheduled behind it
    assert delivered == ["a", "b", "c"] and fetcher.raced == 0


async def test_a_delivery_that_waits_is_carried_on_and_raced_against_a_suspension() -> None:
    fetcher, entered, room, delivered = _Fetcher(), asyncio.Event(), asyncio.Event(), []

    async def on_message(message: str) -> None:
        entered.set()
        await room.wait()  # the stream's buffer is full
        await asyncio.sleep(0)  # and a second suspension, to be carried on as well
        delivered.append(message)

    delivery = asyncio.ensure_future(fetcher._deliver(on_message, "a"))
    await entered.wait()
    assert not delivery.done() and delivered == []
    room.set()
    await asyncio.wait_for(delivery, 5)
    assert delivered == ["a"] and fetcher.raced == 1


async def test_a_delivery_waiting_when_the_flow_is_suspended_is_given_up() -> None:
    fetcher, entered, room, given_up = _Fetcher(), asyncio.Event(), asyncio.Event(), []

    async def on_message(message: str) -> None:
        entered.set()
        try:
            await room.wait()
        except asyncio.CancelledError:
            given_up.append(message)
            raise

    delivery = asyncio.ensure_future(fetcher._deliver(on_message, "a"))
    await entered.wait()
    fetcher.suspend_flow.set()  # a rebalance began: Faust gives the hand-over up
    await asyncio.wait_for(delivery, 5)
    assert given_up == ["a"]


async def test_a_delivery_that_fails_after_waiting_raises_in_the_fetch_loop() -> None:
    fetcher, entered, room = _Fetcher(), asyncio.Event(), asyncio.Event()

    async def on_message(message: str) -> None:
        entered.set()
        await room.wait()
        raise ValueError(f"cannot decode {message}")

    delivery = asyncio.ensure_future(fetcher._deliver(on_message, "a"))
    await entered.wait()
    room.set()
    with pytest.raises(ValueError, match="cannot decode a"):
        await asyncio.wait_for(delivery, 5)


def test_a_faust_whose_fetch_loop_changed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def drain_messages(self: object, fetcher: object) -> None:
        await self.wait_first(self.getmany(timeout=1.0))  # type: ignore[attr-defined]

    monkeypatch.setattr(faust_consumer.Consumer, "_drain_messages", drain_messages)
    with pytest.raises(ConfigurationError, match="fetch loop"):
        faust_compat.check_library()


def test_the_writers_in_order_hand_out_covers_its_sources_not_the_tables_changelogs(
    tmp_path: Path,
) -> None:
    """The consumer hands out in order (and seeks back over a jump) the topics Faust acks: the
    sources. A changelog is compacted, so its offsets jump wherever the cleaner removed a
    record; acked, a rebuild of the tables at start-up sought back three times at every one
    (and Faust logged an error a minute for each of its partitions once the writer had run
    five minutes, waiting for a stream that never reads it)."""
    settings = Settings(state_dir=tmp_path, table_store="memory://")
    app, pipeline = create_app(settings, Health(), role="processor")
    changelogs = {
        t.changelog_topic.get_topic_name(): t.changelog_topic for t in app.tables.values()
    }
    assert set(changelogs) == {settings.topic("jobs"), settings.topic("datasets")}
    assert [name for name, topic in changelogs.items() if topic.acks] == []
    assert pipeline.requests.acks and pipeline.job_events.acks


class _ClosingConsumer:
    """aiokafka's consumer as it stops with its brokers gone: a fetch cancelled mid-retry
    re-raises the cancellation, or the stop never ends."""

    def __init__(self, hangs: bool = False) -> None:
        self.hangs = hangs
        self.stopping = asyncio.Event()

    async def stop(self) -> None:
        self.stopping.set()
        if self.hangs:
            await asyncio.Event().wait()
        raise asyncio.CancelledError  # what its fetcher's close re-raises


async def _thread_stop(consumer: _ClosingConsumer) -> None:
    thread = SimpleNamespace(_method_queue=None, _consumer=consumer)
    await faust_compat.ConsumerThread.on_thread_stop(thread)  # type: ignore[arg-type]


async def test_the_consumer_threads_stop_ends_when_aiokafka_reraises_a_cancelled_fetch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="exhaust.faust")
    await asyncio.wait_for(_thread_stop(_ClosingConsumer()), 5)  # Faust's raised here
    assert "closed with a fetch cancelled mid-retry" in caplog.text


async def test_the_consumer_threads_stop_is_bounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(faust_compat, "CONSUMER_STOP_SECONDS", 0.05)
    await asyncio.wait_for(_thread_stop(_ClosingConsumer(hangs=True)), 5)
    assert "did not close within" in caplog.text


async def test_the_consumer_threads_stop_still_yields_to_its_own_cancellation() -> None:
    consumer = _ClosingConsumer(hangs=True)
    stopping = asyncio.ensure_future(_thread_stop(consumer))
    await consumer.stopping.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping


def test_a_faust_whose_consumer_thread_stops_otherwise_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def on_thread_stop(self: Any) -> None:
        await self._consumer.stop()
        await self._consumer.close()

    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "on_thread_stop", on_thread_stop)
    with pytest.raises(ConfigurationError, match="on_thread_stop"):
        faust_compat.check_library()
