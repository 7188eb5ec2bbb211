"""One protocol for any checkout: the drain rate of publish→SUBMITTED, under py-spy.

``python -m bench.before_after CHECKOUT [-n 5000] [--dataset demo-export] [--profile FILE]``
publishes N requests while no worker runs, then starts one worker of CHECKOUT (``python -m app
worker``, role all, as before roles existed) under ``py-spy record --format raw``, and reports
how fast it turned them into SUBMITTED jobs (Kafka timestamps of the first and last, start-up
excluded). Used for the before/after figures of docs/benchmarks.md: run it once on an old
checkout (``git worktree add /tmp/before <commit>``) and once on this one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from app.settings import Settings
from app.stream.topics import ensure_topics
from bench.pipeline import ROOT, drain_rate, follow, job_id, publish, request_value, stop


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--dataset", default="demo-export", help="a type both versions know")
    parser.add_argument("--profile", type=Path, default=Path("/tmp/exhaust-profile.txt"))
    args = parser.parse_args()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings().model_copy(
        update={"topic_prefix": name, "consumer_group": name, "s3_bucket": name,
                "state_dir": ROOT / ".state" / name, "http_port": 18188}
    )  # fmt: skip
    await ensure_topics(settings)
    requests = [request_value(f"x-{i}", args.dataset) for i in range(args.n)]
    await publish(settings, settings.topic("requests"), requests)
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--format", "raw", "--rate", "200", "--nonblocking",
               "-o", str(args.profile), "--", sys.executable, "-m", "app", "worker",
               "--loglevel", "warn"]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=args.checkout, env={**os.environ, **settings.as_env()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        first = await follow(settings, settings.topic("jobs"), args.n, job_id, timeout=900)
    finally:
        stop(proc)
    print(f"{args.checkout}: publish→SUBMITTED drain {drain_rate(first):.0f}/s (N={args.n}); "
          f"profile {args.profile}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
