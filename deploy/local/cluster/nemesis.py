"""The fault injector: what goes wrong on a real network, done to the cluster's hosts.

Every fault has its repair, and :meth:`Nemesis.heal_all` repairs whatever is still broken
(a scenario that fails half way leaves no host cut off for the next one). Faults:

* ``cut(host)`` / ``reconnect``: the host's link down, as a pulled cable;
* ``partition(host, others)``: blackhole routes both ways between a host and some others;
* ``slow_link(host)``: a token bucket (``tc tbf``) of 1 Mbit/s with at most 200 ms of queue on
  the host's interface: delay up to 200 ms, and packets beyond it dropped. (``tc netem``,
  the usual tool for fixed latency and random loss, is not compiled into every kernel, this
  machine's included; ``tbf`` is.)
* ``kill(proc)`` (``kill -9``) and ``restart(proc)``; ``pause`` / ``resume`` (SIGSTOP/SIGCONT);
* ``leader(topic, partition)``: which broker host leads a partition, to kill the leader.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from app.domain.errors import StackError
from deploy.local.cluster.cluster import BROKERS, Cluster, Proc

log = logging.getLogger("exhaust.nemesis")


class Nemesis:
    """Faults on ``cluster``, each logged and undone by :meth:`heal_all`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.net = cluster.network
        self.events: list[str] = []  # what was done, in order, for the report
        self._slow: set[str] = set()
        self._paused: set[str] = set()

    def _note(self, what: str) -> None:
        log.info("nemesis: %s", what)
        self.events.append(what)

    # --- network ----------------------------------------------------------------------------

    def cut(self, host: str) -> None:
        self._note(f"cut {host}")
        self.net.cut(host)

    def reconnect(self, host: str) -> None:
        self._note(f"reconnect {host}")
        self.net.reconnect(host)

    def partition(self, host: str, others: list[str]) -> None:
        self._note(f"partition {host} from {','.join(others)}")
        self.net.partition(host, others)

    def slow_link(self, host: str) -> None:
        self._note(f"slow link on {host} (1 Mbit/s, 200 ms queue)")
        self._tc(host, "add", "root", "tbf", "rate", "1mbit", "burst", "16kb", "latency", "200ms")
        self._slow.add(host)

    def fast_link(self, host: str) -> None:
        if host in self._slow:
            self._note(f"normal link on {host}")
            self._tc(host, "del", "root")
            self._slow.discard(host)

    def _tc(self, host: str, *args: str) -> None:
        namespace = self.net[host].namespace
        result = subprocess.run(
            ["tc", "-n", namespace, "qdisc", args[0], "dev", "eth0", *args[1:]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"tc on {host} failed: {result.stderr.strip()}")

    # --- processes --------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        self._note(f"kill -9 {name}")
        self.cluster.procs[name].kill()

    def restart(self, name: str) -> Proc:
        self._note(f"restart {name}")
        return self.cluster.procs[name].restart()

    def pause(self, name: str) -> None:
        self._note(f"SIGSTOP {name}")
        self.cluster.procs[name].signal(signal.SIGSTOP)
        self._paused.add(name)

    def resume(self, name: str) -> None:
        self._note(f"SIGCONT {name}")
        self.cluster.procs[name].signal(signal.SIGCONT)
        self._paused.discard(name)

    async def leader(self, topic: str, partition: int = 0) -> str:
        """The broker host (``k1``…) leading ``topic``'s ``partition``."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.cluster.bootstrap)
        await admin.start()
        try:
            for described in await admin.describe_topics([topic]):
                for entry in described["partitions"]:
                    if entry["partition"] == partition and entry["leader"] >= 1:
                        return BROKERS[entry["leader"] - 1]
        finally:
            await admin.close()
        raise StackError(f"{topic}[{partition}] has no leader")

    async def coordinator(self, group: str) -> str:
        """The broker host (``k1``…) coordinating the consumer group ``group``."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.cluster.bootstrap)
        await admin.start()
        try:
            node = await admin.find_coordinator(group)
        finally:
            await admin.close()
        if not 1 <= node <= len(BROKERS):
            raise StackError(f"group {group} has no coordinator ({node})")
        return BROKERS[node - 1]

    # --- repair -----------------------------------------------------------------------------

    def heal_all(self) -> None:
        """Undo every fault still in place: links up, partitions gone, paused processes
        continued, slow links normal. Stopped processes are the scenario's to restart."""
        self.net.heal()
        for name in list(self._paused):
            self.resume(name)
        for host in list(self._slow):
            self.fast_link(host)


async def wait_for(
    check: Callable[[], Any], limit: float, what: str, interval: float = 0.5
) -> None:
    """Poll ``check`` until it returns something truthy, or fail. A coroutine function is
    awaited; a plain one (blocking: an HTTP probe) runs in a thread, off the event loop
    that the load generator shares."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        if asyncio.iscoroutinefunction(check):
            result = await check()
        else:
            result = await asyncio.to_thread(check)
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
