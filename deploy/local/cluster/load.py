"""The load generator: requests into ``exhaust.requests`` at a steady rate, with a ledger of
what the cluster acknowledged.

A request is **acknowledged** when the broker confirmed it (an idempotent producer, so
``acks=all``: on at least ``min.insync.replicas`` brokers). Only acknowledged requests must
reach a terminal status; a send that failed (the brokers unreachable past the delivery
timeout) may or may not have landed, and the checker allows either.

Every request has its own client id (``load-{seed}-{n}``); a seeded share of them is sent
again a little later, the very same request, which the writer must count as a duplicate and
never run twice. Most jobs are small (a few rows); a seeded share are large enough (about a
second of generation) that a fault often lands mid-generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from app.domain.model import DatasetRequest
from app.settings import Settings
from app.stream.avro import registry
from app.stream.connection import client_options

CHANNEL = "acme"
SEND_LIMIT_SECONDS = 60.0  # past the producer's own request timeout (15 s) and its retries
log = logging.getLogger("exhaust.load")


@dataclass
class Sent:
    """What the load generator did with one request id."""

    request: DatasetRequest
    sent: int = 0  # copies sent
    acked: int = 0  # copies the brokers confirmed
    errors: list[str] = field(default_factory=list)
    # Where each confirmed copy landed, (partition, offset) in the order confirmed: a job's
    # ``request_offset`` against these tells which copy its writer decided last.
    landed: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Ledger:
    """Every request id the load generator sent, by id."""

    requests: dict[str, Sent] = field(default_factory=dict)

    @property
    def acknowledged(self) -> dict[str, Sent]:
        return {rid: s for rid, s in self.requests.items() if s.acked}

    def counts(self) -> tuple[int, int, int]:
        """(copies sent, copies acknowledged, ids acknowledged)."""
        sent = sum(s.sent for s in self.requests.values())
        acked = sum(s.acked for s in self.requests.values())
        return sent, acked, len(self.acknowledged)


def requests(seed: int, large_share: float = 0.03) -> Iterator[DatasetRequest]:
    """An endless seeded stream of distinct requests."""
    rng = random.Random(seed)
    for n in range(10**9):
        rows = rng.randint(100_000, 150_000) if rng.random() < large_share else rng.randint(1, 50)
        yield DatasetRequest(
            tag=f"load-{seed}-tag-{n % 97}",
            dataset="demo-export",
            channel=CHANNEL,
            requested_by="load",
            submitted_at=int(time.time() * 1000),
            config=f'{{"rows": {rows}, "seed": {n}}}',
            request_id=f"load-{seed}-{n}",
        )


class Load:
    """Sends ``rate`` requests a second until :meth:`stop`; ``duplicate_share`` of them again
    ``duplicate_delay`` seconds later."""

    def __init__(
        self,
        settings: Settings,
        seed: int,
        rate: float = 20.0,
        duplicate_share: float = 0.2,
        duplicate_delay: float = 2.0,
        large_share: float = 0.03,
        total: int | None = None,
    ) -> None:
        self.settings = settings
        self.total = total  # distinct requests to send at most (None: until stopped)
        self.finished = asyncio.Event()  # set once ``total`` were sent
        self.rate, self.duplicate_share, self.duplicate_delay = (
            rate,
            duplicate_share,
            duplicate_delay,
        )
        self.rng = random.Random(seed)
        self.stream = requests(seed, large_share)
        self.ledger = Ledger()
        self._stopping = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.producer = AIOKafkaProducer(
            **client_options(settings),
            enable_idempotence=True,  # acks=all
            linger_ms=5,
            request_timeout_ms=15_000,
        )
        self.encode = registry().encode
        self.topic = settings.topic("requests")

    async def __aenter__(self) -> Load:
        await self.producer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> Ledger:
        """Stop sending; wait for every send in flight to be confirmed or to fail."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._sends:
            await asyncio.gather(*self._sends)
        await self.producer.stop()
        return self.ledger

    async def wait_acknowledged(self, count: int, limit: float = 120.0) -> None:
        """Until ``count`` request ids are acknowledged (the load is under way)."""
        deadline = time.monotonic() + limit
        while len(self.ledger.acknowledged) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {len(self.ledger.acknowledged)} of {count} requests acknowledged "
                    f"in {limit:.0f}s"
                )
            await asyncio.sleep(0.2)

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stopping.is_set():
            if self.total is not None and len(self.ledger.requests) >= self.total:
                self.finished.set()
                return
            request = next(self.stream)
            entry = self.ledger.requests[request.request_id or ""] = Sent(request)
            self._spawn(entry, 0.0)
            if self.rng.random() < self.duplicate_share:
                self._spawn(entry, self.duplicate_delay)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    def _spawn(self, entry: Sent, delay: float) -> None:
        task = asyncio.create_task(self._send(entry, delay))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, entry: Sent, delay: float) -> None:
        if delay:
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return  # stopped before the copy was due: it is never sent
            except TimeoutError:
                pass
        request = entry.request
        value = self.encode("DatasetRequest", request.to_record())
        entry.sent += 1
        try:
            # Bounded: a send the brokers never confirm is not acknowledged, and it must not
            # keep :meth:`stop` (and so a test) waiting for ever.
            metadata = await asyncio.wait_for(
                self.producer.send_and_wait(self.topic, value, key=request.tag.encode()),
                SEND_LIMIT_SECONDS,
            )
        except Exception as exc:  # the brokers did not confirm it: not acknowledged
            entry.errors.append(type(exc).__name__)
            return
        entry.acked += 1
        entry.landed.append((metadata.partition, metadata.offset))
