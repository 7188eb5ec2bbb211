"""The scenarios: load, faults while it runs, then the checker.

Each scenario is an async function of (cluster, nemesis, load, rng) that injects its faults
while the load generator keeps sending, repairs them, and returns its figures. Progress is
measured in acknowledged requests, never in sleeps: "20 more requests acknowledged while the
broker was cut off" is both the wait and the proof that writes carried on.

:func:`run` wraps one: start the load, wait for it to flow, run the faults, stop the load,
wait until every acknowledged request is terminal (the time to recover), give the janitor its
grace, and check. ``python -m deploy.local.cluster chaos --seed N`` runs a seeded mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from app.settings import Settings
from deploy.local.cluster.checker import (
    Checker,
    Report,
    http_api,
    longest_stall,
    read_jobs,
    wait_settled,
)
from deploy.local.cluster.cluster import API_KEY, ROOT, WORKERS, Cluster
from deploy.local.cluster.load import Load
from deploy.local.cluster.nemesis import Nemesis, wait_for

# Where a failed run's logs are copied (the cluster's own directory is emptied at its next
# start, and a test's is a temporary one).
EVIDENCE = ROOT / ".cluster" / "evidence"

Faults = Callable[[Cluster, Nemesis, Load, random.Random], Awaitable[dict[str, Any]]]

#: Worker settings the scenarios run with: failure detection in seconds rather than the
#: production defaults' tens of seconds, so that a scenario fits in a test; the janitor's
#: grace short enough to prove the sweep within the run.
TUNING: dict[str, Any] = {
    "tick_seconds": 1.0,
    "heartbeat_seconds": 0.5,
    "lease_seconds": 8.0,
    "consumer_session_timeout_seconds": 8.0,
    "janitor_grace_seconds": 5.0,
    # A partition whose commit stands still behind a message its stream skipped is sought
    # back within seconds rather than a minute.
    "watchdog_stall_seconds": 10.0,
}


async def more_acks(load: Load, count: int, limit: float = 90.0) -> None:
    """Until ``count`` more request ids are acknowledged than now."""
    await load.wait_acknowledged(len(load.ledger.acknowledged) + count, limit)


def running_generations(cluster: Cluster, host: str) -> float:
    """``exhaust_generations_running`` of the host's generator (0 when it does not answer)."""
    try:
        url = cluster.url(f"{host}-generator") + "/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("exhaust_generations_running "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def has_brokers(cluster: Cluster, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await cluster.broker_count() == count

    return check


async def restart_host(cluster: Cluster, nemesis: Nemesis, host: str) -> None:
    for role in ("processor", "generator"):
        nemesis.restart(f"{host}-{role}")
    deadline = time.monotonic() + 120
    await asyncio.to_thread(
        cluster.wait_ready, [f"{host}-processor", f"{host}-generator"], deadline
    )


# --- the scenarios ------------------------------------------------------------------------


