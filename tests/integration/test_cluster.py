"""The invariants across hosts: a three-broker cluster, an object store and four worker hosts,
each in its own network namespace, under load and faults; the checker reads the jobs topic,
the bucket and the API afterwards (deploy/local/cluster, docs/reliability.md).

``make cluster-test`` runs this scenario; ``make chaos`` runs every scenario and seeded mixes.
It is not in ``make test`` while the cluster's open defects stand (docs/reliability.md, "Open"):
the broker cut and the rolling restart each fail about one run in two, and this one, which had
passed four runs in a row, ran past its time once in a fresh-clone run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.cluster.cluster import Cluster
from deploy.local.cluster.scenarios import TUNING, run

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


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


@pytest.mark.timeout(900)  # the cluster's start, the load, the settling and the checks
async def test_a_worker_host_killed_mid_generation_loses_and_doubles_nothing(
    cluster: Cluster,
) -> None:
    report = await run(cluster, "worker-host-killed", 102)
    print(report.table())
    assert report.ok, report.table()
    assert report.figures["acknowledged_ids"] >= 60  # the load ran through the faults
