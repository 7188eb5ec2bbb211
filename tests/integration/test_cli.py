"""The ``exhaust`` command as a user runs it: a subprocess against a real worker, from a
submission with ``--wait`` to verified files, and a corrupted byte in the bucket caught."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.connection import client_options
from tests.integration.harness import ROOT, Worker, eventually, start_worker

pytestmark = pytest.mark.integration


def command(settings: Settings, worker: Worker) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``exhaust ARGS…`` as a subprocess, as a user of ``worker``'s channel acme runs it."""
    env = {**os.environ, **settings.as_env(), "EXHAUST_URL": worker.url, "EXHAUST_CHANNEL": "acme"}

    def exhaust(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    return exhaust


async def test_submit_wait_download_watch_and_a_corrupted_byte_detected(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    exhaust = command(settings, worker)

    done = exhaust("submit", "--tag", "cli-tag", "--dataset", "demo-export", "--config",
                   '{"rows": 2000}', "--columns", "id,value", "--wait", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "SUCCESS" and job["total_rows"] == 2000 and job["columns"] == [
        "id", "value"
    ]  # fmt: skip
    job_id = job["request_id"]

    fetched = exhaust("download", job_id, "-o", str(tmp_path / "a"), "--json")
    assert fetched.returncode == 0, fetched.stderr
    files = {Path(f["path"]).name: Path(f["path"]) for f in json.loads(fetched.stdout)}
    for output in job["outputs"]:
        name = output["key"].rsplit("/", 1)[-1]
        assert hashlib.sha256(files[name].read_bytes()).hexdigest() == output["sha256"]

    kinds = exhaust("types", "--json")
    assert "demo-export" in [t["name"] for t in json.loads(kinds.stdout)]
    listed = exhaust("jobs", "--tag", "cli-tag", "--json")
    assert [j["request_id"] for j in json.loads(listed.stdout)] == [job_id]
    watched = exhaust("watch", "--tag", "cli-tag", "--until-done", "--json")
    assert watched.returncode == 0 and json.loads(watched.stdout.splitlines()[-1]) == [
        [job_id, "SUCCESS", 1.0]
    ]
    human = exhaust("status", job_id)
    assert human.returncode == 0 and "SUCCESS" in human.stdout and "data.csv" in human.stdout

    # One byte of the CSV changed in the bucket (same size): the download refuses it.
    data = next(o for o in job["outputs"] if o["key"].endswith("data.csv"))
    async with S3ObjectStore(settings) as store:
        original = await store.get_bytes(data["key"])
        changed = b"1" if original[-2:-1] != b"1" else b"2"
        await store.put_bytes(data["key"], original[:-2] + changed + original[-1:])
    spoiled = exhaust("download", job_id, "-o", str(tmp_path / "b"))
    assert spoiled.returncode == 8, spoiled.stderr
    assert spoiled.stderr.startswith("error [DOWNLOAD_CORRUPT]: data.csv")
    assert len(spoiled.stderr.strip().splitlines()) == 1  # one line, no traceback

    finished = exhaust("cancel", job_id)
    assert finished.returncode == 5 and finished.stderr.startswith("error [ALREADY_FINISHED]")
    again = exhaust("retry", job_id)
    assert again.returncode == 5 and again.stderr.startswith("error [NOT_RETRYABLE]")
    typo = exhaust("submit", "--tag", "t", "--dataset", "demo-exprot")
    assert typo.returncode == 3 and typo.stderr.startswith("error [UNKNOWN_DATASET]")
    assert "demo-export" in typo.stderr  # the known types are named
    missing = exhaust("status", "no-such-job")
    assert missing.returncode == 4


async def test_dead_letters_are_listed_with_their_error_and_replayed_to_their_source(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory()
    worker = await start_worker(workers, settings, "w1")
    exhaust = command(settings, worker)

    checked = exhaust("topics", "check", "--json")
    assert checked.returncode == 0, checked.stderr
    assert {t["topic"] for t in json.loads(checked.stdout)} >= {settings.topic("requests")}

    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic("requests"), b"not avro", key=b"t")
    finally:
        await producer.stop()

    async def listed() -> list[dict[str, Any]] | None:
        done = await asyncio.to_thread(exhaust, "dlq", "list", "--json")
        letters: list[dict[str, Any]] = json.loads(done.stdout) if done.returncode == 0 else []
        return letters or None

    [letter] = await eventually(listed, 60, "the dead letter")
    assert letter["error_code"] == "UNDECODABLE_MESSAGE"
    assert letter["source"].startswith(settings.topic("requests") + "[")
    where = f"{letter['partition']}/{letter['offset']}"
    dry = exhaust("dlq", "replay", "--offset", where, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["replayed"] == 0
    replayed = exhaust("dlq", "replay", "--offset", where, "--json")
    assert replayed.returncode == 0 and json.loads(replayed.stdout)["replayed"] == 1

    async def again() -> list[dict[str, Any]] | None:
        letters = await listed() or []
        return letters if len(letters) == 2 else None

    first, second = await eventually(again, 60, "the replayed message dead-lettered again")
    assert second["replayed_from"] == f"dlq/{where}" and first["replayed_from"] is None
    unknown = exhaust("dlq", "replay", "--offset", "0/999999")
    assert unknown.returncode == 4 and unknown.stderr.startswith("error [NOT_FOUND]")
