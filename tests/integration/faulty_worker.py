"""A worker with faults injected, for the fault tests only (the service has no fault switches).

``python -m tests.integration.faulty_worker worker ...`` runs ``exhaust worker`` after wrapping
the writer's edge as ``EXHAUST_TEST_FAULTS`` (JSON) says:

* ``drop_work_items``: N — the writer drops its first N work items, as if lost between the
  table write and the send;
* ``pause_requests_after``: N — after N requests the writer pauses its requests partitions and
  never resumes them (faust-streaming's stuck-partition bug).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from app import cli
from app.stream.agents import Pipeline

log = logging.getLogger("exhaust.faults")


def install(faults: dict[str, int]) -> None:
    drop = {"left": faults.get("drop_work_items", 0)}
    pause = {"left": faults.get("pause_requests_after", 0)}
    send_work, on_requests = Pipeline.send_work, Pipeline.on_requests

    async def dropping_send_work(self: Pipeline, key: str, attempt: int, value: bytes) -> None:
        if drop["left"] > 0:
            drop["left"] -= 1
            log.warning("FAULT: dropping the work item of %s", key)
            return
        await send_work(self, key, attempt, value)

    async def pausing_on_requests(self: Pipeline, events: Sequence[Any]) -> None:
        await on_requests(self, events)
        if pause["left"] > 0:
            pause["left"] -= len(events)
            if pause["left"] <= 0:
                topic = self.requests_topic
                mine = [t for t in self.app.consumer.assignment() if t.topic == topic]
                log.warning("FAULT: pausing %s and never resuming", mine)
                self.app.consumer.pause_partitions(mine)

    Pipeline.send_work = dropping_send_work  # type: ignore[method-assign]
    Pipeline.on_requests = pausing_on_requests  # type: ignore[method-assign]


if __name__ == "__main__":
    install(json.loads(os.environ.get("EXHAUST_TEST_FAULTS", "{}")))
    sys.argv[0] = "exhaust"
    sys.exit(cli.main())
