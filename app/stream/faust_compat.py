"""Every use of faust-streaming's internals, in one place, checked at start-up.

The writer relies on these things Faust does not offer as public API:

* **Its commit path flushes the producer first** (``Consumer._commit_offsets`` calls
  ``producer.flush()``): the commit guard of :mod:`app.stream.effects` is that flush.
* **Its producer class comes from the transport.** The writer's app uses the broker scheme
  :data:`SCHEME`, registered through Faust's documented extension point (the ``faust.transports``
  entry point in pyproject.toml) as :class:`Transport`: Faust's aiokafka transport whose producer
  is :class:`~app.stream.effects.GuardedProducer`. Nothing is patched at run time.
* **The aiokafka consumer inside its consumer thread** (``consumer._thread._ensure_consumer()``),
  whose fetch wait Faust hard-codes to 1.5 s (see :func:`writer_consumer`).
* **The event a table write belongs to.** A Faust table writes a key into the RocksDB database
  and the changelog partition of the *current event* (``faust.streams._current_event``, set by
  the stream for each event it yields). The writer decides a batch at once and then performs
  its writes, each for the event that caused it: :func:`acting_for` sets that event around the
  write, exactly as the stream does.
* **The consumer's set of messages taken but not yet acknowledged** (``_unacked_messages``),
  which a rebalance waits to see empty: :func:`abandon` takes a fenced writer's batch out of it
  without acknowledging it (:mod:`app.stream.fence`).
* **How its consumer turns acknowledgements into a committed offset** (``Consumer._new_offset``
  over ``_acked`` and ``_committed_offset``, and the "gaps" ``_drain_messages`` records with
  ``_add_gap``), and **how it hands out a fetched batch** (``getmany``, read by
  ``_drain_messages``; a ``seek`` resets ``_read_offset``): :class:`Consumer` corrects all
  three (see there).
* **Its consumer thread's stop** (``AIOKafkaConsumerThread.on_thread_stop``), bounded by
  :class:`ConsumerThread`.
* **How its RocksDB store remembers where a partition's recovery resumes**
  (``set_persisted_offset``, ``revoke_partitions``, ``assign_partitions``): :class:`Store`
  makes a partition handed back recover from its changelog's start.
* **Its fetch loop** (``Consumer._drain_messages``), which :class:`Consumer` replaces to hand a
  fetch's messages to the stream without four tasks each (pinned by the hash of its source).
* **Its seek** (``ThreadDelegateConsumer._seek`` calls the thread's ``seek`` from the event
  loop's thread), which :class:`Consumer` runs through the thread's ``call_thread`` instead.
* **One RocksDB database per table partition** (``Store._dbs``), so a sweep of one partition
  reads that partition only (:func:`partition_items`); ``table.items()`` walks all of them.

:func:`check_library` runs before the writer is built and :func:`writer_consumer` /
:func:`partition_items` check again where they reach in; each raises
:class:`~app.domain.errors.ConfigurationError`, which stops the service, instead of logging a
warning and running slower (a 1.5 s latency regression with no failing test).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import weakref
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import faust
from faust import streams
from faust.serializers import codecs
from faust.stores import by_url as stores_by_url
from faust.stores import rocksdb
from faust.transport import by_url
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.threads import QueueServiceThread

from app.domain.errors import ConfigurationError
from app.stream.effects import GuardedProducer

log = logging.getLogger("exhaust.faust")

SCHEME = "exhaust-kafka"
STORE_SCHEME = "exhaust-rocksdb"  # :class:`Store`, registered as the transport is
# The source of the Faust fetch loop :meth:`Consumer._drain_messages` replaces: another source
# (an upgrade) stops the service until the copy is reviewed against it.
DRAIN_MESSAGES_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
# The same for the consumer thread's stop, which :class:`ConsumerThread` replaces.
THREAD_STOP_SHA256 = "8dfc004e258b6c25edd2b0986531aea0fc75dd5cef0d0718c87848af33c6f757"
JUMP_RESEEKS = 3  # seeks landing beyond the expected offset before the jump is accepted
# How long a stopping writer waits for its aiokafka consumer to leave the group and close.
CONSUMER_STOP_SECONDS = 10.0


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose stop always ends: with every broker unreachable, a
    processor asked to stop took 60 s (mode's bound) and logged a ``TimeoutError`` trace.

    aiokafka's ``consumer.stop()`` cancels its fetch tasks and awaits them; one waiting out its
    retry backoff after a failed fetch re-raises the ``CancelledError``, so Faust's
    ``on_thread_stop`` raised it, the thread ended without telling the parent it had shut down,
    and the parent waited out its bound. Here that error, when this task is not itself being
    cancelled, ends the consumer's stop instead (its sockets are closed by then), and the stop
    as a whole is bounded by :data:`CONSUMER_STOP_SECONDS`. Nothing is lost by ending it: the
    offsets it could still commit follow effects a broker that is gone has not acknowledged,
    so the partitions' next owner replays them."""

    async def on_thread_stop(self) -> None:
        # Faust's on_thread_stop (pinned by THREAD_STOP_SHA256): stop the method queue (the
        # grandparent's), then the consumer, here bounded and tolerant of a cancelled fetch.
        await QueueServiceThread.on_thread_stop(self)
        consumer = self._consumer
        if consumer is None:
            return
        try:
            await asyncio.wait_for(consumer.stop(), CONSUMER_STOP_SECONDS)
        except TimeoutError:
            log.warning(
                "the writer's consumer did not close within %.0f s (brokers unreachable?); "
                "stopping without it", CONSUMER_STOP_SECONDS,
            )  # fmt: skip
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this stop itself was cancelled
            log.info("the writer's consumer closed with a fetch cancelled mid-retry")


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, committing an offset only when every message below it was
    acknowledged.

    Faust commits the run of acknowledged offsets at the head of its list, and checks that the
    run starts where the last commit ended with ``min(acked) - committed > 1``; but a committed
    offset is the *next* one to read, so one unacknowledged message just at it (a message the
    stream skipped while its flow was suspended for a recovery) is committed over and never
    read again. The cluster's checker lost one request that way after every processor had
    restarted at once. Faust also records a "gap" when the offsets it reads jump, and counts
    the offsets in it as acknowledged: meant for compacted topics, it also fires when a seek
    lands while a fetched batch is still being handed out. The writer's source topics are
    neither compacted nor transactional, so their offsets have no gaps: none is recorded.

    A message left unacknowledged therefore holds its partition's commit; the watchdog sees the
    partition's lag stand still and seeks it back to the committed offset, which delivers the
    message again (:mod:`app.stream.watchdog`).

    Last, each partition is handed out in order, from where it was last sought. Faust hands
    out a fetched batch one message at a time and goes on with the rest of it after a seek (the
    seek to the committed offsets that ends every rebalance's recovery among them); each
    message it hands out moves its "read offset", and the messages fetched again from the
    seek's position then fall below it and are dropped. In a rolling restart the writer took
    requests 417..422 before 408..416, which came back only with the next seek, where a repeat
    at 408 looked like a replay of the job's request at 423 and went uncounted. So a message
    of a writer's source partition is handed out only at the next offset expected there (the
    one after the last handed out, or where the partition was last sought); one beyond it is
    held back and the partition sought to the expected offset again. The source topics are
    neither compacted nor transactional (the topics Faust acks; the tables' changelogs, which
    are compacted, are declared ``acks=False`` as Faust's own are, and read across their holes),
    so their offsets only jump when a fetch predates a seek, or when retention has deleted what
    was expected: after :data:`JUMP_RESEEKS` seeks that land at the same jump, it is taken as
    such and accepted.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next: dict[Any, int] = {}  # per source partition, the offset to hand out next
        self._jumps: dict[Any, tuple[int, int]] = {}  # per partition: (expected, seeks made)
        self._seeks = 0
        self._sought: dict[Any, tuple[int, int | None]] = {}  # per partition: (seek, offset)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _seek(self, partition: Any, offset: int) -> None:
        """Seek in the consumer's thread. Faust calls aiokafka's ``seek`` from the event loop's
        thread, and aiokafka's fetcher then drops the partition's buffered records from a dict
        its own thread may be walking: in ``make chaos`` a processor crashed with a
        ``KeyError`` in ``Fetcher.fetched_records`` 0.1 s after the watchdog sought a
        partition back. Through the thread's method queue, as Faust's own seeks to the
        committed offsets go, the seek runs between two of the thread's steps."""
        thread = self._thread

        async def in_its_thread() -> None:
            thread.seek(partition, offset)

        await thread.call_thread(in_its_thread)

    async def seek(self, partition: Any, offset: int) -> None:
        await super().seek(partition, offset)
        self._next[partition] = offset
        self._record_seek(partition, offset)

    async def seek_to_committed(self) -> Any:
        offsets = await super().seek_to_committed()
        for tp, offset in offsets.items():
            if offset is not None and offset >= 0:
                self._next[tp] = offset
                self._record_seek(tp, offset)
            else:  # nothing committed: where the reset policy lands
                self._next.pop(tp, None)
                self._record_seek(tp, None)
        return offsets

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self._next.pop(tp, None)
            self._jumps.pop(tp, None)
            self._record_seek(tp, None)
        await super().on_partitions_revoked(revoked)

    def _record_seek(self, tp: Any, offset: int | None) -> None:
        self._seeks += 1
        self._sought[tp] = (self._seeks, offset)

    def sought(self, tp: Any) -> tuple[int, int | None] | None:
        """Where ``tp`` was last sought: (a number that changes with every seek, the offset
        sought to, or None when unknown). The writer's edge checks its events against it
        (:mod:`app.stream.partition_order`)."""
        return self._sought.get(tp)

    async def getmany(
        self,
        timeout: float,  # noqa: ASYNC109 (Faust's signature)
    ) -> AsyncIterator[tuple[Any, Any]]:
        sought: set[Any] = set()  # partitions sought again during this batch
        in_order = self.app.topics.acks_enabled_for  # the sources (changelogs have gaps)
        async for tp, message in super().getmany(timeout):
            expected = self._next.get(tp)
            offset = message.offset
            if expected is not None and offset != expected and in_order(message.topic):
                if offset < expected or tp in sought:
                    continue  # handed out already, or fetched before this partition's seek
                sought.add(tp)
                if not await self._jumped(tp, expected, offset):
                    continue
            self._next[tp] = offset + 1
            self._jumps.pop(tp, None)
            yield tp, message

    def next_offset(self, tp: Any) -> int | None:
        """The offset of ``tp`` this consumer hands out next (None before the first seek or
        hand-out): the writer's watchdog reads it as the partition's delivery marker."""
        return self._next.get(tp)

    async def _jumped(self, tp: Any, expected: int, offset: int) -> bool:
        """Seek ``tp`` back to ``expected``; True once seeks keep landing beyond it."""
        previous, seeks = self._jumps.get(tp, (expected, 0))
        seeks = seeks if previous == expected else 0
        if seeks >= JUMP_RESEEKS:
            log.warning("%s: offsets %d..%d are not in the log (deleted by retention?); "
                        "reading on from %d", tp, expected, offset - 1, offset)  # fmt: skip
            return True
        self._jumps[tp] = (expected, seeks + 1)
        log.info("%s: read %d where %d was expected (a fetch made before a seek); seeking "
                 "back to %d", tp, offset, expected, expected)  # fmt: skip
        await self.seek(tp, expected)
        return False

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            return None  # the message at the committed offset is not acknowledged yet
        offset: int | None = super()._new_offset(tp)
        return offset

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        log.info(
            "%s: offsets %d..%d were read out of order; they count as acknowledged only once "
            "processed", tp, offset_from, offset_to - 1,
        )  # fmt: skip

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (its own loop)
        """Faust's fetch loop (``Consumer._drain_messages`` of faust-streaming 0.15.3, whose
        source :func:`check_library` pins), with one change: each message is handed to the
        conductor through :meth:`_deliver` instead of ``wait_first`` over four new tasks.

        Faust raced every message's delivery against the flow's suspension in tasks, so each
        message cost four tasks and a turn of the event loop, and the writer's stream found one
        event buffered at a time: its batches held one event. Delivered in place, a fetch's
        messages reach the stream's buffer together (Faust's own yield every 100 messages is
        kept) and the writer decides them as one batch.
        """
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        yield_every = 100
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(faust_consumer.CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            await self._deliver(callback, message)
                            set_read_offset(tp, offset)
                    unset_flag(faust_consumer.CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(faust_consumer.CONSUMER_FETCHING)

    async def _deliver(self, callback: Any, message: Any) -> None:
        """Hand ``message`` to the conductor as Faust does, racing the flow's suspension, but
        without a task when the hand-over completes at once (the stream's buffer has room, the
        flow is not suspended, the producer's buffer is not full): the common case."""
        delivery = callback(message)
        try:
            waiting_on = delivery.send(None)
        except StopIteration:
            return  # delivered in place
        await self.wait_first(_Resumed(delivery, waiting_on), self.suspend_flow.wait())


class _Resumed:
    """A coroutine that has already run to its first suspension, as an awaitable that carries
    it on (``yield from``'s delegation, PEP 380): the task that awaits it sees the very future
    the coroutine waits on, and sends, throws and closes reach the coroutine unchanged."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self.coroutine = coroutine
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self.coroutine, self.waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration as done:
                    return done.value


class Store(rocksdb.Store):
    """Faust's RocksDB store whose partitions, once revoked, recover from the changelog's start.

    Faust keeps a revoked partition's database on disk with the offset of the last changelog
    record it applied or *wrote*, and when the partition comes back it recovers from there. A
    write of this process that reached the changelog after the partition had moved on (one in
    flight when the group handed it over) then lands after the new owner's records, and the
    recovery starts past them: the table misses the other owner's writes and decides from an
    old state (the cluster's rolling restart saw jobs go SUCCESS, then SUBMITTED again, and a
    counted duplicate forgotten). Here a revoked partition's recovery offset is dropped, and an
    offset is recorded only for a partition this process holds, so a partition that comes
    back is read again from the beginning of its changelog: every key is rewritten from the
    records, deletions included (the cost of a start-up, once per partition regained)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: set[int] = set()

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                self._held.discard(tp.partition)
                db = self._dbs.get(tp.partition)
                if db is not None:
                    db.delete(self.offset_key)
        super().revoke_partitions(table, tps)

    async def assign_partitions(self, table: Any, tps: Any, generation_id: int = 0) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                self._held.add(tp.partition)
        await super().assign_partitions(table, tps, generation_id)

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        if tp.partition in self._held:  # not a late write's, after the partition moved on
            super().set_persisted_offset(tp, offset)


def store_url(url: str) -> str:
    """The store URL the writer's tables use: :class:`Store` for ``rocksdb://``."""
    scheme, sep, rest = url.partition("://")
    return f"{STORE_SCHEME}{sep}{rest}" if scheme == "rocksdb" else url


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the guarded producer and the corrected consumer."""

    Consumer = Consumer
    Producer = GuardedProducer


def broker_url(bootstrap_servers: str, scheme: str = SCHEME) -> str:
    """Faust's broker URL for ``bootstrap_servers`` (``scheme="kafka"``: Faust's own transport)."""
    return ";".join(f"{scheme}://{host.strip()}" for host in bootstrap_servers.split(","))


def check_library() -> None:
    """Refuse to start when an internal the writer needs is gone."""
    problems = [
        problem
        for problem in (
            _registration(by_url, f"{SCHEME}://localhost", Transport, "transport"),
            _registration(stores_by_url, f"{STORE_SCHEME}://", Store, "store"),
        )
        if problem is not None
    ]
    if "producer.flush()" not in inspect.getsource(faust_consumer.Consumer._commit_offsets):
        problems.append("the consumer no longer flushes the producer before a commit")
    thread_stop = inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread.on_thread_stop)
    if hashlib.sha256(thread_stop.encode()).hexdigest() != THREAD_STOP_SHA256:
        problems.append("the consumer thread's on_thread_stop is not the one replaced")
    if "AIOKafkaConsumerThread(self" not in inspect.getsource(
        faust_aiokafka.Consumer._new_consumer_thread
    ):
        problems.append("the consumer no longer makes its thread in _new_consumer_thread")
    if not callable(getattr(faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer", None)):
        problems.append("the consumer thread has no _ensure_consumer")
    if "self._thread.seek(" not in inspect.getsource(faust_consumer.ThreadDelegateConsumer._seek):
        problems.append("the consumer no longer seeks through its thread's seek")
    if not inspect.iscoroutinefunction(
        getattr(faust_aiokafka.AIOKafkaConsumerThread, "call_thread", None)
    ):
        problems.append("the consumer thread has no call_thread")
    if not isinstance(getattr(streams, "_current_event", None), ContextVar):
        problems.append("the stream keeps no _current_event")
    else:
        probe = _Probe()
        with acting_for(probe):
            current: object = streams.current_event()
            if current is not probe:
                problems.append("a table write cannot be attributed to its event")
    new_offset = inspect.getsource(faust_consumer.Consumer._new_offset)
    if "self._acked[tp]" not in new_offset or "self._committed_offset[tp]" not in new_offset:
        problems.append("the consumer no longer derives commits from _acked and _committed_offset")
    if "self._add_gap(" not in inspect.getsource(faust_consumer.Consumer._drain_messages):
        problems.append("the consumer no longer records gaps through _add_gap")
    if "yield tp, to_message(" not in inspect.getsource(faust_consumer.Consumer.getmany):
        problems.append("the consumer no longer hands out fetched batches through getmany")
    drain = inspect.getsource(faust_consumer.Consumer._drain_messages)
    if "getmany(" not in drain:
        problems.append("the consumer no longer reads through getmany")
    if hashlib.sha256(drain.encode()).hexdigest() != DRAIN_MESSAGES_SHA256:
        problems.append("the consumer's fetch loop (_drain_messages) is not the one replaced")
    if "self._read_offset[" not in inspect.getsource(faust_consumer.Consumer.seek):
        problems.append("a seek no longer resets the consumer's read offset")
    if "self._unacked_messages" not in inspect.getsource(faust_consumer.Consumer.wait_empty):
        problems.append("a rebalance no longer waits on the consumer's _unacked_messages")
    for method in ("revoke_partitions", "assign_partitions", "set_persisted_offset"):
        if not callable(getattr(rocksdb.Store, method, None)):
            problems.append(f"the RocksDB store has no {method}")
    if "set_persisted_offset" not in inspect.getsource(rocksdb.Store.apply_changelog_batch):
        problems.append("the RocksDB store no longer records offsets in set_persisted_offset")
    if "_dbs" not in getattr(rocksdb.Store, "__annotations__", {}):
        problems.append("the RocksDB store no longer keeps one database per partition (_dbs)")
    if problems:
        raise ConfigurationError("unsupported faust-streaming: " + "; ".join(problems))


def _registration(resolve: Any, url: str, expected: type, kind: str) -> str | None:
    """What is wrong with the class Faust resolves for ``url`` through the package's entry
    points (None when it is ``expected``)."""
    scheme = url.partition("://")[0]
    try:
        if resolve(url) is not expected:
            return f"the {scheme} {kind} is not this one"
    except ModuleNotFoundError:
        return f"the {scheme} {kind} is not registered (reinstall the package: make install)"
    return None


class _Probe:
    """A stand-in event for the start-up check of :func:`acting_for`."""


@contextlib.contextmanager
def acting_for(event: object) -> Iterator[None]:
    """Make ``event`` the current event (the one a table write belongs to) inside the block."""
    variable: ContextVar[Any] = streams._current_event
    token = variable.set(weakref.ref(event))
    try:
        yield
    finally:
        variable.reset(token)


def read_for(table: Any, key: bytes, event: object) -> Any:
    """``table.get(key)`` in the store of ``event``'s partition (``event`` None: the current
    event's). Faust's RocksDB store reads the partition of the *current* event, which during a
    batch's decisions is the batch's last: a batch of several partitions read most keys in
    the wrong database and found nothing there. Every decision names the event it reads for."""
    if event is None:
        return table.get(key)
    with acting_for(event):
        return table.get(key)


def guarded_producer(app: faust.App) -> GuardedProducer:
    """The app's producer, which must be the guarded one (the app's broker uses :data:`SCHEME`)."""
    producer = app.producer
    if not isinstance(producer, GuardedProducer):
        raise ConfigurationError(
            f"the writer's producer is {type(producer).__name__}, not the guarded one: its "
            f"broker URL must use {SCHEME}://"
        )
    return producer


def writer_consumer(app: faust.App) -> Any:
    """The aiokafka consumer inside the app's consumer thread (once the app has started)."""
    thread = getattr(app.consumer, "_thread", None)
    ensure = getattr(thread, "_ensure_consumer", None)
    if ensure is None:
        raise ConfigurationError("unsupported faust-streaming: no consumer thread")
    return ensure()


def abandon(app: faust.App, events: Iterable[Any]) -> None:
    """Give up ``events`` without acknowledging them: their offsets are never committed (the
    partitions' next owner reads them again) and a rebalance no longer waits for them."""
    unacked = getattr(app.consumer, "_unacked_messages", None)
    if unacked is None:
        raise ConfigurationError("unsupported faust-streaming: no _unacked_messages")
    for event in events:
        unacked.discard(event.message)


def partition_items(table: Any, partition: int) -> Iterator[tuple[bytes, bytes]] | None:
    """The raw items of one partition of a RocksDB-backed ``table``, or None when the table's
    store is not RocksDB (the in-memory store of tests: the caller walks ``table.items()``)."""
    store = table.data
    if not isinstance(store, rocksdb.Store):
        return None
    dbs = getattr(store, "_dbs", None)
    if not isinstance(dbs, dict):
        raise ConfigurationError("unsupported faust-streaming: the RocksDB store has no _dbs")
    db = dbs.get(partition)
    if db is None:
        return iter(())
    offset_key = store.offset_key
    return ((k, v) for k, v in db.items() if k != offset_key)


_codecs: dict[str, codecs.Codec] = {}


def register_codec(name: str, codec: codecs.Codec) -> None:
    """Register a table codec with Faust's (process-wide) codec registry, once per name."""
    if name not in _codecs:
        codecs.register(name, codec)
        _codecs[name] = codec


__all__ = [
    "SCHEME",
    "STORE_SCHEME",
    "Consumer",
    "Store",
    "Transport",
    "abandon",
    "acting_for",
    "broker_url",
    "check_library",
    "guarded_producer",
    "partition_items",
    "register_codec",
    "store_url",
    "writer_consumer",
]
