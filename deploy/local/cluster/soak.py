"""The soak: many requests through the cluster, with every process's memory watched.

The resident memory (``VmRSS``) of every worker process is sampled every 10 s. Memory must
be bounded by configuration, not by the number of jobs (invariant 5): after a warm-up (the
first 20 % of the run: caches, read-model pages, RocksDB memtables filling), the median of
each process's last fifth of samples may exceed the median of its second fifth by at most
``tolerance`` (15 % by default). A process restarted by nothing (none is, here) keeps its
samples comparable. The checker runs at the end, as after every scenario.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from deploy.local.cluster.checker import Checker, Report, http_api, wait_settled
from deploy.local.cluster.cluster import API_KEY, Cluster
from deploy.local.cluster.load import Load

SAMPLE_SECONDS = 10.0


async def soak(cluster: Cluster, requests: int, rate: float, tolerance: float) -> Report:
    settings = cluster.settings()
    samples: dict[str, list[int]] = {}
    started = time.monotonic()

    async def sample() -> None:
        while True:
            for name, proc in cluster.procs.items():
                if name.startswith(("w", "api")):
                    samples.setdefault(name, []).append(proc.rss_bytes())
            await asyncio.sleep(SAMPLE_SECONDS)  # the sampling period, not a synchronisation

    sampler = asyncio.create_task(sample())
    try:
        async with Load(settings, seed=7, rate=rate, total=requests) as load:
            await load.finished.wait()
        ledger = load.ledger
        settled = await wait_settled(settings, ledger, 1800)
    finally:
        sampler.cancel()
    checker = Checker(settings, http_api(cluster.api_url, API_KEY))
    report = await checker.check(f"soak-{requests}", ledger)
    report.figures.update(
        rate_per_second=rate,
        seconds=round(time.monotonic() - started, 1),
        seconds_to_settle_after_load=round(settled, 1),
        rss_tolerance=f"{tolerance:.0%}",
    )
    for name, values in sorted(samples.items()):
        fifth = max(1, len(values) // 5)
        early = statistics.median(values[fifth : 2 * fifth] or values)
        late = statistics.median(values[-fifth:])
        mib = 1024 * 1024
        report.figures[f"rss_{name}"] = (
            f"{values[0] / mib:.0f} MiB at start, {early / mib:.0f} after warm-up, "
            f"{late / mib:.0f} at the end, peak {max(values) / mib:.0f}"
        )
        if early and late > early * (1 + tolerance):
            report.fail("memory_growth", f"{name}: {early / mib:.0f} → {late / mib:.0f} MiB")
    return report
