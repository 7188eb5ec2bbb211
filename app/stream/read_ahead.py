"""Asking an async iterator for its next item ahead of time, to tell whether one is ready.

The writer's edge (:meth:`app.stream.agents.Pipeline.batches`) gathers the events a stream
has buffered into one batch and must decide that batch as soon as no further event is ready.
The stream's buffer alone cannot tell it: after a rebalance the stream skips the buffered
events of a stale generation and then waits for new ones, so a non-empty buffer may hold no
event that will come out, and a batch left waiting behind it is never acknowledged (a stopping
worker then waits for it). Asking for the next event in a task of its own and looking whether it
came out within a few turns of the event loop answers the question the edge needs. No library
offers a "ready within n turns" look at an async iterator; ``asyncio`` gives the pieces.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")

# Turns of the event loop given to an item that is already buffered: a Faust stream yields to
# the loop once before it takes an item (``sleep(0)``), and a task's first step is one more.
READY_TURNS = 3


async def _next(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()


class ReadAhead(Generic[T]):
    """The items of ``source``; :meth:`ready` asks for the next one ahead and says whether it
    came out within :data:`READY_TURNS` turns of the event loop, :meth:`take` returns it
    (waiting if need be). A pending ask is cancelled by :meth:`aclose`."""

    def __init__(self, source: AsyncIterable[T]) -> None:
        self._iterator = source.__aiter__()
        self._ahead: asyncio.Task[T] | None = None

    async def ready(self) -> bool:
        """Whether the next item is ready (or the source ended or failed) within a few turns."""
        if self._ahead is None:
            self._ahead = asyncio.ensure_future(_next(self._iterator))
        for _ in range(READY_TURNS):
            if self._ahead.done():
                return True
            await asyncio.sleep(0)  # a turn of the loop, not a wait: the ask runs meanwhile
        return self._ahead.done()

    async def take(self) -> T:
        """The next item; :class:`StopAsyncIteration` once the source has ended."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return await self._iterator.__anext__()
        return await ahead

    async def aclose(self) -> None:
        """Cancel an ask still pending (the source then sees the cancellation, as a reader
        cancelled while waiting on it would)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        ahead.cancel()
        await asyncio.wait({ahead})  # unlike awaiting it, leaves this task's own cancel alone
        if not ahead.cancelled():
            ahead.exception()  # retrieved: an ask that failed as it was dropped is not news

    def __aiter__(self) -> ReadAhead[T]:
        return self

    async def __anext__(self) -> T:
        return await self.take()
