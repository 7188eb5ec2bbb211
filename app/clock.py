"""The service's one clock: epoch milliseconds, passed where time is read so tests can set it.

The domain never reads it (its functions take ``now``); the edges and services take a
:data:`Clock` (default :func:`now_ms`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def now_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


__all__ = ["Clock", "now_ms"]
