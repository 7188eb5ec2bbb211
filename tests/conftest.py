"""Shared fixtures.

The real stack is session-scoped and started only when an integration test asks for it: on
its own ports and data directory (``.stack-test``), so it never collides with ``make run``.
Set ``EXHAUST_TEST_KAFKA_BOOTSTRAP`` and ``EXHAUST_TEST_S3_ENDPOINT`` to use servers that are
already up instead (their S3 credentials from ``EXHAUST_S3_ACCESS_KEY``/``EXHAUST_S3_SECRET_KEY``).
Factory fixtures give each test its own topic prefix, consumer group and bucket.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackEndpoints:
    kafka_bootstrap: str
    s3_endpoint: str


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    kafka = os.environ.get("EXHAUST_TEST_KAFKA_BOOTSTRAP")
    s3 = os.environ.get("EXHAUST_TEST_S3_ENDPOINT")
    if kafka and s3:
        yield StackEndpoints(kafka, s3)
        return
    from deploy.local.stack import LocalStack

    # Under pytest-xdist each worker process (gw0, gw1, ...) runs its own stack, ten ports on.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)

    def port(variable: str, default: int) -> int:
        return int(os.environ.get(variable, default)) + 10 * worker

    stack_dir = ROOT / (".stack-test" if worker == 0 else f".stack-test-{worker}")
    shutil.rmtree(stack_dir, ignore_errors=True)
    settings = Settings(
        stack_dir=stack_dir,
        cache_dir=ROOT / ".cache",
        stack_kafka_port=port("EXHAUST_TEST_KAFKA_PORT", 29092),
        stack_controller_port=port("EXHAUST_TEST_CONTROLLER_PORT", 29093),
        stack_s3_port=port("EXHAUST_TEST_S3_PORT", 29000),
    )
    local = LocalStack(settings)
    local.up()
    try:
        yield StackEndpoints(local.kafka_bootstrap, local.s3_endpoint)
    finally:
        local.down(only_started=True)
        shutil.rmtree(stack_dir, ignore_errors=True)


TEST_SECRETS_KEY = "pR4S7ZqkYJ3mCfQ1Wc2rVt8sXn0bLd5eHg6aKj9uMyo="


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings_factory(stack: StackEndpoints, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the test stack with a unique topic prefix, group, bucket and state dir."""

    def make(**overrides: Any) -> Settings:
        name = unique("t")
        values: dict[str, Any] = {
            "kafka_bootstrap": stack.kafka_bootstrap,
            "s3_endpoint": stack.s3_endpoint,
            "topic_prefix": name,
            "consumer_group": name,
            "s3_bucket": name,
            "topic_partitions": 3,
            "state_dir": tmp_path / name,
            "secrets_key": TEST_SECRETS_KEY,  # every worker of a test opens the others' seals
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()
