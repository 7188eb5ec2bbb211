"""Invariant 5: a worker's memory is bounded by configuration, not by the size of a dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.settings import Settings
from tests.integration.harness import Publisher, Worker, eventually, latest_jobs, request

pytestmark = pytest.mark.integration


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set size (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_generating_a_dataset_many_times_larger_does_not_grow_memory(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(generator_concurrency=1)
    worker = Worker(settings, "w").start()
    try:
        await worker.wait_ready()
        assert worker.proc is not None
        peaks: dict[int, float] = {}
        sizes: dict[int, int] = {}
        async with Publisher(settings) as publisher:
            for rows in (100_000, 3_000_000):  # ~3 MB, then ~90 MB of CSV
                await publisher.request(
                    request("mem", request_id=f"rows-{rows}", config=f'{{"rows": {rows}}}')
                )
                await publisher.flush()

                async def done(rid: str = f"rows-{rows}") -> dict[str, object] | None:
                    job = (await latest_jobs(settings)).get(rid)
                    return job if job and job["status"] == "SUCCESS" else None

                job = await eventually(done, 180, f"{rows} rows generated", interval=1)
                sizes[rows] = int(str(job["total_bytes"]))
                peaks[rows] = peak_rss_mib(worker.proc.pid)
        print(f"peak RSS MiB by rows: {peaks}; bytes: {sizes}")
        assert sizes[3_000_000] > 25 * sizes[100_000]
        growth = peaks[3_000_000] - peaks[100_000]
        # 30x the data; the bound is a couple of upload parts (8 MiB each) plus allocator slack,
        # nowhere near the ~85 MiB the dataset would take if it were held in memory.
        assert growth < 40, (
            f"peak RSS grew {growth:.0f} MiB for {sizes[3_000_000] >> 20} MiB of data"
        )
    finally:
        assert worker.stop() == 0
