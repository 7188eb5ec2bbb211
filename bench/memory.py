"""Memory over many jobs: one ``exhaust worker`` (role ``all``, default settings) against the
local stack, N small jobs published up front, the worker's RSS sampled as they complete.

Invariant 5 says a worker's memory is bounded by configuration, not by the number of jobs it
has seen: the RSS should rise to a plateau while the first jobs are served and stay there.

    make up
    .venv/bin/python -m bench.memory --jobs 20000 --every 2000

Results in docs/benchmarks.md ("Memory over 20,000 jobs").
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

from app.settings import Settings
from tests.conftest import TEST_SECRETS_KEY
from tests.integration.harness import Publisher, Worker, metric, request


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmRSS")


async def run(jobs: int, every: int, dataset: str, rows: int) -> None:
    name = "mem-" + uuid.uuid4().hex[:6]
    settings = Settings(
        topic_prefix=name,
        consumer_group=name,
        s3_bucket=name,
        state_dir=Path(".state") / name,
        secrets_key=TEST_SECRETS_KEY,
    )
    worker = Worker(settings, "w").start()
    try:
        await worker.wait_ready()
        assert worker.proc is not None
        pid = worker.proc.pid
        print(f"ready: RSS {rss_mib(pid)} MiB", flush=True)
        async with Publisher(settings) as publisher:
            for i in range(jobs):
                await publisher.request(
                    request(f"t{i % 500}", request_id=f"r{i}", dataset=dataset,
                            config=f'{{"rows": {rows}}}')
                )  # fmt: skip
            await publisher.flush()
        started, last = time.monotonic(), -1
        while True:
            _, text = await worker.get("/metrics")
            done = int(metric(text, "exhaust_transitions_total", outcome="succeeded"))
            if done // every != last // every:
                elapsed = time.monotonic() - started
                print(f"{elapsed:6.0f} s  {done:7d} SUCCESS  RSS {rss_mib(pid)} MiB", flush=True)
                last = done
            if done >= jobs:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(30)
        print(f"idle 30 s later: RSS {rss_mib(pid)} MiB", flush=True)
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=2_000, help="print every N jobs")
    parser.add_argument("--dataset", default="demo-export")
    parser.add_argument("--rows", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(args.jobs, args.every, args.dataset, args.rows))


if __name__ == "__main__":
    main()
