"""Readiness of a worker: named checks that flip to ready as start-up progresses.

``/healthz`` (liveness) only says the process serves HTTP; ``/readyz`` answers 200 once every
check has passed, else 503 with what is still pending, so orchestrators and ``make run`` users
see why a worker is not ready yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Health:
    """Start-up checks of one worker process. Not thread-safe; touch from the event loop."""

    checks: dict[str, str] = field(
        default_factory=lambda: {"topics": "pending", "bucket": "pending", "worker": "pending"}
    )
    started_at: float = field(default_factory=time.monotonic)

    def passed(self, name: str, detail: str = "ok") -> None:
        self.checks[name] = detail

    def failed(self, name: str, detail: str) -> None:
        self.checks[name] = f"failed: {detail}"

    @property
    def ready(self) -> bool:
        return all(not (v == "pending" or v.startswith("failed")) for v in self.checks.values())

    def report(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "starting",
            "checks": dict(self.checks),
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
        }
