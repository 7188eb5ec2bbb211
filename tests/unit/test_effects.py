"""The commit guard: a flush that lets Faust commit only what was delivered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.stream.effects import EffectLedger, EffectLost, guard_producer


class FakeProducer:
    """Faust's producer seen from the guard: ``send`` returns a future, ``flush`` waits."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []
        self.flushed = 0

    async def send(self, topic: str, key: bytes, value: bytes, **kw: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def flush(self) -> None:
        self.flushed += 1


async def test_a_failed_delivery_makes_every_later_flush_refuse() -> None:
    producer = FakeProducer()
    ledger = EffectLedger("jobs")
    guard_producer(producer, ledger)
    await producer.send("work", b"k", b"v")
    await producer.send("dlq", b"k", b"v")
    producer.futures[0].set_result(None)
    await producer.flush()  # nothing failed: Faust may commit
    producer.futures[1].set_exception(RuntimeError("broker gone"))
    await asyncio.sleep(0)  # done callbacks run on the loop
    with pytest.raises(EffectLost, match="broker gone"):
        await producer.flush()
    with pytest.raises(EffectLost):
        await producer.flush()  # and stays refused: the worker must stop and replay


async def test_flush_waits_until_every_table_write_has_reached_the_client() -> None:
    producer = FakeProducer()
    ledger = EffectLedger("jobs")
    guard_producer(producer, ledger)
    ledger.table_write()  # Faust buffers the changelog write; it is not sent yet
    flushing = asyncio.create_task(producer.flush())
    await asyncio.sleep(0.02)
    assert not flushing.done() and producer.flushed == 0
    await producer.send("jobs", b"id", b"record")  # Faust's buffer hands it over
    await asyncio.wait_for(flushing, 1)
    assert producer.flushed == 1


async def test_a_table_write_that_never_reaches_the_client_refuses_the_commit() -> None:
    producer = FakeProducer()
    ledger = EffectLedger("jobs", handoff_timeout=0.05)
    guard_producer(producer, ledger)
    ledger.table_write()
    with pytest.raises(EffectLost, match="did not reach"):
        await producer.flush()
