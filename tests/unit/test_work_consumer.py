"""The work consumer: in-order commits, and a prefetch that keeps the generators busy."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from app.domain.model import WorkItem
from app.generator import Stop
from app.metrics import Metrics
from app.settings import Settings
from app.stream.avro import registry
from app.stream.work_consumer import PartitionProgress, WorkConsumer
from app.stream.work_queue import DISCARD_HEADER, STOP_HEADER


def test_commits_only_past_a_contiguous_finished_prefix() -> None:
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.take(offset)
    assert progress.finish(12) is None  # 10 and 11 still running
    assert progress.finish(10) == 11
    assert progress.finish(11) == 13  # 10, 11, 12 done: commit up to 13
    assert progress.finish(13) == 14
    assert progress.pending == {}


def test_a_crash_before_commit_replays_exactly_the_unfinished_items() -> None:
    progress = PartitionProgress()
    for offset in range(5):
        progress.take(offset)
    committed = None
    for offset in (0, 1, 3):
        committed = progress.finish(offset) or committed
    assert committed == 2  # restart resumes at 2: items 2 and 4 (and 3, harmlessly) rerun


# --- prefetch: the next item starts the moment a generation ends ------------------------------


class Generations:
    """A generator whose runs end when the test says so."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.release: dict[str, asyncio.Event] = {}
        self.stops: dict[str, Stop] = {}
        self.discarded: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.discards_end = asyncio.Event()

    async def run(self, item: WorkItem, stop: Stop) -> None:
        self.release[item.request_id] = asyncio.Event()
        self.stops[item.request_id] = stop
        await self.started.put(item.request_id)
        released = asyncio.ensure_future(self.release[item.request_id].wait())
        stopped = asyncio.ensure_future(stop.event.wait())
        await asyncio.wait({released, stopped}, return_when=asyncio.FIRST_COMPLETED)
        released.cancel()
        stopped.cancel()

    async def discard(self, item: WorkItem) -> int:
        await self.discarded.put((item.request_id, item.attempt))
        await self.discards_end.wait()
        return 1


def message(
    offset: int, request_id: str | None = None, stop: bool = False, discard: bool = False
) -> SimpleNamespace:
    item = WorkItem(request_id=request_id or f"r{offset}", attempt=1, tag="t", dataset="noop",
                    channel="acme", requested_by="u", config="{}", submitted_at=0)  # fmt: skip
    headers = [STOP_HEADER] if stop else [DISCARD_HEADER] if discard else []
    value = registry().encode("WorkItem", item.to_record())
    return SimpleNamespace(offset=offset, value=value, headers=headers)


async def consumer(generations: Generations) -> WorkConsumer:
    async def no_dead_letters(message: Any, error: Any) -> None:
        raise AssertionError(error)

    settings = Settings(generator_concurrency=1, generator_prefetch=3)
    return WorkConsumer(settings, generations, no_dead_letters, Metrics())  # type: ignore[arg-type]


async def three_taken() -> tuple[Generations, WorkConsumer, TopicPartition]:
    """A consumer that took r0..r2 of one partition (one slot: r0 runs, r1 and r2 wait)."""
    generations = Generations()
    work = await consumer(generations)
    tp = TopicPartition("work", 0)
    for offset in range(3):
        await work._take(tp, message(offset))
    assert await asyncio.wait_for(generations.started.get(), 1) == "r0"
    return generations, work, tp


async def test_a_prefetched_item_starts_when_the_running_one_ends_without_a_fetch() -> None:
    generations, work, tp = await three_taken()
    assert [w[1] for w in work.waiting] == [1, 2] and len(work.running) == 1
    generations.release["r0"].set()
    # No poll of the broker in between: the end of r0 starts r1.
    assert await asyncio.wait_for(generations.started.get(), 1) == "r1"
    assert work.to_commit == {tp: 1}  # r0 done; r1 and r2 not, so nothing past them
    generations.release["r1"].set()
    assert await asyncio.wait_for(generations.started.get(), 1) == "r2"
    assert work.to_commit == {tp: 2}


async def test_prefetched_items_of_a_revoked_partition_are_dropped_and_never_committed() -> None:
    generations = Generations()
    work = await consumer(generations)
    mine, theirs = TopicPartition("work", 0), TopicPartition("work", 1)
    await work._take(mine, message(0))
    await work._take(theirs, message(5))
    await work._take(mine, message(1))
    assert await asyncio.wait_for(generations.started.get(), 1) == "r0"
    work.drop_waiting({theirs})
    assert [(w[0], w[1]) for w in work.waiting] == [(mine, 1)]
    work.drop_waiting()
    assert list(work.waiting) == []
    generations.release["r0"].set()
    await asyncio.wait_for(asyncio.gather(*work.running), 1)
    assert work.to_commit == {mine: 1}, "only the finished item is committed"


async def test_a_stop_drops_a_prefetched_attempt_and_stops_a_running_one() -> None:
    generations, work, tp = await three_taken()
    await work._take(tp, message(3, "r1", stop=True))  # r1 waits in the prefetch: dropped
    assert [w[1] for w in work.waiting] == [2]
    await work._take(tp, message(4, "r0", stop=True))  # r0 runs: told to stop
    assert generations.stops["r0"].is_set()
    assert await asyncio.wait_for(generations.started.get(), 1) == "r2"
    generations.release["r2"].set()
    await asyncio.wait_for(asyncio.gather(*work.running), 1)
    assert work.to_commit == {tp: 5}, "the stopped, dropped and stop records are all done"


async def test_a_discard_stops_a_copy_running_here_and_is_done_once_the_objects_are_gone() -> None:
    generations, work, tp = await three_taken()
    await work._take(tp, message(3, "r0", discard=True))  # r0's attempt is dead: a copy runs
    assert generations.stops["r0"].is_set()
    assert await asyncio.wait_for(generations.discarded.get(), 1) == ("r0", 1)
    assert len(work.running) <= 1, "a discard takes no generation slot"
    assert len(work.discarding) == 1, "but a place of the prefetch while it runs"
    assert await asyncio.wait_for(generations.started.get(), 1) == "r1"
    generations.release["r1"].set()
    assert await asyncio.wait_for(generations.started.get(), 1) == "r2"
    generations.release["r2"].set()
    await asyncio.wait_for(asyncio.gather(*work.running), 1)
    assert work.to_commit == {tp: 3}, "not past the discard while its deletes run"
    work.room.clear()
    generations.discards_end.set()
    await asyncio.wait_for(asyncio.gather(*work.discarding), 1)
    assert work.to_commit == {tp: 4}
    assert work.room.is_set() and not work.discarding, "its place is free again"
