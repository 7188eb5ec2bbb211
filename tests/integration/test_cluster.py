"""The invariants across hosts: a three-broker cluster, an object store and four worker hosts,
each in its own network namespace, under load and faults; the checker reads the jobs topic,
the bucket and the API afterwards (deploy/local/cluster, docs/reliability.md).

These scenarios run in every ``make test``; the others, and seeded mixes of them, in
``make chaos``. The rolling restart is there and not here: it still finds, in about one run of
two, a job whose duplicate goes uncounted (docs/reliability.md, "Open")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.cluster.cluster import Cluster
from deploy.local.cluster.scenarios import TUNING, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests create network namespaces: run them as root (CI does)")
    running = Cluster(Path(tmp_path_factory.mktemp("cluster")), tuning=TUNING)
    running.up()
    try:
        yield running
    finally:
        running.down()


@pytest.mark.parametrize(
    ("scenario", "seed"),
    [("broker-host-cut-off", 101), ("worker-host-killed", 102)],
)
async def test_nothing_is_lost_or_doubled(cluster: Cluster, scenario: str, seed: int) -> None:
    report = await run(cluster, scenario, seed)
    print(report.table())
    assert report.ok, report.table()
    assert report.figures["acknowledged_ids"] >= 60  # the load ran through the faults
