"""The writer's edge over a real Faust stream (no broker): how events are gathered into batches
and acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

import faust
from faust.events import Event
from faust.types.tuples import Message

from app.metrics import Metrics
from app.stream.agents import Pipeline

GENERATION = 2


class _Fence:
    """Admits every batch but the first ``refusals``."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals

    async def admit(self) -> bool:
        self.refusals -= 1
        return self.refusals < 0


class _Metrics(Metrics):
    """Metrics that signal once ``abandoned`` events were abandoned."""

    def __init__(self, abandoned: int = 0) -> None:
        super().__init__()
        self.left = abandoned
        self.all_abandoned = asyncio.Event()

    def count(self, name: Any, n: int = 1) -> None:
        super().count(name, n)
        if name == "writer_events_abandoned":
            self.left -= n
            if self.left <= 0:
                self.all_abandoned.set()


def _edge(app: faust.App, batch_max: int = 100, fence: Any = None, metrics: Any = None) -> Any:
    """What :meth:`Pipeline.batches` reads of its pipeline."""

    async def guard() -> None:
        return None

    return SimpleNamespace(
        app=app,
        guard=guard,
        fence=fence or _Fence(),
        metrics=metrics or Metrics(),
        batch_max=batch_max,
    )


async def _stream() -> tuple[faust.App, Any]:
    # The transport is created lazily and this stream never fetches: nothing connects.
    loop = asyncio.get_running_loop()  # else the consumer the stream reads makes a loop of its own
    app = faust.App("edge-test", broker="kafka://127.0.0.1:1", loop=loop)
    app.flow_control.resume()
    app.consumer_generation_id = GENERATION
    return app, app.stream(app.channel())


def _buffer(app: faust.App, stream: Any, offset: int, generation: int = GENERATION) -> Event:
    message = Message(
        "exhaust.requests", 0, offset, 0.0, 0, None, b"k", b"v", None, None,
        generation_id=generation,
    )  # fmt: skip
    event = Event(app, b"k", b"v", None, message)
    stream.channel.queue.put_nowait(event)
    return event


async def _run(
    edge: Any,
    stream: Any,
    batches: list[list[int]],
    expected: int,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> None:
    decided = asyncio.Event()

    async def handle(events: Sequence[Any]) -> None:
        batches.append([event.message.offset for event in events])
        if sum(map(len, batches)) >= expected:
            decided.set()

    agent = asyncio.ensure_future(Pipeline.batches(edge, "requests", stream, handle))
    try:
        if meanwhile is not None:
            await asyncio.wait_for(meanwhile(), 5)
        await asyncio.wait_for(decided.wait(), 5)
    finally:
        agent.cancel()
        await asyncio.wait({agent})
        edge.app.consumer._thread.thread_loop.close()  # made for a thread that never started


async def test_what_is_buffered_is_decided_as_one_batch_and_then_acked() -> None:
    app, stream = await _stream()
    events = [_buffer(app, stream, offset) for offset in range(1, 6)]
    batches: list[list[int]] = []
    await _run(_edge(app), stream, batches, expected=5)
    assert batches == [[1, 2, 3, 4, 5]]
    assert all(event.message.acked for event in events)


async def test_a_batch_is_bounded_by_its_maximum() -> None:
    app, stream = await _stream()
    for offset in range(1, 6):
        _buffer(app, stream, offset)
    batches: list[list[int]] = []
    await _run(_edge(app, batch_max=2), stream, batches, expected=5)
    assert batches == [[1, 2], [3, 4], [5]]


async def test_a_batch_is_decided_when_the_rest_of_the_buffer_is_skipped() -> None:
    """After a rebalance the stream skips buffered events of the previous generation and then
    waits: the batch before them must be decided and acked, not left waiting behind them (a
    stopping worker would wait for its acknowledgements)."""
    app, stream = await _stream()
    current = _buffer(app, stream, 1)
    stale = [_buffer(app, stream, offset, GENERATION - 1) for offset in (2, 3, 4, 5)]
    batches: list[list[int]] = []
    await _run(_edge(app), stream, batches, expected=1)
    assert batches == [[1]]
    assert current.message.acked
    # Skipped, not acknowledged: their offsets are for the partition's next reader.
    assert not any(event.message.acked for event in stale)


async def test_after_an_abandoned_batch_its_generation_is_abandoned_until_read_again() -> None:
    """A batch the fence abandons leaves its events for the partition's next reading; a later
    event of the same generation decided meanwhile would come before them (a repeat decided
    before its request, which would then count as a redelivery, not a duplicate)."""
    app, stream = await _stream()
    held = [_buffer(app, stream, offset) for offset in (1, 2, 3)]
    metrics = _Metrics(abandoned=3)
    edge = _edge(app, batch_max=1, fence=_Fence(refusals=1), metrics=metrics)

    async def rebalance() -> None:
        await metrics.all_abandoned.wait()
        app.consumer_generation_id = GENERATION + 1  # read again from the committed offset
        for offset in (1, 2, 3):
            _buffer(app, stream, offset, GENERATION + 1)

    batches: list[list[int]] = []
    await _run(edge, stream, batches, expected=3, meanwhile=rebalance)
    assert batches == [[1], [2], [3]]  # in order, each once, after the rebalance
    assert not any(event.message.acked for event in held)


class _WatchedConsumer:
    """The consumer calls the writer's watchdog makes, recorded."""

    def __init__(self, partitions: list[Any]) -> None:
        self.partitions = partitions
        self.sought: list[tuple[Any, int]] = []

    def assignment(self) -> set[Any]:
        return set(self.partitions)

    def resume_partitions(self, partitions: list[Any]) -> None:
        pass

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))


async def test_the_watchdog_takes_no_rebalance_for_a_stall() -> None:
    """While a rebalance and its table recovery run nothing is consumed; a processor whose
    recovery outlasted two stall windows exited as stalled, and its exit began another."""
    from aiokafka.structs import TopicPartition

    from app.stream.watchdog import StallDetector

    tp = TopicPartition("requests", 0)
    consumer = _WatchedConsumer([tp])
    crashed: list[BaseException] = []

    async def crash(error: BaseException) -> None:
        crashed.append(error)

    class Probe:
        async def group_offsets(self, *_: Any) -> tuple[dict[Any, int], dict[Any, int]]:
            return {("requests", 0): 5}, {("requests", 0): 9}  # lag, and no progress

    async def probe() -> Probe:
        return Probe()

    app = SimpleNamespace(rebalancing=True, consumer=consumer, crash=crash)
    edge = SimpleNamespace(
        app=app, requests_topic="requests", job_events=SimpleNamespace(get_topic_name=lambda: "e"),
        _probe=probe, settings=SimpleNamespace(consumer_group="g", topic_partitions=1,
                                               watchdog_stall_seconds=0.0),
        stalls=StallDetector(0.0), metrics=Metrics(), health=None,
    )  # fmt: skip
    for _ in range(3):  # a window of 0 s: every round would be a stall, then hopeless
        await Pipeline._watch(edge)  # type: ignore[arg-type]
    assert consumer.sought == [] and crashed == []
    app.rebalancing = False
    await Pipeline._watch(edge)  # type: ignore[arg-type]
    assert consumer.sought == []  # its clock starts now
    await Pipeline._watch(edge)  # type: ignore[arg-type]
    assert consumer.sought == [(tp, 5)]
