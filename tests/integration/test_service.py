"""The worker and `make run` as a user drives them: start, ready, Ctrl-C, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.topics import TopicSpec, ensure_topics
from deploy.local.stack import port_is_free
from tests.integration.harness import ROOT, Worker, eventually, free_port, metric

pytestmark = pytest.mark.integration


async def test_worker_answers_health_and_stops_cleanly_on_sigint(
    settings_factory: Callable[..., Settings],
) -> None:
    worker = Worker(settings_factory(), "w").start()
    try:
        await worker.wait_ready()
        assert await worker.get("/healthz") == (200, {"status": "alive"})
        status, ready = await worker.get("/readyz")
        assert status == 200 and ready["status"] == "ready"
        assert set(ready["checks"]) == {"topics", "bucket", "worker"}
        status, body = await worker.get("/v1/jobs")
        assert status == 403 and body["error"]["code"] == "ACCESS_DENIED"
    finally:
        code = worker.stop()
    assert code == 0
    assert port_is_free(worker.settings.http_port)


async def test_worker_refuses_to_start_on_a_broken_topic_layout(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    await ensure_topics(settings, [TopicSpec(settings.topic("job-events"), 1)])
    result = subprocess.run(
        [sys.executable, "-m", "app", "worker"],
        cwd=ROOT, env={**os.environ, **settings.as_env()},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 9  # a configuration error
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error [TOPIC_LAYOUT_ERROR]: refusing to start")
    assert settings.topic("job-events") in last_line


def stack_processes(marker: str) -> list[int]:
    """Pids of processes whose command line mentions ``marker`` (our stack directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                pids.append(int(entry.name))
    return pids


async def test_make_run_starts_everything_and_ctrl_c_leaves_nothing_behind(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    stack_dir = tmp_path / "run-stack"
    kafka, controller, s3 = free_port(), free_port(), free_port()
    settings = settings_factory(
        stack_dir=stack_dir, cache_dir=ROOT / ".cache",
        stack_kafka_port=kafka, stack_controller_port=controller, stack_s3_port=s3,
        kafka_bootstrap=f"127.0.0.1:{kafka}", s3_endpoint=f"http://127.0.0.1:{s3}",
    )  # fmt: skip
    worker = Worker(settings, "run")  # only for its port, URL and HTTP helpers
    env = {**os.environ, **worker.settings.as_env()}
    command = [
        sys.executable,
        "-m",
        "deploy.local.stack",
        "run",
        "--",
        sys.executable,
        "-m",
        "app",
        "worker",
    ]
    # A terminal's Ctrl-C signals the whole foreground process group: start one of our own.
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:

        async def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode() if proc.stdout else "exited")
            status, _ = await worker.get("/readyz")
            return status == 200

        await eventually(ready, 120, "make run to be ready")
        assert stack_processes(str(stack_dir)), "the stack's servers should be running"
        # A second make run in the same folder refuses at once, in one line, touching nothing.
        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith("error [STACK_ERROR]: a worker is already running on")
        assert len(second.stderr.strip().splitlines()) == 1
        still, _ = await worker.get("/readyz")
        assert still == 200  # the first worker carries on
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = output.decode()
    assert proc.returncode == 0, text
    assert "kafka: stopped" in text and "s3proxy: stopped" in text
    assert stack_processes(str(stack_dir)) == []
    for port in (kafka, controller, s3, worker.settings.http_port):
        assert port_is_free(port), f"port {port} still taken"


async def test_cli_submits_waits_and_reads_status(
    settings_factory: Callable[..., Settings],
) -> None:
    worker = Worker(settings_factory(), "w").start()
    env = {**os.environ, **worker.settings.as_env()}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    try:
        await worker.wait_ready()
        done = cli("submit", "--channel", "acme", "--tag", "cli", "--dataset", "demo-export",
                   "--config", '{"rows": 7}', "--request-id", "cli-1", "--wait", "60",
                   "--via", "kafka", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["request_id"] == "cli-1" and record["status"] == "SUCCESS"
        assert record["total_rows"] == 7

        shown = cli("status", "cli-1", "--channel", "acme", "--url", worker.url, "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["download_urls"]
        hidden = cli("status", "cli-1", "--channel", "evil", "--url", worker.url)
        assert hidden.returncode == 4 and hidden.stderr.startswith("error [NOT_FOUND]")
        bad = cli("submit", "--channel", "acme", "--tag", "t", "--dataset", "demo-export",
                  "--config", "[1]")  # fmt: skip
        assert bad.returncode == 3 and bad.stderr.startswith("error [INVALID_CONFIG]")
        # A typo in the type is refused before anything is published, naming the known types.
        typo = cli("submit", "--channel", "acme", "--tag", "t", "--dataset", "demo-exprot",
                   "--via", "kafka")  # fmt: skip
        assert typo.returncode == 3 and "demo-export" in typo.stderr, typo.stderr
    finally:
        assert worker.stop() == 0


async def test_a_cancel_stops_the_running_generation_within_seconds_and_leaves_no_object(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(heartbeat_seconds=0.5)
    worker = Worker(settings, "w").start()
    try:
        await worker.wait_ready()
        body = {
            "tag": "c",
            "dataset": "demo-export",
            "config": {"rows": 20_000_000},  # about a minute of generation on this machine
            "request_id": "to-cancel",
        }
        status, _ = await worker.post("/v1/requests", body, channel="acme")
        assert status == 202

        async def job_status() -> str:
            code, job = await worker.get("/v1/jobs/to-cancel", channel="acme")
            return str(job["status"]) if code == 200 else ""

        await eventually(lambda: _is(job_status, "PROCESSING"), 60, "the job to be PROCESSING")
        assert (await worker.post("/v1/jobs/to-cancel/cancel", {}, channel="evil"))[0] == 404
        code, answer = await worker.post("/v1/jobs/to-cancel/cancel", {}, channel="acme")
        assert code == 202 and answer["status"] == "CANCEL_REQUESTED"
        cancelled_at = time.monotonic()
        await eventually(lambda: _is(job_status, "CANCELLED"), 30, "the job to be CANCELLED")

        async def generation_stopped() -> bool:  # the attempt ended, FAILED (CANCELLED)
            _, metrics = await worker.get("/metrics")
            return metric(metrics, "exhaust_generation_seconds_count", outcome="FAILED") == 1

        await eventually(generation_stopped, 30, "the generation to stop", 0.1)
        assert time.monotonic() - cancelled_at < 15, "the generation ran on after the cancel"
        assert "to-cancel attempt 1 cancelled: stopping it" in worker.log_tail(200)
        assert await job_status() == "CANCELLED"
        async with S3ObjectStore(settings) as store:
            listed = await store.client.list_objects_v2(
                Bucket=settings.s3_bucket, Prefix="acme/demo-export/to-cancel/"
            )
        assert listed.get("Contents", []) == [], "a cancelled attempt left objects behind"
        # A cancel of a job that has ended promises nothing: 409 with its status.
        code, refused = await worker.post("/v1/jobs/to-cancel/cancel", {}, channel="acme")
        assert code == 409 and refused["error"]["status"] == "CANCELLED"
    finally:
        assert worker.stop() == 0


async def _is(check: Callable[[], Awaitable[str]], wanted: str) -> bool:
    return await check() == wanted
