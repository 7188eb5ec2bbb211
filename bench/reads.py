"""Status reads: the read model rebuilt from a big jobs topic, then HTTP load from hey.

Run with ``make bench`` (starts the local stack) or ``python -m bench.reads``. In one run:

1. ``--records`` JobStatus records (SUCCESS, two outputs each, like real ones, with the keys and
   headers the writer gives them) are written to a fresh ``jobs`` topic, over ``--channels``
   channels;
2. **rebuild**: an ``exhaust worker --role api`` starts on that topic with an empty state
   directory; the figure is the time from its start to ``/readyz`` = 200 (its read model has
   caught up with every partition), and the records per second that makes;
3. **HTTP**: from a second process, hey (``go install github.com/rakyll/hey@latest``, fetched
   here if missing) loads ``GET /healthz`` (the same server's ceiling), ``GET /v1/jobs/{id}`` of
   a SUCCESS job and ``GET /v1/jobs?limit=20`` for ``--seconds`` with ``--concurrency``
   connections; requests/s and p50/p99 as hey reports.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from app.domain.model import Job, OutputFile, job_key
from app.settings import Settings
from app.stream.avro import registry
from app.stream.cloud_events import job_headers
from app.stream.job_columns import SUBMITTED_AT_HEADER
from app.stream.topics import ensure_topics
from bench.pipeline import ROOT, spawn, stop


def record(i: int, channels: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of the ``i``-th job, as the writer sends them."""
    channel = f"ch-{i % channels}"
    request_id = f"{i:032X}"
    prefix = f"{channel}/demo-export/{request_id}/1/"
    job = Job(
        request_id=request_id, tag=f"tag-{i % 5000}", dataset="demo-export", channel=channel,
        requested_by="bench", status="SUCCESS", last_updated=1_700_000_000_000 + i,
        config='{"rows": 100}', fingerprint=f"{i:064x}", attempt=1, max_attempts=3,
        submitted_at=1_700_000_000_000 + i, partition=i % 6, attempts=1, progress=1.0,
        outputs=[
            OutputFile(prefix + "data.csv", 100, 2900, "a" * 64, None, "text/csv"),
            OutputFile(prefix + "summary.json", 1, 240, "b" * 64, None, "application/json"),
        ],
        manifest_key=prefix + "manifest.json", expires_at=1_900_000_000_000,
        completed_at=1_700_000_000_500 + i, execution_ms=480, total_rows=100,
        total_bytes=3140, total_columns=4,
    )  # fmt: skip
    value = registry().encode("JobStatus", job.to_record())
    return job_key(channel, request_id).encode(), value, job_headers(job, value)


async def fill(settings: Settings, n: int, channels: int, plain: bool = False) -> float:
    """Write ``n`` records; ``plain``: without the ``exhaust-submitted-at`` header (records
    written before it existed, which the read model decodes with fastavro)."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, max_batch_size=512 * 1024,
        compression_type="lz4" if _has_lz4() else None,
    )  # fmt: skip
    await producer.start()
    start = time.monotonic()
    try:
        for i in range(n):
            key, value, headers = record(i, channels)
            if plain:
                headers = [(name, v) for name, v in headers if name != SUBMITTED_AT_HEADER]
            await producer.send(settings.topic("jobs"), value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()
    return time.monotonic() - start


def _has_lz4() -> bool:
    import importlib.util

    return importlib.util.find_spec("lz4") is not None


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError("the api worker exited while rebuilding")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"not ready after {timeout}s")


def hey_binary() -> str:
    found = shutil.which("hey") or str(Path.home() / "go" / "bin" / "hey")
    if not Path(found).exists():
        subprocess.run(["go", "install", "github.com/rakyll/hey@latest"], check=True)
    return found


def hey(url: str, channel: str, seconds: float, concurrency: int) -> dict[str, float]:
    out = subprocess.run(
        [hey_binary(), "-z", f"{seconds}s", "-c", str(concurrency), "-H", f"X-Channel-ID: {channel}",
         url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # hey prints "50%% in 0.0012 secs".
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1))  # type: ignore[union-attr]
    statuses = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    bad = sum(int(n) for code, n in statuses if code != "200")
    if bad:
        raise RuntimeError(f"{bad} non-200 answers from {url}:\n{out}")
    return {"rate": rate, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--plain-records", action="store_true",
        help="records without the exhaust-submitted-at header: the rebuild decodes each",
    )  # fmt: skip
    args = parser.parse_args()
    name = f"bench-reads-{uuid.uuid4().hex[:8]}"
    state = ROOT / ".state" / name
    settings = Settings().model_copy(
        update={"topic_prefix": name, "consumer_group": name, "s3_bucket": name,
                "state_dir": state, "http_port": 18199}
    )  # fmt: skip
    filled = await fill(settings, args.records, args.channels, args.plain_records)
    print(f"wrote {args.records} JobStatus records in {filled:.1f}s")
    env = {**settings.as_env(), "EXHAUST_STATE_DIR": str(state / "api")}
    proc = spawn(["-m", "app", "worker", "--role", "api", "--loglevel", "warn"], env,
                 state / "api.log")  # fmt: skip
    url = f"http://127.0.0.1:{settings.http_port}"
    try:
        rebuilt = wait_ready(url, proc, timeout=600)
        print(f"ready after {rebuilt:.1f}s", flush=True)
        job_url = f"{url}/v1/jobs/{7:032X}"  # channel ch-7
        # The same server's cheapest route: the ceiling a status read is measured against.
        health = hey(f"{url}/healthz", "ch-7", args.seconds, args.concurrency)
        get = hey(job_url, "ch-7", args.seconds, args.concurrency)
        listing = hey(f"{url}/v1/jobs?limit=20", "ch-7", args.seconds, args.concurrency)
    finally:
        stop(proc)
    print(f"\nread model rebuilt from {args.records} records: ready in {rebuilt:.1f}s "
          f"({args.records / rebuilt:,.0f} records/s; includes worker start-up)")  # fmt: skip
    print(f"hey -z {args.seconds:.0f}s -c {args.concurrency}, one api worker:")
    print(f"  GET /healthz (the ceiling):            {health['rate']:8.0f} req/s   "
          f"p50 {health['p50_ms']:.1f} ms   p99 {health['p99_ms']:.1f} ms")  # fmt: skip
    print(f"  GET /v1/jobs/{{id}} (SUCCESS, 2 links): {get['rate']:8.0f} req/s   "
          f"p50 {get['p50_ms']:.1f} ms   p99 {get['p99_ms']:.1f} ms   "
          f"({get['rate'] / health['rate']:.2f}x /healthz)")  # fmt: skip
    print(f"  GET /v1/jobs?limit=20:                 {listing['rate']:8.0f} req/s   "
          f"p50 {listing['p50_ms']:.1f} ms   p99 {listing['p99_ms']:.1f} ms")  # fmt: skip
    shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
