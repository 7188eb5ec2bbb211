"""Fixtures of the integration tests: worker processes that never outlive their test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.harness import Worker


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()
