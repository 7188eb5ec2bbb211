"""Every use of aiokafka's internals, in one place, checked before the service uses them.

Four things aiokafka does not offer publicly:

* **The partitions of any topic from a group-less consumer.** ``consumer.topics()`` fetches the
  cluster's metadata but returns topic names only, and ``consumer.partitions_for_topic`` knows
  only topics the consumer already tracks. :func:`partitions_of` reads the partitions from the
  metadata ``topics()`` itself fetches (``consumer._client.fetch_all_metadata()``).
* **The fetch wait of a consumer someone else created.** faust-streaming creates its consumer
  with ``fetch_max_wait_ms=1500`` hard-coded; :func:`cap_fetch_wait` lowers it on the consumer's
  fetcher (``_fetcher._fetch_max_wait_ms``, read for every fetch request) and reads it back.

:func:`check_library` runs at start-up and refuses to start (:class:`ConfigurationError`) when
an aiokafka upgrade moved any of these, instead of a warning and a silent regression (a fetch
wait back at 1.5 s is a 1.5 s latency regression with no failing test).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import GroupCoordinator

from app.domain.errors import ConfigurationError, TopicLayoutError


def check_library() -> None:
    """Refuse to start when an internal this module needs is gone (class-level checks; the
    instance-level ones run where each is used and raise the same error)."""
    problems = []
    if not inspect.iscoroutinefunction(getattr(AIOKafkaClient, "fetch_all_metadata", None)):
        problems.append("AIOKafkaClient.fetch_all_metadata is gone")
    if "self._fetch_max_wait_ms" not in inspect.getsource(Fetcher):
        problems.append("the fetcher no longer reads _fetch_max_wait_ms")
    if "self._do_heartbeat()" not in inspect.getsource(GroupCoordinator._heartbeat_routine):
        problems.append("the heartbeat routine no longer calls _do_heartbeat")
    if "self._on_join_complete(" not in inspect.getsource(GroupCoordinator._do_rejoin_group):
        problems.append("a join no longer completes through _on_join_complete")
    if "self._proc_offset_request(" not in inspect.getsource(Fetcher._update_fetch_positions):
        problems.append("a position reset no longer looks offsets up through _proc_offset_request")
    if problems:
        raise ConfigurationError("unsupported aiokafka: " + "; ".join(problems))


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, in order. Raises :class:`TopicLayoutError` when the topic
    does not exist."""
    client = getattr(consumer, "_client", None)
    if client is None or not hasattr(client, "fetch_all_metadata"):
        raise ConfigurationError("unsupported aiokafka: a consumer has no _client")
    cluster = await client.fetch_all_metadata()
    found = cluster.partitions_for_topic(topic) or set()
    if not found:
        raise TopicLayoutError(f"topic {topic} does not exist")
    return [TopicPartition(topic, p) for p in sorted(found)]


def cap_fetch_wait(consumer: Any, wait_ms: int) -> None:
    """Set how long a fetch of ``consumer`` may wait at the broker; read back to prove it."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or not isinstance(getattr(fetcher, "_fetch_max_wait_ms", None), int):
        raise ConfigurationError("unsupported aiokafka: a consumer's fetcher has no fetch wait")
    fetcher._fetch_max_wait_ms = wait_ms
    if fetcher._fetch_max_wait_ms != wait_ms:
        raise ConfigurationError("unsupported aiokafka: the fetch wait did not take")


async def start(consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
    """Start ``consumer`` with its offset lookups refreshing stale metadata (module docstring)."""
    await consumer.start()
    refresh_metadata_on_offset_errors(consumer)
    return consumer


def refresh_metadata_on_offset_errors(consumer: Any) -> None:
    """Make a started consumer's position resets request a metadata refresh when the broker
    asked is no longer the partition's leader."""
    fetcher = getattr(consumer, "_fetcher", None)
    client = getattr(consumer, "_client", None)
    lookup = getattr(fetcher, "_proc_offset_request", None)
    if not inspect.iscoroutinefunction(lookup) or client is None:
        raise ConfigurationError("unsupported aiokafka: a consumer's offset lookup is gone")

    async def proc_offset_request(node_id: int, topic_data: Any) -> Any:
        try:
            return await lookup(node_id, topic_data)
        except kafka_errors.KafkaError as exc:
            if exc.invalid_metadata:
                client.force_metadata_update()
            raise

    fetcher._proc_offset_request = proc_offset_request  # type: ignore[union-attr]


class Membership:
    """When the group coordinator last confirmed that a consumer is a member of its group: a
    successful heartbeat (a "rebalance in progress" answer included: the coordinator keeps a
    member that heartbeats through a rebalance) or a completed join."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.confirmed_at = clock()

    def confirmed(self) -> None:
        self.confirmed_at = self.clock()

    def age(self) -> float:
        """Seconds since the coordinator last confirmed the membership."""
        return self.clock() - self.confirmed_at


def watch_membership(consumer: Any, clock: Callable[[], float] = time.monotonic) -> Membership:
    """A :class:`Membership` kept current by ``consumer``'s group coordinator (a started
    consumer with a group)."""
    coordinator = getattr(consumer, "_coordinator", None)
    heartbeat = getattr(coordinator, "_do_heartbeat", None)
    join_complete = getattr(coordinator, "_on_join_complete", None)
    if not (inspect.iscoroutinefunction(heartbeat) and inspect.iscoroutinefunction(join_complete)):
        raise ConfigurationError("unsupported aiokafka: a consumer's coordinator cannot be watched")
    membership = Membership(clock)

    async def do_heartbeat() -> bool:
        ok: bool = await heartbeat()
        if ok:
            membership.confirmed()
        return ok

    async def on_join_complete(*args: Any, **kwargs: Any) -> Any:
        membership.confirmed()  # the group's SyncGroup answer has just arrived
        return await join_complete(*args, **kwargs)

    coordinator._do_heartbeat = do_heartbeat  # type: ignore[union-attr]
    coordinator._on_join_complete = on_join_complete  # type: ignore[union-attr]
    return membership


__all__ = [
    "Membership",
    "cap_fetch_wait",
    "check_library",
    "partitions_of",
    "refresh_metadata_on_offset_errors",
    "start",
    "watch_membership",
]
