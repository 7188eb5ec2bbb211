"""The ``exhaust`` command line. Errors print ``error [CODE]: message`` and exit 2.

* ``exhaust worker [--role processor|generator|api|all]`` runs a worker: the stream processors
  (the job-table writer), generators, the HTTP API, or all of them (default).
* ``exhaust submit`` publishes a ``DatasetRequest`` straight to Kafka (no HTTP needed) and prints
  its job id; ``--wait`` follows ``exhaust.jobs`` until the job is terminal.
* ``exhaust status`` asks a worker's HTTP API for a job and prints it as JSON.
* ``exhaust backfill summary-rollup --from 2026-11-01 --to 2026-11-29 --channel acme`` submits
  a standard dataset (a type declared ``schedule: daily``) for every day and channel given:
  the same jobs the scheduler submits, so a day already done is a duplicate and a failed day is
  generated again.
* ``exhaust demo-data [--channel ORG_001]`` fills the sample datasets of the profiles
  (:mod:`app.demo_data`) through ``POST /dataset-fill`` of a running worker, replacing earlier
  sample rows, so the README's walkthroughs have data to work on.
* ``exhaust fill data.csv --dataset-code X [--append]`` fills a managed dataset from a CSV, JSON
  Lines or Parquet file: converted here, uploaded to a presigned URL, one fill (``--via json``:
  compressed chunks of JSON rows through ``POST /dataset-fill``, with a progress bar).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.clock import now_ms
from app.domain.errors import ExhaustError, InvalidConfig, NotFound, TransientError
from app.settings import Settings
from app.stream import aiokafka_compat
from app.stream.connection import client_options


def _json(text: str, what: str, kind: type[Any], shape: str, failure: str = "is not JSON") -> Any:
    """``text`` parsed as JSON of type ``kind``, or :class:`InvalidConfig` naming ``what``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"{what} {failure}: {exc.msg}") from exc
    if not isinstance(value, kind):
        raise InvalidConfig(f"{what} must be {shape}")
    return value


