"""Drives real worker processes and reads real topics for the integration tests."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import fastavro
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.domain.model import DatasetRequest
from app.settings import Settings
from app.stream.avro import SCHEMA_DIR, registry
from app.stream.topics import assign_all

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.25
) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


class Worker:
    """One ``python -m app worker`` process with its own HTTP port and state directory."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        faults: dict[str, int] | None = None,
        role: str = "all",
        env: dict[str, str] | None = None,
    ) -> None:
        self.faults = faults  # see tests/integration/faulty_worker.py
        self.role = role
        self.env = env or {}  # more of the process's environment (OTEL_* variables)
        self.settings = settings.model_copy(
            update={"http_port": free_port(), "state_dir": settings.state_dir / name}
        )
        self.name = name
        self.log_path = settings.state_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def start(self) -> Worker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.as_env(), **self.env}
        module = "app"
        if self.faults:
            env["EXHAUST_TEST_FAULTS"] = json.dumps(self.faults)
            module = "tests.integration.faulty_worker"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "worker", "--loglevel", "info", "--role", self.role],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        return self

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def wait_ready(self, timeout: float = 90) -> None:
        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited {self.proc.returncode}:\n{self.log_tail()}"
                )
            status, _ = await self.get("/readyz")
            return status == 200

        await eventually(ready, timeout, f"{self.name} to be ready")

    async def get(self, path: str, channel: str | None = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self._request, "GET", path, channel, None)

    async def post(self, path: str, body: Any, channel: str | None = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self._request, "POST", path, channel, body)

    def _request(self, method: str, path: str, channel: str | None, body: Any) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if channel:
            headers["X-Channel-ID"] = channel
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except (urllib.error.URLError, ConnectionError):
            return 0, None
        try:
            return status, json.loads(raw)
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGINT, as Ctrl-C would; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)


def download(url: str) -> bytes:
    """GET a (presigned or plain) link, as a client would."""
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
    return data


def request(tag: str, channel: str = "acme", **kw: Any) -> DatasetRequest:
    values: dict[str, Any] = {
        "tag": tag, "dataset": "demo-export", "channel": channel, "requested_by": "tester",
        "config": '{"rows": 20}', "submitted_at": int(time.time() * 1000),
    }  # fmt: skip
    values.update(kw)
    return DatasetRequest(**values)


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5
        )

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def raw(self, key: bytes, value: bytes, topic: str = "requests") -> None:
        await self.producer.send(self.settings.topic(topic), value, key=key)

    async def request(self, req: DatasetRequest) -> None:
        await self.raw(req.tag.encode(), registry().encode("DatasetRequest", req.to_record()))

    async def flush(self) -> None:
        await self.producer.flush()


async def read_topic(settings: Settings, name: str) -> list[Any]:
    """Every record of a topic, from the beginning to its current end."""
    topic = settings.topic(name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a reset on assignment must not land after the seek
    )
    await consumer.start()
    try:
        partitions = await assign_all(consumer, topic)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            records += [m for ms in batch.values() for m in ms]
        return records
    finally:
        await consumer.stop()


def plain_fastavro_job_status(value: bytes) -> dict[str, Any]:
    """Decode a jobs record with nothing but fastavro and schemas/JobStatus.avsc."""
    schema = json.loads((SCHEMA_DIR / "JobStatus.avsc").read_text())
    assert value[:2] == b"\xc3\x01", "not single-object encoded"
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), fastavro.parse_schema(schema))
    return cast(dict[str, Any], record)


async def all_jobs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every job's latest record, by its key in the topic (``{channel}/{request_id}``)."""
    latest: dict[str, dict[str, Any]] = {}
    for message in await read_topic(settings, "jobs"):
        if message.value is None:  # a tombstone
            latest.pop(message.key.decode(), None)
        else:
            latest[message.key.decode()] = plain_fastavro_job_status(message.value)
    return latest


async def latest_jobs(settings: Settings, channel: str = "acme") -> dict[str, dict[str, Any]]:
    """The latest record of every job of ``channel``, by request id."""
    return {
        job["request_id"]: job
        for job in (await all_jobs(settings)).values()
        if job["channel"] == channel
    }


async def start_worker(
    workers: list[Worker], settings: Settings, name: str, faults: dict[str, int] | None = None
) -> Worker:
    """Start a worker, remember it in ``workers`` (the fixture kills leftovers), wait ready."""
    worker = Worker(settings, name, faults).start()
    workers.append(worker)
    await worker.wait_ready()
    return worker


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value in Prometheus text (labels in any order), 0 when absent."""
    pairs = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        sample_name, _, rest = sample.partition("{")
        if sample_name == name and set(filter(None, rest.rstrip("}").split(","))) == pairs:
            return float(value)
    return 0.0
