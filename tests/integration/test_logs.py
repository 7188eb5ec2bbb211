"""A worker's logs as an operator reads them: JSON lines, a job's fields on its lines, and none
of the secrets this suite configures or sends."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.client.jobs import AsyncJobsClient
from app.domain.errors import AccessDenied
from app.settings import LOCAL_S3_SECRET_KEY, Settings
from tests.integration.harness import Worker, start_worker

pytestmark = pytest.mark.integration

API_KEY = "key-for-acme-0123456789"
ENCRYPTION_KEY = "correct horse battery staple"


async def test_lines_are_json_carry_the_job_and_never_a_secret(
    settings_factory: Callable[..., Settings], workers: list[Worker], tmp_path: Path
) -> None:
    settings = settings_factory(api_keys=json.dumps({API_KEY: "acme"}), log_format="auto")
    worker = await start_worker(workers, settings, "w1")
    async with AsyncJobsClient(worker.url, "acme", api_key=API_KEY) as client:
        job_id = await client.submit("logs", "demo-export", config={"rows": 50},
                                     encryption_key=ENCRYPTION_KEY)  # fmt: skip
        assert (await client.wait(job_id, timeout=60, poll=0.2)).status == "SUCCESS"
    async with AsyncJobsClient(worker.url, "acme", api_key="wrong-" + API_KEY) as intruder:
        with pytest.raises(AccessDenied):
            await intruder.get(job_id)
    async with httpx.AsyncClient() as http:  # a key sent where it does not belong
        await http.get(f"{worker.url}/v1/jobs/{API_KEY}", headers={"X-API-Key": API_KEY})
    assert worker.stop() == 0

    text = worker.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert len(lines) > 20 and len(lines) >= 0.9 * len(text.splitlines())  # JSON, nearly all
    mine = [line for line in lines if line.get("request_id") == job_id]
    assert mine and all((m["tag"], m["channel"], m["attempt"]) == ("logs", "acme", 1) for m in mine)
    for secret in (API_KEY, ENCRYPTION_KEY, LOCAL_S3_SECRET_KEY):
        assert secret not in text, f"{secret[:4]}… appears in the worker's log"
