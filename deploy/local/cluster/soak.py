"""The soak: many requests through the cluster, with every process's memory watched.

The resident memory (``VmRSS``) of every worker process is sampled every 10 s. Memory must
be bounded by configuration, not by the number of jobs (invariant 5): after a warm-up (the
first 20 % of the run: caches, read-model pages, RocksDB memtables filling), the median of
each process's last fifth of samples may exceed the median of its second fifth by at most
``tolerance`` (15 % by default).

A worker that exits on its own is started again, as in the scenarios (a processor exits on
purpose when it can no longer vouch for its writes), and counted in ``unplanned_restarts``;
its memory is judged per life (a series per process id), so a restart neither hides growth
before it nor counts as growth after it.

Every sample is also appended to ``rss.csv`` in the cluster's directory as it is taken, and
a progress line is printed every minute, so a run stopped early still tells what its memory
did. The memory verdict is printed before the checker runs.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from deploy.local.cluster.checker import Checker, Report, http_api, wait_settled
from deploy.local.cluster.cluster import API_KEY, Cluster
from deploy.local.cluster.load import Load

SAMPLE_SECONDS = 10.0
PROGRESS_EVERY = 6  # samples between two progress lines (a minute)
MIB = 1024 * 1024


async def soak(cluster: Cluster, requests: int, rate: float, tolerance: float) -> Report:
    settings = cluster.settings()
    samples: dict[str, list[int]] = {}
    lives: dict[str, tuple[int | None, int]] = {}  # process -> (its pid, which life)
    restarts: list[str] = []
    started = time.monotonic()

    trace = (cluster.directory / "rss.csv").open("a", buffering=1)  # a line at a time
    trace.write("seconds,process,rss_bytes\n")
    load: Load | None = None

    async def sample() -> None:
        rounds = 0
        while True:
            at = time.monotonic() - started
            for name, proc in cluster.procs.items():
                if name.startswith(("w", "api")):
                    rss = proc.rss_bytes()
                    pid, life = lives.get(name, (proc.pid, 1))
                    if pid != proc.pid:  # started again: a new life, a new series
                        life += 1
                    lives[name] = (proc.pid, life)
                    series = name if life == 1 else f"{name} (life {life})"
                    if rss:  # 0: not running at this instant (exited, not yet restarted)
                        samples.setdefault(series, []).append(rss)
                    trace.write(f"{at:.0f},{name},{rss}\n")
            if load is not None and rounds % PROGRESS_EVERY == 0:
                _, _, acknowledged = load.ledger.counts()
                top = max((values[-1] for values in samples.values()), default=0)
                print(
                    f"soak: {at:.0f}s, {acknowledged}/{requests} requests acknowledged, "
                    f"largest RSS {top / MIB:.0f} MiB",
                    flush=True,
                )
            rounds += 1
            await asyncio.sleep(SAMPLE_SECONDS)  # the sampling period, not a synchronisation

    sampler = asyncio.create_task(sample())
    supervisor = asyncio.create_task(cluster.supervise(restarts.append))
    try:
        async with Load(settings, seed=7, rate=rate, total=requests) as load:
            await load.finished.wait()
        ledger = load.ledger
        settled = await wait_settled(settings, ledger, 1800)
    finally:
        sampler.cancel()
        supervisor.cancel()
        trace.close()
    figures, grown = memory_verdict(samples, tolerance)
    for line in [*figures.values(), *grown] or ["no samples"]:
        print(f"soak memory: {line}", flush=True)
    checker = Checker(settings, http_api(cluster.api_url, API_KEY))
    report = await checker.check(f"soak-{requests}", ledger)
    report.figures.update(
        rate_per_second=rate,
        seconds=round(time.monotonic() - started, 1),
        seconds_to_settle_after_load=round(settled, 1),
        rss_tolerance=f"{tolerance:.0%}",
        unplanned_restarts=len(restarts),
        **figures,
    )
    for growth in grown:
        report.fail("memory_growth", growth)
    return report


def memory_verdict(
    samples: dict[str, list[int]], tolerance: float
) -> tuple[dict[str, str], list[str]]:
    """Per process, its memory in words; and the processes that grew past ``tolerance``."""
    figures, grown = {}, []
    for name, values in sorted(samples.items()):
        fifth = max(1, len(values) // 5)
        early = statistics.median(values[fifth : 2 * fifth] or values)
        late = statistics.median(values[-fifth:])
        figures[f"rss_{name}"] = (
            f"{values[0] / MIB:.0f} MiB at start, {early / MIB:.0f} after warm-up, "
            f"{late / MIB:.0f} at the end, peak {max(values) / MIB:.0f}"
        )
        if early and late > early * (1 + tolerance):
            grown.append(f"{name}: {early / MIB:.0f} → {late / MIB:.0f} MiB")
    return figures, grown
