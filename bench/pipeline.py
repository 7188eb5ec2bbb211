"""Pipeline benchmark: Exhaust's writer next to the framework's ceiling and a raw Kafka loop.

Run with ``make bench`` (starts the local stack) or ``python -m bench.pipeline`` against servers
named by the usual ``EXHAUST_*`` settings. Everything is measured in one run, on one broker:

* **raw** — plain aiokafka, batched the way a careful hand-written processor is: ``getmany`` →
  send every record → await the batch's deliveries → commit; 150-byte messages.
* **faust** — the framework's ceiling (:mod:`bench.faust_ceiling`): a bare Faust agent writing a
  RocksDB table and forwarding each event, in its own process.
* **exhaust** — ``exhaust worker --role processor`` in its own process: requests → SUBMITTED
  job records on ``exhaust.jobs`` (each also sends its work item).

Two figures for each:

* **throughput**: N messages are published *before* the processor starts; the rate is how fast
  it drains them, from the Kafka timestamps of its first and last output (start-up excluded);
* **paced latency**: with the processor running, messages are published at a steady rate
  (500/s by default) and each one's latency is publish → its output seen by a consumer
  (``fetch_max_wait_ms=5``); p50/p99 over the run.

Then **SUCCESS end to end** with the ``noop`` dataset type: one processor and G generator
processes (``--role generator``), a burst of requests, SUCCESS records per second, for each G
in ``--generators``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata

from app.domain.model import DatasetRequest
from app.settings import Settings
from app.stream.avro import registry
from app.stream.topics import TopicSpec, assign_all, ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = 150


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    paced_rate: float = 0.0


# --- shared helpers ---------------------------------------------------------------------------


async def producer(settings: Settings) -> AIOKafkaProducer:
    p = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5
    )
    await p.start()
    return p


async def publish(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    p = await producer(settings)
    try:
        for key, value in messages:
            await p.send(topic, value, key=key)
        await p.flush()
    finally:
        await p.stop()


async def follow(
    settings: Settings,
    topic: str,
    wanted: int,
    identify: Callable[[Any], str | None],
    timeout: float,
    on_first: Callable[[str, Any, float], None] | None = None,
    from_end: bool = False,
    started: asyncio.Event | None = None,
) -> dict[str, int]:
    """Read ``topic`` from the start (or its current end) until ``wanted`` distinct ids were
    seen; return each id's first record timestamp (ms). ``on_first`` sees each id's first
    record as it arrives."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
        # the same as the seek below: a reset requested on assignment can land after the seek
        auto_offset_reset="latest" if from_end else "earliest",
    )
    await consumer.start()
    seen: dict[str, int] = {}
    try:
        partitions = await assign_all(consumer, topic)
        if from_end:
            await consumer.seek_to_end(*partitions)
            for tp in partitions:  # resolve the positions now, before anything is published
                await consumer.position(tp)
        else:
            await consumer.seek_to_beginning(*partitions)
        if started is not None:
            started.set()
        deadline = time.monotonic() + timeout
        while len(seen) < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"saw {len(seen)}/{wanted} outputs on {topic} in {timeout}s")
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for message in (m for ms in batch.values() for m in ms):
                key = identify(message)
                if key is not None and key not in seen:
                    seen[key] = message.timestamp
                    if on_first is not None:
                        on_first(key, message, now)
    finally:
        await consumer.stop()
    return seen


def drain_rate(first_seen: dict[str, int]) -> float:
    stamps = sorted(first_seen.values())
    return (len(stamps) - 1) / max(0.001, (stamps[-1] - stamps[0]) / 1000)


