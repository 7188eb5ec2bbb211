"""The event contract (docs/asyncapi.yaml) is valid AsyncAPI, its Avro payloads resolve, and it
names the topics the service creates, with their partitions and cleanup policies."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from app.settings import Settings
from app.stream.topics import topic_specs

ROOT = Path(__file__).parents[2]
CHECK = ROOT / "tools" / "asyncapi"
MESSAGES = {"requests": "DatasetRequest", "job-events": "JobEvent", "jobs": "JobStatus",
            "work": "WorkItem", "dlq": "DeadLetter", "fills": "DatasetFill",
            "datasets": "ManagedDataset"}  # fmt: skip


def test_the_asyncapi_document_is_valid_and_matches_the_topic_table() -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the AsyncAPI check (Node 20+)"
    assert (CHECK / "node_modules").is_dir(), "run make test or make unit (npm ci of the parser)"
    done = subprocess.run(
        [node, str(CHECK / "validate.mjs"), str(ROOT / "docs" / "asyncapi.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    channels = json.loads(done.stdout)
    settings = Settings()
    expected = {
        spec.name: {
            "partitions": spec.partitions,
            "cleanup": [spec.config["cleanup.policy"]],
            "messages": [MESSAGES[spec.name.removeprefix(settings.topic_prefix + ".")]],
        }
        for spec in topic_specs(settings)
    }
    assert channels == expected
