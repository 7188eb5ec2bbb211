"""``python -m deploy.local.cluster``: the multi-host cluster, its scenarios, chaos and soak.

* ``up`` / ``down`` / ``status``: the cluster ``make cluster-up`` leaves running (``.cluster``);
  ``down`` also removes clusters a crashed run left behind;
* ``scenario NAME… [--seed N]``: a fresh cluster, the scenarios in order, a table each;
* ``chaos --seeds 1,2,3``: every scenario once, then a seeded random mix per seed;
* ``soak --requests N --rate R``: one long run, the RSS of every process sampled and
  required flat, and the checker at the end.

Every run writes its tables to ``.cluster/results.txt`` and exits 1 when an invariant broke.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app.domain.errors import StackError
from deploy.local.cluster.checker import Report
from deploy.local.cluster.cluster import API_KEY, ROOT, Cluster, current
from deploy.local.cluster.net import destroy_all
from deploy.local.cluster.scenarios import SCENARIOS, TUNING, chaos_mix, run
from deploy.local.cluster.soak import soak

DIRECTORY = ROOT / ".cluster"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="start a cluster and leave it running")
    sub.add_parser("down", help="stop the cluster and remove its hosts")
    sub.add_parser("status", help="the hosts and their processes")
    one = sub.add_parser("scenario", help="run scenarios on a fresh cluster")
    one.add_argument("names", nargs="+", choices=sorted(SCENARIOS))
    one.add_argument("--seed", type=int, default=1)
    chaos = sub.add_parser("chaos", help="every scenario, then a seeded mix per seed")
    chaos.add_argument("--seeds", default="1,2,3")
    chaos.add_argument("--mix-only", action="store_true", help="only the seeded mixes")
    for runs in (one, chaos):
        runs.add_argument(
            "--rate", type=float, default=20.0, help="requests per second of the load"
        )
    long = sub.add_parser("soak", help="one long run with memory sampled")
    long.add_argument("--requests", type=int, default=500_000)
    long.add_argument("--rate", type=float, default=60.0)
    long.add_argument("--tolerance", type=float, default=0.15)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        if args.action == "up":
            if current(DIRECTORY) is not None:
                raise StackError("a cluster is up already (.cluster/id): `make cluster-down` first")
            cluster = Cluster(DIRECTORY)
            cluster.up()
            print(f"cluster {cluster.cluster_id} up on {cluster.network.subnet}")
            for name, proc in cluster.procs.items():
                print(f"  {name:14} {proc.host.address:15} pid {proc.pid}  log {proc.log}")
            print(f"  API {cluster.api_url}  (Authorization: Bearer {API_KEY})")
            print(f"  EXHAUST_KAFKA_BOOTSTRAP={cluster.bootstrap}")
            return 0
        if args.action == "down":
            left = current(DIRECTORY)
            if left is not None:
                left.down()
            print(f"cluster down; {len(destroy_all())} left-over clusters removed")
            return 0
        if args.action == "status":
            running = current(DIRECTORY)
            if running is None:
                print("no cluster")
                return 1
            for host in running.network.hosts.values():
                print(f"  {host.name:4} {host.address:15} pids {host.pids()}")
            return 0
        return _runs(args)
    except StackError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2


def _runs(args: argparse.Namespace) -> int:
    """The runs that need a fresh cluster of their own."""
    if current(DIRECTORY) is not None:
        raise StackError("a cluster from `make cluster-up` is running: `make cluster-down` first")
    reports: list[Report] = []
    cluster = Cluster(DIRECTORY, tuning=TUNING)
    cluster.up()
    results = DIRECTORY / "results.txt"
    results.write_text("")
    try:
        if args.action == "soak":
            reports.append(asyncio.run(soak(cluster, args.requests, args.rate, args.tolerance)))
            _emit(results, reports[-1])
        elif args.action == "scenario":
            # Each run its own seed: request ids derive from it, and one cluster's topic holds
            # every run's jobs (a repeated seed would send the same ids again).
            for index, name in enumerate(args.names):
                reports.append(
                    asyncio.run(run(cluster, name, args.seed * 1000 + index, rate=args.rate))
                )
                _emit(results, reports[-1])
        else:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            if not args.mix_only:
                for index, name in enumerate(sorted(SCENARIOS)):
                    reports.append(
                        asyncio.run(run(cluster, name, seeds[0] * 1000 + index, rate=args.rate))
                    )
                    _emit(results, reports[-1])
            for seed in seeds:
                mix = chaos_mix(seed)
                name = f"chaos-seed-{seed}"
                reports.append(
                    asyncio.run(run(cluster, name, seed * 1000 + 999, faults=mix, rate=args.rate))
                )
                _emit(results, reports[-1])
    finally:
        cluster.down()
    failed = [r.scenario for r in reports if not r.ok]
    print(f"{len(reports) - len(failed)} of {len(reports)} runs passed; tables in {results}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _emit(results: Path, report: Report) -> None:
    table = report.table()
    print(table, flush=True)
    with results.open("a") as out:
        out.write(table + "\n\n")


if __name__ == "__main__":
    sys.exit(main())
