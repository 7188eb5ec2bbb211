"""The cluster's hosts: one Linux network namespace per host on a private bridge.

Each host is a namespace ``exh-{id}-{name}`` with one interface (``eth0``, a veth whose other
end is attached to the bridge ``e{id}br`` in the root namespace) and its own address in a
private /24. The root namespace holds the bridge's address, so the test process (the load
generator and the checker) reaches every host, and nothing else is routed: traffic stays on
the bridge. The addresses are chosen from the run's id, so two runs on one machine (a CI run
beside a developer's) do not collide; a subnet already routed here is refused.

Faults are made the way a network makes them:

* **cut off** (``cut``): the host's link goes down on the bridge side; packets to and from it
  vanish, connections hang until their timeouts, exactly like a pulled cable;
* **partition** (``partition``): blackhole routes in both directions between one host and some
  others; the rest of the network still reaches both sides.

``iproute2``'s ``ip`` is the library here: it is the interface to the kernel's netlink the
machine already has, and every command is one readable line in a failure message.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.domain.errors import StackError

NAMESPACE_PREFIX = "exh-"


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; the output, or a :class:`StackError` with the command and its error."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise StackError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True, slots=True)
class Host:
    """One host of the cluster: a namespace, its address and its link on the bridge."""

    name: str  # k1, s3, w1, api …
    namespace: str
    address: str
    link: str  # the veth end on the bridge, in the root namespace

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it on the host."""
        return ["ip", "netns", "exec", self.namespace]

    def pids(self) -> list[int]:
        """Every process whose network is this host's."""
        out = ip("netns", "pids", self.namespace, check=False)
        return [int(pid) for pid in out.split()]


def subnet_of(cluster_id: str) -> ipaddress.IPv4Network:
    """A private /24 from the id: 10.200.0.0/16 … 10.249.255.0/24."""
    value = int(cluster_id, 16)
    return ipaddress.IPv4Network(f"10.{200 + value % 50}.{(value // 50) % 256}.0/24")


class Network:
    """The bridge and the hosts of one cluster id; :meth:`create` and :meth:`destroy` them."""

    def __init__(self, cluster_id: str, names: Sequence[str]) -> None:
        if len(cluster_id) != 4 or any(c not in "0123456789abcdef" for c in cluster_id):
            raise StackError(f"a cluster id is 4 hex digits, not {cluster_id!r}")
        self.id = cluster_id
        self.subnet = subnet_of(cluster_id)
        self.bridge = f"e{cluster_id}br"
        base = self.subnet.network_address
        self.gateway = str(base + 1)
        self.hosts = {
            name: Host(
                name=name,
                namespace=f"{NAMESPACE_PREFIX}{cluster_id}-{name}",
                address=str(base + 10 + index),
                link=f"e{cluster_id}{name}"[:15],
            )
            for index, name in enumerate(names)
        }

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def exists(self) -> bool:
        return any(h.namespace in namespaces() for h in self.hosts.values())

    def create(self) -> None:
        """Create the bridge and every host; on any failure, remove what was made."""
        if str(self.subnet) in ip("route", "show"):
            raise StackError(f"subnet {self.subnet} is already routed on this machine")
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for host in self.hosts.values():
                self._create_host(host)
        except BaseException:
            self.destroy()
            raise

    def _create_host(self, host: Host) -> None:
        peer = f"{host.link}p"[:15]
        ip("netns", "add", host.namespace)
        ip("link", "add", host.link, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", host.namespace)
        ip("-n", host.namespace, "link", "set", peer, "name", "eth0")
        address = f"{host.address}/{self.subnet.prefixlen}"
        ip("-n", host.namespace, "addr", "add", address, "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        ip("link", "set", host.link, "master", self.bridge)
        ip("link", "set", host.link, "up")

    def destroy(self) -> None:
        """Kill every process on the hosts, delete the namespaces and the bridge. Safe to
        call on a half-made or already removed network."""
        for namespace in namespaces():
            if namespace.startswith(f"{NAMESPACE_PREFIX}{self.id}-"):
                destroy_namespace(namespace)
        for host in self.hosts.values():
            ip("link", "del", host.link, check=False)
        ip("link", "del", self.bridge, check=False)

    # --- faults ---------------------------------------------------------------------------

    def cut(self, name: str) -> None:
        """Take the host off the network (its cable pulled)."""
        ip("link", "set", self.hosts[name].link, "down")

    def reconnect(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "up")

    def partition(self, name: str, others: Iterable[str]) -> None:
        """Drop everything between ``name`` and each of ``others``, both ways."""
        host = self.hosts[name]
        for other in others:
            peer = self.hosts[other]
            ip("-n", host.namespace, "route", "replace", "blackhole", f"{peer.address}/32")
            ip("-n", peer.namespace, "route", "replace", "blackhole", f"{host.address}/32")

    def heal(self) -> None:
        """Remove every partition and bring every link up."""
        for host in self.hosts.values():
            for other in self.hosts.values():
                route = f"{other.address}/32"
                ip("-n", host.namespace, "route", "del", "blackhole", route, check=False)
            ip("link", "set", host.link, "up", check=False)


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def destroy_namespace(namespace: str) -> None:
    """SIGKILL whatever runs in the namespace, then delete it."""
    for _ in range(50):
        pids = [int(p) for p in ip("netns", "pids", namespace, check=False).split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    ip("netns", "del", namespace, check=False)


def destroy_all() -> list[str]:
    """Remove every cluster of this project on the machine (after a crashed run); return the
    ids removed."""
    ids = sorted(
        {
            n[len(NAMESPACE_PREFIX) :].split("-")[0]
            for n in namespaces()
            if n.startswith(NAMESPACE_PREFIX)
        }
    )
    for cluster_id in ids:
        with contextlib.suppress(StackError):
            Network(cluster_id, []).destroy()
    for line in ip("-br", "link", "show", "type", "bridge").splitlines():
        name = line.split()[0]
        if len(name) == 7 and name.startswith("e") and name.endswith("br"):
            ip("link", "del", name, check=False)  # a bridge left without its hosts
    return ids
