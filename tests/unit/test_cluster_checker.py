"""The cluster checker's own rules, without a cluster."""

from __future__ import annotations

from app.domain.model import DatasetRequest
from deploy.local.cluster.checker import _under_any, longest_stall
from deploy.local.cluster.load import Ledger, Sent
from deploy.local.cluster.soak import memory_verdict


def test_an_object_is_under_a_live_attempt_only_at_a_whole_path_segment() -> None:
    live = {"acme/demo-export/load-1-7/2/", "acme/demo-export/load-1-8/1/"}
    assert _under_any("acme/demo-export/load-1-7/2/data.csv", live)
    assert _under_any("acme/demo-export/load-1-8/1/part/0.csv", live)
    assert not _under_any("acme/demo-export/load-1-7/1/data.csv", live)  # superseded attempt
    assert not _under_any("acme/demo-export/load-1-70/2/data.csv", live)  # another job
    assert not _under_any("acme/demo-export/load-1-7/2", live)  # not under it
    assert not _under_any("data.csv", live)


def test_memory_that_grows_past_the_tolerance_after_warm_up_is_reported() -> None:
    mib = 1024 * 1024
    flat = [100 * mib] * 2 + [140 * mib] * 8  # warm-up growth, then flat
    growing = [100 * mib + i * 10 * mib for i in range(10)]
    figures, grown = memory_verdict({"w1-processor": flat, "w1-generator": growing}, 0.15)
    assert grown == ["w1-generator: 125 → 185 MiB"]
    assert figures["rss_w1-processor"] == (
        "100 MiB at start, 140 after warm-up, 140 at the end, peak 140"
    )


def _stalls(ends: dict[str, tuple[int, int]], since_ms: int) -> float:
    """``ends``: request id -> (partition, when its job ended)."""
    ledger = Ledger()
    history: dict[str, list[dict[str, object]]] = {}
    for rid, (partition, at) in ends.items():
        request = DatasetRequest(tag="t", dataset="d", channel="acme", requested_by="u",
                                 submitted_at=0)  # fmt: skip
        ledger.requests[rid] = Sent(request, sent=1, acked=1)
        history[f"acme/{rid}"] = [
            {"status": "SUBMITTED", "attempt": 1, "partition": partition, "last_updated": 0},
            {"status": "SUCCESS", "attempt": 1, "partition": partition, "last_updated": at},
            {"status": "SUCCESS", "attempt": 1, "partition": partition, "last_updated": at + 9e5},
        ]  # the last one: a duplicate counted much later, not an end
    return longest_stall(history, ledger, since_ms)


def test_a_long_drain_is_no_stall_but_a_partition_standing_still_is() -> None:
    # 600 jobs over two partitions ending one every 0.5 s for 5 minutes: slow, never stalled.
    steady = {f"r{i}": (i % 2, 1_000 + i * 500) for i in range(600)}
    assert _stalls(steady, since_ms=1_000) <= 1.0
    # The same, but partition 1 stands still for 4 minutes while partition 0 drains.
    stalled = {**steady, **{f"r{i}": (1, 1_000 + i * 500 + 240_000)
                            for i in range(300, 600) if i % 2}}  # fmt: skip
    assert _stalls(stalled, since_ms=1_000) >= 240.0
    # Everything ended before the load did: nothing waited.
    assert _stalls({"a": (0, 500)}, since_ms=1_000) == 0.0
