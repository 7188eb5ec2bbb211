"""schemathesis over /openapi.json against a live worker (Kafka 4.1 + S3Proxy): generated
requests to every operation of every profile; no answer may be a server error or break the
document (status codes, content types, headers, schemas)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.settings import Settings
from tests.integration.harness import Worker, start_worker

pytestmark = pytest.mark.integration
CHECKS = ",".join((
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
))  # fmt: skip


async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory(standard_catch_up_days=0)
    worker = await start_worker(workers, settings, "w1")
    st = Path(sys.executable).parent / "st"
    command = [
        str(st), "run", f"{worker.url}/openapi.json", "--checks", CHECKS,
        "--max-examples", os.environ.get("EXHAUST_SCHEMATHESIS_EXAMPLES", "25"),
        "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
        "--header", "X-Channel-ID: acme", "--seed", "1", "--no-color",
    ]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=900,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""}, cwd=tmp_path,
    )  # fmt: skip
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "No issues found" in done.stdout or "passed" in done.stdout.lower(), report
