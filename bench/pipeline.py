"""Pipeline benchmark: Exhaust end to end next to a raw aiokafka loop on the same broker.

Run with ``make bench`` (starts the local stack) or ``python -m bench.pipeline`` against servers
named by the usual ``EXHAUST_*`` settings. It measures, in one run:

* **baseline** — a plain aiokafka consume-and-produce loop (one consumer, idempotent producer,
  awaiting each send like the state machine does) forwarding N small messages from one topic to
  another: messages/s, and p50/p99 publish→forwarded latency;
* **exhaust** — one worker process: N requests (distinct tags) published; requests/s and
  p50/p99 publish→SUBMITTED latency read off ``exhaust.jobs``, plus requests/s to SUCCESS
  (which includes generating and uploading each dataset);

and prints the ratios exhaust/baseline. Figures go into docs/benchmarks.md with this command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.avro import registry
from app.model import DatasetRequest, Job
from app.settings import Settings
from app.topics import TopicSpec, assign_all, ensure_topics

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def tail(settings: Settings, topic: str, until: Any, on_message: Any, timeout: float) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.seek_to_beginning(*await assign_all(consumer, topic))
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"benchmark did not finish reading {topic} in {timeout}s")
            batch = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for messages in batch.values():
                for message in messages:
                    on_message(message, now)
    finally:
        await consumer.stop()


async def baseline(settings: Settings, n: int) -> dict[str, float]:
    """Raw aiokafka: consume from `in`, produce to `out`, awaiting each send."""
    src, dst = settings.topic("bench-in"), settings.topic("bench-out")
    await ensure_topics(
        settings,
        [TopicSpec(src, settings.topic_partitions), TopicSpec(dst, settings.topic_partitions)],
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    consumer = AIOKafkaConsumer(
        src, bootstrap_servers=settings.kafka_bootstrap, group_id=settings.topic("bench-loop"),
        auto_offset_reset="earliest", enable_auto_commit=True,
    )  # fmt: skip
    await consumer.start()
    forwarded = 0

    async def loop() -> None:
        nonlocal forwarded
        while forwarded < n:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    await producer.send_and_wait(dst, message.value, key=message.key)
                    forwarded += 1

    sent_at: dict[int, float] = {}
    seen: dict[int, float] = {}
    forwarder = asyncio.create_task(loop())
    start = time.monotonic()
    for i in range(n):
        sent_at[i] = time.monotonic()
        await producer.send(src, struct.pack(">q", i), key=f"tag-{i}".encode())
    await producer.flush()
    await tail(
        settings, dst, lambda: len(seen) >= n,
        lambda m, now: seen.setdefault(struct.unpack(">q", m.value)[0], now), timeout=300,
    )  # fmt: skip
    elapsed = max(seen.values()) - start
    await forwarder
    await consumer.stop()
    await producer.stop()
    latencies = [seen[i] - sent_at[i] for i in range(n)]
    return {
        "rate": n / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("worker exited during start-up")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        await asyncio.sleep(0.25)
    raise TimeoutError("worker not ready")


async def exhaust(settings: Settings, n: int, state_dir: Path) -> dict[str, float]:
    env = {**os.environ, **settings.as_env(), "EXHAUST_STATE_DIR": str(state_dir)}
    log = (state_dir.parent / "bench-worker.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "worker", "--loglevel", "warn"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await wait_ready(f"http://127.0.0.1:{settings.http_port}", proc)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=2
        )
        await producer.start()
        sent_at: dict[str, float] = {}
        submitted: dict[str, float] = {}
        succeeded: dict[str, float] = {}
        start = time.monotonic()
        for i in range(n):
            request_id = f"bench-{i}"
            request = DatasetRequest(
                request_id=request_id, tag=f"tag-{i}", dataset="demo-export", channel="bench",
                requested_by="bench", config='{"rows": 1}', submitted_at=int(time.time() * 1000),
            )  # fmt: skip
            sent_at[request_id] = time.monotonic()
            await producer.send(
                settings.topic("requests"),
                registry().encode("DatasetRequest", request.to_record()),
                key=request.tag.encode(),
            )
        await producer.flush()
        await producer.stop()

        def observe(message: Any, now: float) -> None:
            job = Job.from_record(registry().decode("JobStatus", message.value))
            submitted.setdefault(job.request_id, now)
            if job.status == "SUCCESS":
                succeeded.setdefault(job.request_id, now)

        await tail(settings, settings.topic("jobs"), lambda: len(succeeded) >= n, observe, 900)
        latencies = [submitted[r] - sent_at[r] for r in sent_at]
        return {
            "rate": n / (max(submitted.values()) - start),
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "success_rate": n / (max(succeeded.values()) - start),
        }
    finally:
        proc.send_signal(2)
        proc.wait(timeout=60)
        log.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="messages / requests per run")
    args = parser.parse_args()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings().model_copy(
        update={"topic_prefix": name, "consumer_group": name, "s3_bucket": name, "http_port": 18081}
    )
    state_dir = ROOT / ".state" / name
    base = await baseline(settings, args.n)
    ours = await exhaust(settings, args.n, state_dir)
    print(
        f"\nN = {args.n}, {settings.topic_partitions} partitions, broker {settings.kafka_bootstrap}"
    )
    print(f"{'':34}{'per second':>12}{'p50 ms':>10}{'p99 ms':>10}")
    print(
        f"{'baseline aiokafka consume→produce':34}{base['rate']:12.0f}{base['p50_ms']:10.1f}{base['p99_ms']:10.1f}"
    )
    print(
        f"{'exhaust publish→SUBMITTED':34}{ours['rate']:12.0f}{ours['p50_ms']:10.1f}{ours['p99_ms']:10.1f}"
    )
    print(f"{'exhaust publish→SUCCESS (1 worker)':34}{ours['success_rate']:12.1f}")
    print(f"ratio exhaust/baseline: throughput {ours['rate'] / base['rate']:.2f}, "
          f"p50 latency {ours['p50_ms'] / base['p50_ms']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