async def paced(
    settings: Settings,
    send: Callable[[AIOKafkaProducer, str], Awaitable[None]],
    out_topic: str,
    identify: Callable[[Any], str | None],
    rate: float,
    seconds: float,
) -> Result:
    """Publish ids at ``rate``/s for ``seconds``; latency = publish → first output seen."""
    n = int(rate * seconds)
    ids = [f"p-{uuid.uuid4().hex[:12]}-{i}" for i in range(n)]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    seen_at: dict[str, float] = {}

    def observed(key: str, message: Any, now: float) -> None:
        if key in sent_at:
            latencies.append(now - sent_at[key])
            seen_at[key] = now

    wanted = set(ids)

    def mine(message: Any) -> str | None:
        key = identify(message)
        return key if key in wanted else None

    ready = asyncio.Event()
    follower = asyncio.create_task(
        follow(
            settings, out_topic, n, mine, timeout=seconds + 120, on_first=observed,
            from_end=True, started=ready,
        )
    )  # fmt: skip
    await ready.wait()
    p = await producer(settings)
    start = time.monotonic()
    try:
        for i, key in enumerate(ids):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[key] = time.time()
            await send(p, key)
        await p.flush()
        offered = n / (time.monotonic() - start)
    finally:
        await p.stop()
    await follower
    if os.environ.get("BENCH_TRACE"):
        order = {key: i for i, key in enumerate(ids)}
        pairs = sorted((order[k], t - sent_at[k]) for k, t in seen_at.items())
        for start_i in range(0, len(pairs), int(rate)):
            window = [lat for _, lat in pairs[start_i : start_i + int(rate)]]
            print(f"  second {start_i // int(rate)}: p50 {percentile(window, 0.5) * 1000:.0f} ms, "
                  f"max {max(window) * 1000:.0f} ms")  # fmt: skip
    return Result(
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        paced_rate=offered,
    )


async def warm_up(
    settings: Settings,
    send: Callable[[AIOKafkaProducer, str], Awaitable[None]],
    out_topic: str,
    identify: Callable[[Any], str | None],
    timeout: float = 120,
) -> None:
    """Send one message and wait for its output: the processor is up and assigned."""
    key = f"warm-{uuid.uuid4().hex[:8]}"
    p = await producer(settings)
    try:
        await send(p, key)
        await p.flush()
    finally:
        await p.stop()
    await follow(settings, out_topic, 1, lambda m: key if identify(m) == key else None, timeout)


PROFILE: Path | None = None  # --profile: run the exhaust processor under py-spy


def spawn(
    args: list[str], env: dict[str, str], log: Path, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, *args]
    if profile is not None:
        spy = Path(sys.executable).parent / "py-spy"
        command = [str(spy), "record", "--format", "raw", "--rate", "200", "--nonblocking",
                   "-o", str(profile), "--", *command]  # fmt: skip
    with log.open("ab") as handle:
        return subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- raw aiokafka -----------------------------------------------------------------------------


def raw_id(message: Any) -> str | None:
    return bytes(message.key).decode() if message.key else None


def raw_value(key: str) -> bytes:
    return key.encode().ljust(PAYLOAD, b".")


