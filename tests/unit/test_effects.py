"""The commit guard: a flush that lets Faust commit only what was delivered.

The guarded producer is built by a Faust app on the writer's transport (never started); only
the aiokafka client inside it is a fake, so ``send`` and ``flush`` run Faust's own code."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest

from app.stream.effects import EffectLost, GuardedProducer
from app.stream.faust_compat import broker_url, guarded_producer


class FakeClient:
    """aiokafka's producer as Faust's producer uses it: ``send`` returns a future."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []
        self.flushed = 0

    async def send(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def flush(self) -> None:
        self.flushed += 1


def guarded(handoff_timeout: float = 30.0) -> tuple[GuardedProducer, FakeClient]:
    app = faust.App("effects-test", broker=broker_url("127.0.0.1:9"), web_enabled=False)
    producer = guarded_producer(app)
    client = FakeClient()
    producer._producer = client
    producer.ledger.track_changelogs("jobs")
    producer.ledger.handoff_timeout = handoff_timeout
    return producer, client


async def send(producer: GuardedProducer, topic: str) -> None:
    await producer.send(topic, b"k", b"v", None, None, None)


async def test_the_writer_transport_builds_the_guarded_producer() -> None:
    app = faust.App("effects-test", broker=broker_url("127.0.0.1:9"), web_enabled=False)
    assert isinstance(app.producer, GuardedProducer)
    plain = faust.App("plain", broker=broker_url("127.0.0.1:9", scheme="kafka"))
    with pytest.raises(Exception, match="not the guarded one"):
        guarded_producer(plain)


async def test_a_failed_delivery_makes_every_later_flush_refuse() -> None:
    producer, client = guarded()
    await send(producer, "work")
    await send(producer, "dlq")
    client.futures[0].set_result(None)
    await producer.flush()  # nothing failed: Faust may commit
    client.futures[1].set_exception(RuntimeError("broker gone"))
    await asyncio.sleep(0)  # done callbacks run on the loop
    with pytest.raises(EffectLost, match="broker gone"):
        await producer.flush()
    with pytest.raises(EffectLost):
        await producer.flush()  # and stays refused: the worker must stop and replay


async def test_flush_waits_until_every_table_write_has_reached_the_client() -> None:
    producer, client = guarded()
    producer.ledger.table_write()  # Faust buffers the changelog write; it is not sent yet
    flushing = asyncio.create_task(producer.flush())
    await asyncio.sleep(0.02)
    assert not flushing.done() and client.flushed == 0
    await send(producer, "jobs")  # Faust's buffer hands it over
    await asyncio.wait_for(flushing, 1)
    assert client.flushed == 1


async def test_a_table_write_that_never_reaches_the_client_refuses_the_commit() -> None:
    producer, _ = guarded(handoff_timeout=0.05)
    producer.ledger.table_write()
    with pytest.raises(EffectLost, match="did not reach"):
        await producer.flush()


async def test_the_ledger_counts_what_is_not_yet_delivered() -> None:
    producer, client = guarded()
    ledger = producer.ledger
    ledger.table_write()  # made, not yet handed to the client
    assert ledger.unsettled() == 1
    await send(producer, "jobs")  # handed over, in flight
    await send(producer, "work")
    assert ledger.unsettled() == 2
    client.futures[0].set_result(None)
    client.futures[1].set_exception(RuntimeError("broker gone"))  # failed counts as settled
    await asyncio.sleep(0)  # done callbacks run on the loop
    assert ledger.unsettled() == 0