async def broker_host_cut_off(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """The host of the broker coordinating the writers' consumer group (and leading a third
    of the partitions) drops off the network for the time the others need to take over, and
    comes back. Losing the coordinator is the harder case: every processor loses its
    heartbeats, and one that lost its session must stop deciding before another takes its
    partitions (app.stream.fence)."""
    victim = await nemesis.coordinator(cluster.settings().consumer_group)
    nemesis.cut(victim)
    started = time.monotonic()
    # Cut off past the controller's session (6 s) and the followers' lag limit (10 s), so
    # that leaders move and the ISR shrinks; writes carry on meanwhile.
    await asyncio.gather(more_acks(load, 40, limit=120), asyncio.sleep(15))
    acked_during = time.monotonic() - started
    nemesis.reconnect(victim)
    await wait_for(has_brokers(cluster, 3), 90, f"{victim} back in the cluster")
    await more_acks(load, 20)
    return {"victim": victim, "cut_seconds": round(acked_during, 1)}


async def leader_broker_killed(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """``kill -9`` of the broker leading ``exhaust.jobs``[0], restarted after the others
    carried on."""
    victim = await nemesis.leader(cluster.settings().topic("jobs"))
    nemesis.kill(victim)
    # Down past the controller's session (6 s): leadership moves, writes carry on.
    await asyncio.gather(more_acks(load, 40, limit=120), asyncio.sleep(10))
    nemesis.restart(victim)
    await wait_for(has_brokers(cluster, 3), 90, f"{victim} back in the cluster")
    await more_acks(load, 20)
    return {"victim": victim}


async def worker_host_killed(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """Both processes of a worker host ``kill -9``-ed while its generator is generating;
    the host comes back after the others took its partitions and redid its work."""
    victim = ""

    def generating() -> bool:
        nonlocal victim
        for host in rng.sample(WORKERS, len(WORKERS)):
            if running_generations(cluster, host) >= 1:
                victim = host
                return True
        return False

    await wait_for(generating, 60, "a generation in progress", interval=0.05)
    nemesis.kill(f"{victim}-generator")
    nemesis.kill(f"{victim}-processor")
    # Down past the consumer session (8 s): the others take its partitions and its work.
    await asyncio.gather(more_acks(load, 40), asyncio.sleep(10))
    await restart_host(cluster, nemesis, victim)
    await more_acks(load, 20)
    return {"victim": victim}


async def rolling_restart(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """Every worker host stopped (SIGTERM, as Kubernetes does) and started again, one at a
    time, each back and ready before the next goes: the upgrade procedure."""
    for host in WORKERS:
        for role in ("processor", "generator"):
            code = await asyncio.to_thread(cluster.procs[f"{host}-{role}"].stop, 60.0)
            nemesis.events.append(f"stopped {host}-{role} (exit {code})")
        await restart_host(cluster, nemesis, host)
        await more_acks(load, 10)
    return {"restarted": len(WORKERS) * 2}


async def object_store_down(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """The object store stopped for 30 s (acknowledged requests keep arriving meanwhile),
    then started again on the same data."""
    nemesis.kill("s3")
    await asyncio.sleep(30)  # the fault's length is the scenario, not a synchronisation
    nemesis.restart("s3")
    await wait_for(cluster.s3_ready, 60, "the object store back")
    await more_acks(load, 20)
    return {"down_seconds": 30}


async def slow_lossy_worker(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """One worker host on a slow link (up to 200 ms of delay, drops beyond it) under load."""
    victim = rng.choice(WORKERS)
    nemesis.slow_link(victim)
    await more_acks(load, 80, limit=180)
    nemesis.fast_link(victim)
    await more_acks(load, 10)
    return {"victim": victim}


async def scale_in_and_out(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """Workers 3 → 1 → 3 under load (clean stops, then starts)."""
    keep = rng.choice(WORKERS)
    others = [w for w in WORKERS if w != keep]
    for host in others:
        for role in ("processor", "generator"):
            await asyncio.to_thread(cluster.procs[f"{host}-{role}"].stop, 60.0)
            nemesis.events.append(f"scaled in {host}-{role}")
    await more_acks(load, 40)
    for host in others:
        await restart_host(cluster, nemesis, host)
    await more_acks(load, 40)
    return {"kept": keep}


async def api_host_cut_off(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """The API host cut off: reads fail (a client sees a connection error, never a wrong
    answer) while requests published to Kafka carry on."""
    api = http_api(cluster.api_url, API_KEY)
    nemesis.cut("api")
    status, _ = await api("/v1/jobs?limit=1")
    await more_acks(load, 40)
    nemesis.reconnect("api")
    await wait_for(lambda: cluster.ready("api"), 60, "the API ready again")
    return {"status_while_cut": status}


async def paused_processor(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """A processor frozen (SIGSTOP) past its session timeout, then continued: a zombie
    writer whose partitions moved on."""
    victim = f"{rng.choice(WORKERS)}-processor"
    nemesis.pause(victim)
    # Frozen past its consumer session (8 s): the group hands its partitions on meanwhile.
    await asyncio.gather(more_acks(load, 60), asyncio.sleep(12))
    nemesis.resume(victim)
    await more_acks(load, 20)
    return {"victim": victim}


async def worker_partitioned(
    cluster: Cluster, nemesis: Nemesis, load: Load, rng: random.Random
) -> dict[str, Any]:
    """A worker host partitioned from two of the three brokers, then healed."""
    victim = rng.choice(WORKERS)
    brokers = rng.sample(["k1", "k2", "k3"], 2)
    nemesis.partition(victim, brokers)
    await more_acks(load, 40)
    nemesis.heal_all()
    await more_acks(load, 20)
    return {"victim": victim, "from": brokers}


SCENARIOS: dict[str, Faults] = {
    "broker-host-cut-off": broker_host_cut_off,
    "leader-broker-killed": leader_broker_killed,
    "worker-host-killed": worker_host_killed,
    "rolling-restart": rolling_restart,
    "object-store-down": object_store_down,
    "slow-lossy-worker": slow_lossy_worker,
    "scale-3-1-3": scale_in_and_out,
    "api-host-cut-off": api_host_cut_off,
    "paused-processor": paused_processor,
    "worker-partitioned": worker_partitioned,
}


async def run(
    cluster: Cluster,
    name: str,
    seed: int,
    faults: list[Faults] | None = None,
    rate: float = 20.0,
    settle_limit: float = 360.0,
) -> Report:
    """One scenario (or ``faults`` in order, for a chaos mix) under load, then the checker.
    Healing runs even when a fault step fails, so the cluster is whole for the next run. A
    worker process that exits on its own meanwhile is started again, as its orchestrator
    would (:meth:`Cluster.supervise`), and counted in ``unplanned_restarts``."""
    settings: Settings = cluster.settings()
    nemesis = Nemesis(cluster)
    rng = random.Random(seed)
    steps = faults or [SCENARIOS[name]]
    figures: dict[str, Any] = {}
    started = time.monotonic()
    restarts: list[str] = []

    def restarted(what: str) -> None:
        restarts.append(what)
        nemesis.events.append(what)

    supervisor = asyncio.create_task(cluster.supervise(restarted))
    try:
        async with Load(settings, seed, rate=rate) as load:
            try:
                await load.wait_acknowledged(30)
                for step in steps:
                    figures[step.__name__] = await step(cluster, nemesis, load, rng)
            finally:
                nemesis.heal_all()
        load_ended_ms = int(time.time() * 1000)
        ledger = load.ledger
        recovered = await wait_settled(settings, ledger, settle_limit)
        stall = longest_stall(await read_jobs(settings), ledger, load_ended_ms)
        checker = Checker(settings, http_api(cluster.api_url, API_KEY))
        report = await checker.check(name, ledger)
        # The janitor sweeps dead attempts its grace after they ended, and the read model
        # trails the topic by a moment: give both a bounded time before the report is final.
        deadline = time.monotonic() + 60
        while not report.ok and time.monotonic() < deadline:
            await asyncio.sleep(2)
            report = await checker.check(name, ledger)
    finally:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
    report.figures.update(
        seed=seed,
        rate_per_second=rate,
        seconds=round(time.monotonic() - started, 1),
        seconds_to_settle_after_load=round(recovered, 1),
        longest_stall_after_load=round(stall, 1),
        unplanned_restarts=len(restarts),
        faults=nemesis.events,
        **{k: v for k, v in figures.items() if v},
    )
    if not report.ok:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = cluster.keep_logs(EVIDENCE / f"{stamp}-{name}-{seed}")
        report.figures["logs_kept_in"] = str(kept)
    return report


def chaos_mix(seed: int, length: int = 4) -> list[Faults]:
    """A seeded random sequence of scenarios' faults."""
    rng = random.Random(seed)
    return [SCENARIOS[name] for name in rng.sample(sorted(SCENARIOS), length)]
