"""Asking an async iterator ahead: ready when its next item comes out within a few turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.stream.read_ahead import ReadAhead


async def _buffered(items: list[int], more: asyncio.Event) -> AsyncIterator[int]:
    """Yields to the loop before each item, as a Faust stream does, then waits for ``more``."""
    for item in items:
        await asyncio.sleep(0)  # the stream's own turn of the loop, modelled; not a wait
        yield item
    await more.wait()
    yield -1


async def test_a_buffered_item_is_ready_and_comes_out_in_order() -> None:
    more = asyncio.Event()
    ahead = ReadAhead(_buffered([1, 2, 3], more))
    assert await ahead.take() == 1
    assert await ahead.ready()
    assert await ahead.take() == 2
    assert await ahead.take() == 3  # without asking ahead
    await ahead.aclose()


async def test_an_item_that_is_not_there_is_not_ready_and_is_taken_once_it_comes() -> None:
    more = asyncio.Event()
    ahead = ReadAhead(_buffered([1], more))
    assert await ahead.take() == 1
    assert not await ahead.ready()
    assert not await ahead.ready()  # asked once, still waiting
    more.set()
    assert await ahead.take() == -1


async def test_an_ended_source_is_ready_and_ends_the_iteration() -> None:
    async def two() -> AsyncIterator[int]:
        yield 1
        yield 2

    ahead = ReadAhead(two())
    assert [item async for item in ahead] == [1, 2]
    ahead = ReadAhead(two())
    await ahead.take()
    await ahead.take()
    assert await ahead.ready()
    with pytest.raises(StopAsyncIteration):
        await ahead.take()


async def test_closing_cancels_a_pending_ask_and_the_source_sees_it() -> None:
    cancelled = asyncio.Event()

    async def quiet() -> AsyncIterator[int]:
        yield 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield 2  # pragma: no cover (never reached)

    ahead = ReadAhead(quiet())
    await ahead.take()
    assert not await ahead.ready()
    await ahead.aclose()
    assert cancelled.is_set()
    await ahead.aclose()  # nothing pending: a no-op


async def test_a_failing_source_raises_where_the_item_is_taken() -> None:
    async def failing() -> AsyncIterator[int]:
        raise ValueError("cannot decode")
        yield 0  # pragma: no cover (makes this an async generator)

    ahead = ReadAhead(failing())
    assert await ahead.ready()
    with pytest.raises(ValueError, match="cannot decode"):
        await ahead.take()
