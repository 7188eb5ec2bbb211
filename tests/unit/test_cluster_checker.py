"""The cluster checker's own rules, without a cluster."""

from __future__ import annotations

from deploy.local.cluster.checker import _under_any
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