async def submit(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Publish one request keyed by its tag; optionally wait for a terminal status."""
    from aiokafka import AIOKafkaProducer

    from app.domain import identifiers
    from app.domain.dedup import request_id_for
    from app.domain.model import DatasetRequest
    from app.stream.avro import registry

    for what in ("channel", "tag", "dataset"):
        identifiers.check(what, getattr(args, what))
    if args.request_id is not None:
        identifiers.check_client_id("request_id", args.request_id)
    request = DatasetRequest(
        request_id=args.request_id,
        tag=args.tag,
        dataset=args.dataset,
        channel=args.channel,
        requested_by=args.requested_by,
        config=json.dumps(_json(args.config, "--config", dict, "a JSON object"), sort_keys=True),
        submitted_at=now_ms(),
    )
    request_id, _ = request_id_for(request, settings.dedup_window_seconds)
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True)
    await producer.start()
    try:
        value = registry().encode("DatasetRequest", request.to_record())
        await producer.send_and_wait(settings.topic("requests"), value, key=request.tag.encode())
    finally:
        await producer.stop()
    if not args.wait:
        return {"request_id": request_id, "status": "SUBMITTED"}
    return await wait_for(settings, args.channel, request_id, args.wait)


async def wait_for(
    settings: Settings, channel: str, request_id: str, seconds: float
) -> dict[str, Any]:
    """Follow ``exhaust.jobs`` until job ``request_id`` of ``channel`` is terminal; return its
    last status."""
    from aiokafka import AIOKafkaConsumer

    from app.domain.model import TERMINAL, job_key
    from app.stream.avro import registry
    from app.stream.topics import assign_all

    topic = settings.topic("jobs")
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await aiokafka_compat.start(consumer)
    try:
        await consumer.seek_to_beginning(*await assign_all(consumer, topic))
        key = job_key(channel, request_id).encode()
        async with asyncio.timeout(seconds):
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for message in (m for ms in batch.values() for m in ms if m.key == key):
                    record: dict[str, Any] = registry().decode("JobStatus", message.value)
                    if record["status"] in TERMINAL:
                        return record
    except TimeoutError as exc:
        raise TransientError(f"job {request_id} not finished after {seconds:.0f}s") from exc
    finally:
        await consumer.stop()


async def backfill(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Publish the standard dataset jobs of ``args.dataset`` for each day and channel."""
    from aiokafka import AIOKafkaProducer

    from app.catalog.loader import default_catalog
    from app.domain import identifiers, standard
    from app.stream.avro import registry

    dirs = [settings.catalog_dir] if settings.catalog_dir is not None else []
    dataset_type = default_catalog(dirs).types.get(args.dataset)
    if dataset_type is None or dataset_type.schedule is None:
        raise InvalidConfig(f"{args.dataset!r} is not a standard dataset (schedule: daily)")
    first = standard.parse_day(args.first, "--from")
    last = standard.parse_day(args.last, "--to")
    if last < first:
        raise InvalidConfig("--to is before --from")
    channels = [identifiers.check("--channel", c) for c in args.channel]
    now = now_ms()
    requests = [
        standard.standard_request(args.dataset, channel, day, now)
        for channel in channels
        for day in standard.days(first, last)
    ]
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True)
    await producer.start()
    try:
        schemas = registry()
        sent = [
            await producer.send(
                settings.topic("requests"),
                schemas.encode("DatasetRequest", r.to_record()),
                key=r.tag.encode(),
            )
            for r in requests
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return {
        "status": "SUBMITTED",
        "dataset": args.dataset,
        "jobs": [
            {"channel": r.channel, "date": json.loads(r.config)["date"], "request_id": r.request_id}
            for r in requests
        ],
    }


def status(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    url = f"{_base_url(settings, args)}/v1/jobs/{args.request_id}"
    request = urllib.request.Request(url, headers={"X-Channel-ID": args.channel})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotFound(f"no job {args.request_id!r} in channel {args.channel!r}") from exc
        raise TransientError(f"{url} answered {exc.code}") from exc
    except urllib.error.URLError as exc:
        raise TransientError(f"no worker at {url}: {exc.reason}") from exc


def fill(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Fill a dataset from a CSV file; a progress bar on a terminal, the outcome as JSON."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.client import ExhaustClient
    from app.domain import identifiers

    identifiers.check("--dataset-code", args.dataset_code)
    columns = None
    if args.columns is not None:
        declared = (
            json.loads(Path(args.columns).read_text()) if Path(args.columns).is_file() else None
        )
        columns = (
            declared
            if declared is not None
            else _json(
                args.columns,
                "--columns",
                list,
                "a JSON array of columns",
                "is neither a file nor JSON",
            )
        )
    client = ExhaustClient(_base_url(settings, args), args.channel, user=args.user_code)
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        "rows", TimeRemainingColumn(), console=console, disable=not console.is_terminal,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"filling {args.dataset_code}", total=None)
        if args.via == "upload":
            summary = client.fill_file(
                args.file, args.dataset_code, columns=columns, append=args.append,
                user_code=args.user_code,
            )  # fmt: skip
        else:
            summary = client.fill_csv(
                args.file, args.dataset_code, columns=columns, append=args.append,
                chunk_rows=args.chunk_rows, user_code=args.user_code,
                progress=lambda sent, total: bar.update(task, completed=sent, total=total),
            )  # fmt: skip
    return {
        "status": "success",
        "dataset-code": summary.dataset_code,
        "rows-inserted": summary.rows,
        "chunks": summary.chunks,
        "version": summary.version,
        "seconds": round(summary.seconds, 3),
        "rows-per-second": round(summary.rows / summary.seconds) if summary.seconds else None,
    }


def demo_data(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Fill every sample dataset into ``args.channel`` (truncating what was there)."""
    import datetime as dt

    from app import demo_data as samples
    from app.client import ExhaustClient
    from app.domain import identifiers

    channel = identifiers.check("--channel", args.channel)
    client = ExhaustClient(_base_url(settings, args), channel, user="demo-data")
    today = dt.datetime.now(dt.UTC).date()
    filled = {}
    for sample in [
        *samples.sunbird(today, history_days=args.days),
        *samples.awards_and_transactions(),
        samples.learnosity_sessions(),
    ]:
        outcome = client.fill(sample.code, sample.rows, sample.columns, append=False)
        filled[sample.code] = outcome.get("rows-inserted", len(sample.rows))
    users = Path(args.users_file)
    users.write_text(samples.learnosity_users())
    return {"status": "success", "channel": channel, "datasets": filled,
            "learnosity-users-file": str(users)}  # fmt: skip


def _base_url(settings: Settings, args: argparse.Namespace) -> str:
    return str(args.url or f"http://{settings.http_host}:{settings.http_port}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="exhaust", description="Exhaust dataset service")
    sub = root.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run a worker (stream processors + HTTP API)")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warn", "error"])
    worker.add_argument(
        "--role",
        default="all",
        choices=["processor", "generator", "api", "all"],
        help="processor: the job-table writer; generator: generates work items; api: HTTP and "
        "the read model; all (default): everything in one process",
    )

    send = sub.add_parser("submit", help="publish a dataset request to Kafka")
    send.add_argument("--channel", required=True)
    send.add_argument("--tag", required=True)
    send.add_argument("--dataset", required=True)
    send.add_argument("--config", default="{}", help="the dataset type's parameters (JSON object)")
    send.add_argument("--requested-by", default="cli")
    send.add_argument("--request-id", default=None, help="your own job id (idempotency key)")
    send.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                      help="follow exhaust.jobs until the job is terminal")  # fmt: skip

    back = sub.add_parser("backfill", help="submit a standard dataset for a range of days")
    back.add_argument("dataset", help="a type declared schedule: daily, e.g. summary-rollup")
    back.add_argument("--from", dest="first", required=True, help="first day (yyyy-mm-dd)")
    back.add_argument("--to", dest="last", required=True, help="last day (yyyy-mm-dd)")
    back.add_argument("--channel", action="append", required=True, help="repeat for several")

    show = sub.add_parser("status", help="print a job as JSON (asks a worker's HTTP API)")
    show.add_argument("request_id")
    show.add_argument("--channel", required=True)
    show.add_argument("--url", default=None, help="worker URL (default from EXHAUST_HTTP_*)")

    demo = sub.add_parser("demo-data", help="fill the profiles' sample datasets (via HTTP)")
    demo.add_argument("--channel", default="ORG_001")
    demo.add_argument("--days", type=int, default=7, help="days of summary events before today")
    demo.add_argument("--url", default=None, help="worker URL (default from EXHAUST_HTTP_*)")
    demo.add_argument("--users-file", default="learnosity-users.ndjson",
                      help="where to write the sample users-by-group upload of the Learnosity "
                      "walkthrough")  # fmt: skip

    load = sub.add_parser(
        "fill", help="fill a managed dataset from a file (CSV with a header, JSON Lines, Parquet)"
    )
    load.add_argument("file", type=Path)
    load.add_argument("--dataset-code", required=True)
    load.add_argument("--channel", required=True)
    load.add_argument("--user-code", default="cli")
    load.add_argument("--append", action="store_true",
                      help="add the rows (default: they replace the dataset's)")  # fmt: skip
    load.add_argument("--columns", default=None,
                      help="the columns (a JSON file or JSON text, as in POST /dataset-fill); "
                      "default: the header's names, types sniffed by DuckDB")  # fmt: skip
    load.add_argument(
        "--via",
        choices=["upload", "json"],
        default="upload",
        help="upload (default): convert here, upload the typed file, one fill; "
        "json: chunks of JSON rows through POST /dataset-fill (CSV only)",
    )
    load.add_argument("--chunk-rows", type=int, default=100_000,
                      help="rows per request (--via json)")  # fmt: skip
    load.add_argument("--url", default=None, help="worker URL (default from EXHAUST_HTTP_*)")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
        if args.command == "worker":
            from app.service import run_worker

            return run_worker(settings, loglevel=args.loglevel, role=args.role)
        if args.command == "submit":
            result = asyncio.run(submit(settings, args))
        elif args.command == "backfill":
            result = asyncio.run(backfill(settings, args))
        elif args.command == "demo-data":
            result = demo_data(settings, args)
        elif args.command == "fill":
            result = fill(settings, args)
        else:
            result = status(settings, args)
        print(json.dumps(result, indent=2))
        failed = args.command == "submit" and result.get("status") not in ("SUBMITTED", "SUCCESS")
        return 1 if failed else 0
    except ExhaustError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