async def raw_loop(settings: Settings, src: str, dst: str, stop_when: asyncio.Event) -> None:
    """getmany → send all → await the batch's deliveries → commit."""
    consumer = AIOKafkaConsumer(
        src, bootstrap_servers=settings.kafka_bootstrap, group_id=f"{src}.loop",
        auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5000,
    )  # fmt: skip
    p = await producer(settings)
    await consumer.start()
    try:
        while not stop_when.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            futures = []
            for messages in batch.values():
                for message in messages:
                    futures.append(await p.send(dst, message.value, key=message.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit(
                    {tp: OffsetAndMetadata(ms[-1].offset + 1, "") for tp, ms in batch.items()}
                )
    finally:
        await consumer.stop()
        await p.stop()


async def bench_raw(settings: Settings, n: int, rate: float, seconds: float) -> Result:
    src, dst = settings.topic("raw-in"), settings.topic("raw-out")
    n_parts = settings.topic_partitions
    await ensure_topics(settings, [TopicSpec(src, n_parts), TopicSpec(dst, n_parts)])

    async def send(p: AIOKafkaProducer, key: str) -> None:
        await p.send(src, raw_value(key), key=key.encode())

    done = asyncio.Event()
    loop = asyncio.create_task(raw_loop(settings, src, dst, done))
    await warm_up(settings, send, dst, raw_id)
    result = await paced(settings, send, dst, raw_id, rate, seconds)
    done.set()
    await loop
    ids = [f"r-{i}" for i in range(n)]
    await publish(settings, src, [(k.encode(), raw_value(k)) for k in ids])
    done = asyncio.Event()
    loop = asyncio.create_task(raw_loop(settings, src, dst, done))
    wanted = set(ids)
    first = await follow(settings, dst, n, lambda m: k if (k := raw_id(m)) in wanted else None, 300)
    done.set()
    await loop
    result.rate = drain_rate(first)
    return result


# --- Faust ceiling ----------------------------------------------------------------------------


async def bench_faust(settings: Settings, n: int, rate: float, seconds: float) -> Result:
    src, dst = settings.topic("faust-in"), settings.topic("faust-out")
    n_parts = settings.topic_partitions
    await ensure_topics(settings, [TopicSpec(src, n_parts), TopicSpec(dst, n_parts)])
    env = {
        "BENCH_APP_ID": settings.topic("faust-ceiling"), "BENCH_BOOTSTRAP": settings.kafka_bootstrap,
        "BENCH_IN": src, "BENCH_OUT": dst, "BENCH_PARTITIONS": str(n_parts),
        "BENCH_STATE_DIR": str(settings.state_dir / "faust-ceiling"),
    }  # fmt: skip
    log = settings.state_dir / "faust-ceiling.log"

    async def send(p: AIOKafkaProducer, key: str) -> None:
        await p.send(src, raw_value(key), key=key.encode())

    return await steady_then_drain(
        settings,
        lambda: spawn(["-m", "bench.faust_ceiling"], env, log),
        send,
        dst,
        raw_id,
        [(f"f-{i}".encode(), raw_value(f"f-{i}")) for i in range(n)],
        {f"f-{i}" for i in range(n)},
        src,
        rate,
        seconds,
    )


async def steady_then_drain(
    settings: Settings,
    start: Callable[[], subprocess.Popen[bytes]],
    send: Callable[[AIOKafkaProducer, str], Awaitable[None]],
    out_topic: str,
    identify: Callable[[Any], str | None],
    backlog: list[tuple[bytes, bytes]],
    backlog_ids: set[str],
    in_topic: str,
    rate: float,
    seconds: float,
) -> Result:
    """Paced latency on an idle processor, then the drain rate of a backlog published while
    it was stopped (so neither measurement is disturbed by the other)."""
    proc = start()
    try:
        await warm_up(settings, send, out_topic, identify)
        result = await paced(settings, send, out_topic, identify, rate, seconds)
    finally:
        stop(proc)
    await publish(settings, in_topic, backlog)
    wanted = backlog_ids
    proc = start()
    try:
        first = await follow(
            settings, out_topic, len(backlog),
            lambda m: k if (k := identify(m)) in wanted else None, timeout=600,
        )  # fmt: skip
    finally:
        stop(proc)
    result.rate = drain_rate(first)
    return result


# --- Exhaust ----------------------------------------------------------------------------------


def request_value(request_id: str, dataset: str = "noop") -> tuple[bytes, bytes]:
    request = DatasetRequest(
        request_id=request_id, tag=f"tag-{request_id}", dataset=dataset, channel="bench",
        requested_by="bench", config="{}", submitted_at=int(time.time() * 1000),
    )  # fmt: skip
    return request.tag.encode(), registry().encode("DatasetRequest", request.to_record())


def job_id(message: Any) -> str | None:
    """The request id of a jobs record, from its key (``{channel}/{request_id}``)."""
    return bytes(message.key).decode().split("/", 1)[-1]


def succeeded_id(message: Any) -> str | None:
    record = registry().decode("JobStatus", message.value)
    return str(record["request_id"]) if record["status"] == "SUCCESS" else None


def worker(
    settings: Settings, name: str, role: str, profile: Path | None = None, **extra: Any
) -> subprocess.Popen[bytes]:
    env = settings.model_copy(
        update={"state_dir": settings.state_dir / name, "http_port": _ports.pop(), **extra}
    ).as_env()
    return spawn(
        ["-m", "app", "worker", "--role", role, "--loglevel", "warn"], env,
        settings.state_dir / f"{name}.log", profile,
    )  # fmt: skip


_ports = list(range(18100, 18140))


async def bench_exhaust(settings: Settings, n: int, rate: float, seconds: float) -> Result:
    await ensure_topics(settings)
    runs = iter(("steady", "drain"))

    def start() -> subprocess.Popen[bytes]:
        run = next(runs)
        profile = PROFILE / f"exhaust-processor-{run}.txt" if PROFILE else None
        return worker(settings, "processor", "processor", profile)

    async def send(p: AIOKafkaProducer, key: str) -> None:
        tag, value = request_value(key)
        await p.send(settings.topic("requests"), value, key=tag)

    return await steady_then_drain(
        settings, start, send, settings.topic("jobs"), job_id,
        [request_value(f"x-{i}") for i in range(n)], {f"x-{i}" for i in range(n)},
        settings.topic("requests"), rate, seconds,
    )  # fmt: skip


async def bench_success(settings: Settings, n: int, generators: int) -> float:
    """SUCCESS/s with the noop type: one processor, ``generators`` generator processes."""
    name = f"{settings.topic_prefix}-g{generators}"
    settings = settings.model_copy(
        update={
            "topic_prefix": name, "consumer_group": name, "s3_bucket": name,
            "state_dir": settings.state_dir / name,
        }
    )  # fmt: skip
    await ensure_topics(settings)
    procs = [worker(settings, "processor", "processor")]
    procs += [
        worker(settings, f"gen-{i}", "generator", generator_concurrency=16)
        for i in range(generators)
    ]
    try:

        async def send(p: AIOKafkaProducer, key: str) -> None:
            tag, value = request_value(key)
            await p.send(settings.topic("requests"), value, key=tag)

        await warm_up(settings, send, settings.topic("jobs"), succeeded_id, timeout=180)
        ids = [f"s-{i}" for i in range(n)]
        await publish(settings, settings.topic("requests"), [request_value(k) for k in ids])
        wanted = set(ids)
        first = await follow(
            settings, settings.topic("jobs"), n,
            lambda m: k if (k := succeeded_id(m)) in wanted else None, timeout=900,
        )  # fmt: skip
        return drain_rate(first)
    finally:
        for proc in procs:
            stop(proc)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="messages per throughput run")
    parser.add_argument("--raw-n", type=int, default=100_000, help="messages for the raw loop")
    parser.add_argument("--rate", type=float, default=500, help="paced load, messages/s")
    parser.add_argument("--seconds", type=float, default=10, help="length of the paced run")
    parser.add_argument("--success-n", type=int, default=3000, help="requests for SUCCESS/s")
    parser.add_argument("--generators", default="1,2", help="generator process counts")
    parser.add_argument("--only", default="raw,faust,exhaust,success")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--profile", type=Path, help="py-spy the exhaust processor into DIR")
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    if PROFILE:
        PROFILE.mkdir(parents=True, exist_ok=True)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings().model_copy(
        update={
            "topic_prefix": name, "consumer_group": name, "s3_bucket": name,
            "state_dir": ROOT / ".state" / name,
        }
    )  # fmt: skip
    only = set(args.only.split(","))
    results: dict[str, Any] = {}
    if "raw" in only:
        results["raw"] = await bench_raw(settings, args.raw_n, args.rate, args.seconds)
    if "faust" in only:
        results["faust"] = await bench_faust(settings, args.n, args.rate, args.seconds)
    if "exhaust" in only:
        results["exhaust"] = await bench_exhaust(settings, args.n, args.rate, args.seconds)
    if "success" in only:
        for g in (int(x) for x in args.generators.split(",")):
            results[f"success_g{g}"] = await bench_success(settings, args.success_n, g)

    print(f"\n{settings.topic_partitions} partitions, broker {settings.kafka_bootstrap}, "
          f"paced at {args.rate:.0f}/s for {args.seconds:.0f}s")  # fmt: skip
    print(f"{'':44}{'drain/s':>10}{'paced p50':>11}{'paced p99':>11}")
    labels = {
        "raw": f"raw aiokafka batched loop (N={args.raw_n})",
        "faust": f"Faust agent + table write (N={args.n})",
        "exhaust": f"exhaust publish→SUBMITTED (N={args.n})",
    }
    for key, label in labels.items():
        if key in results:
            r = results[key]
            print(f"{label:44}{r.rate:10.0f}{r.p50_ms:9.1f}ms{r.p99_ms:9.1f}ms")
    if "faust" in results and "exhaust" in results:
        ratio = results["exhaust"].rate / results["faust"].rate
        print(f"exhaust / Faust ceiling throughput: {ratio:.2f}")
    for key, value in results.items():
        if key.startswith("success_g"):
            print(f"exhaust SUCCESS/s, noop type, {key[9:]} generator process(es): {value:.0f}")
    if args.json:
        plain = {k: (v.__dict__ if isinstance(v, Result) else v) for k, v in results.items()}
        args.json.write_text(json.dumps(plain, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
