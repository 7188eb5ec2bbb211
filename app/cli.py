"""The ``exhaust`` command line (Click, with rich output; ``--json`` on every command).

* ``exhaust worker [--role processor|generator|api|all]`` runs a worker.
* ``exhaust submit --dataset T --tag G [--config JSON] [--columns a,b] [--filters JSON]
  [--output JSON] [--key-env VAR] [--wait]`` submits through the HTTP API (``--via kafka``:
  straight to ``exhaust.requests``, checked against the local catalog first) and prints the job
  id; ``--wait`` shows the job's progress until it is terminal.
* ``exhaust status ID``, ``exhaust jobs [--tag] [--status]`` (a table), ``exhaust watch`` (a
  live table), ``exhaust download ID -o DIR`` (every file, resumed and SHA-256-checked),
  ``exhaust cancel ID``, ``exhaust datasets``, ``exhaust types`` (what you may request).
* ``exhaust dlq list|replay`` reads the dead letters and sends chosen ones back after a fix;
  ``exhaust topics check`` checks every topic's layout.
* ``exhaust fill FILE --dataset-code X`` fills a managed dataset; ``exhaust backfill`` submits a
  standard dataset for a range of days; ``exhaust demo-data`` fills the sample datasets.

The API's address and the channel come from ``--url`` / ``EXHAUST_URL`` (default: the local
worker, ``EXHAUST_HTTP_HOST``/``PORT``) and ``--channel`` / ``EXHAUST_CHANNEL``; an API key,
when the API requires one, from ``EXHAUST_API_KEY`` (never an option: it would show in
``ps``). An error is one line on stderr, ``error [CODE]: message``, and the exit code says its
class (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from app.clock import now_ms
from app.domain import errors
from app.domain.errors import ExhaustError, InvalidConfig, UnknownDataset
from app.settings import Settings
from app.stream.connection import client_options

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES: list[tuple[type[ExhaustError], int]] = [
    (errors.ConfigurationError, 9),  # this installation's settings or stack: fix, run again
    (errors.StackError, 9),
    (errors.AccessDenied, 6),
    (errors.NotFound, 4),
    (errors.AlreadyFinished, 5),  # the job's state does not allow it
    (errors.NotReady, 5),
    (errors.NotRetryable, 5),
    (errors.RequestConflict, 5),
    (errors.TransientError, 7),  # try again later (busy, unreachable, a wait that ran out)
    (errors.StorageError, 8),  # object storage, or a download whose bytes do not match
    (errors.RequestRejected, 3),  # the input is refused: change it
    (errors.MalformedRequest, 3),
    (errors.FillRefused, 3),
    (errors.LimitExceeded, 3),
]
"""Exit codes by error class, first match wins: 0 done, 1 a job that ended but did not succeed,
2 a usage error (Click's own), 3 refused input, 4 not found, 5 not allowed in the job's state,
6 access denied, 7 transient (retry), 8 storage or download integrity, 9 configuration,
10 anything else."""

err = Console(stderr=True)
out = Console()


def exit_code(error: ExhaustError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(error, kind)), 10)


def _json(text: str, what: str, kind: type[Any], shape: str, failure: str = "is not JSON") -> Any:
    """``text`` parsed as JSON of type ``kind``, or :class:`InvalidConfig` naming ``what``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"{what} {failure}: {exc.msg}") from exc
    if not isinstance(value, kind):
        raise InvalidConfig(f"{what} must be {shape}")
    return value


class Context:
    """What every command shares: settings, the API's address, the channel, the output form."""

    def __init__(self, url: str | None, channel: str | None, as_json: bool) -> None:
        self.settings = Settings()
        self.url = url or f"http://{self.settings.http_host}:{self.settings.http_port}"
        self._channel = channel
        self.as_json = as_json

    @property
    def channel(self) -> str:
        if not self._channel:
            raise click.UsageError("no channel: pass --channel or set EXHAUST_CHANNEL")
        return self._channel

    def jobs_client(self) -> Any:
        from app.client.jobs import JobsClient

        return JobsClient(
            self.url, self.channel, user=os.environ.get("USER") or None,
            api_key=os.environ.get("EXHAUST_API_KEY") or None,
        )  # fmt: skip

    def emit(self, result: Any, human: Callable[[], None] | None = None) -> None:
        """The command's result: JSON with ``--json`` (or without a human form), else human."""
        if self.as_json or human is None:
            click.echo(json.dumps(result, indent=2, default=str))
        else:
            human()


def common(command: F) -> F:
    """The options every API command takes (also accepted before the command's name)."""
    command = click.option("--json", "as_json", is_flag=True, default=None,
                           help="print the result as JSON (for scripts)")(command)  # fmt: skip
    command = click.option("--channel", envvar="EXHAUST_CHANNEL", default=None,
                           help="your channel (tenant) [env EXHAUST_CHANNEL]")(command)  # fmt: skip
    command = click.option("--url", envvar="EXHAUST_URL", default=None,
                           help="the API's URL [env EXHAUST_URL; default: the local worker]")(
        command
    )  # fmt: skip
    return command


def context(url: str | None, channel: str | None, as_json: bool | None) -> Context:
    parent = click.get_current_context().find_object(dict) or {}
    return Context(
        url or parent.get("url"),
        channel or parent.get("channel"),
        bool(as_json if as_json is not None else parent.get("as_json")),
    )


class Cli(click.Group):
    """Runs a command and turns an :class:`ExhaustError` into one line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExhaustError as exc:
            click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            ctx.exit(exit_code(exc))


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exhaust", prog_name="exhaust")
@click.option("--url", envvar="EXHAUST_URL", default=None, help="the API's URL")
@click.option("--channel", envvar="EXHAUST_CHANNEL", default=None, help="your channel (tenant)")
@click.option("--json", "as_json", is_flag=True, help="print results as JSON")
@click.pass_context
def cli(ctx: click.Context, url: str | None, channel: str | None, as_json: bool) -> None:
    """Exhaust: dataset requests in, generated datasets out."""
    ctx.obj = {"url": url, "channel": channel, "as_json": as_json}


# --- running -------------------------------------------------------------------------------


@cli.command()
@click.option("--role", type=click.Choice(["processor", "generator", "api", "all"]),
              default="all", show_default=True,
              help="processor: the job-table writer; generator: runs work items; api: HTTP and "
              "the read model; all: everything in one process")  # fmt: skip
@click.option("--loglevel", type=click.Choice(["debug", "info", "warn", "error"]), default="info")
def worker(role: str, loglevel: str) -> None:
    """Run a worker (stream processors, generators and/or the HTTP API)."""
    from app.service import run_worker

    sys.exit(run_worker(Settings(), loglevel=loglevel, role=role))  # type: ignore[arg-type]


# --- jobs ----------------------------------------------------------------------------------


@cli.command()
@click.option("--dataset", required=True, help="the dataset type, e.g. demo-export or table-export")
@click.option("--tag", required=True, help="groups your jobs; the key of their partition")
@click.option("--config", default="{}", help="the type's parameters (JSON object)")
@click.option("--columns", default=None, help="columns to export, comma-separated")
@click.option("--filters", default=None, help="row filters (JSON, as in the API)")
@click.option("--output", default=None, help='output options (JSON: {"format": "PARQUET", …})')
@click.option("--key-env", default=None, metavar="VAR",
              help="encrypt the files (AES zip) with the key in this variable")  # fmt: skip
@click.option("--label", "labels", multiple=True, metavar="K=V", help="a label (repeatable)")
@click.option("--request-id", default=None, help="your own job id (the idempotency key)")
@click.option("--requested-by", default=None)
@click.option("--wait", is_flag=False, flag_value=3600.0, default=None, type=float,
              metavar="[SECONDS]", help="show progress until the job ends (3600 s)")  # fmt: skip
@click.option("--via", type=click.Choice(["http", "kafka"]), default="http", show_default=True,
              help="kafka: publish straight to exhaust.requests (no API needed)")  # fmt: skip
@common
def submit(
    dataset: str, tag: str, config: str, columns: str | None, filters: str | None,
    output: str | None, key_env: str | None, labels: tuple[str, ...], request_id: str | None,
    requested_by: str | None, wait: float | None, via: str, url: str | None,
    channel: str | None, as_json: bool | None,
) -> None:  # fmt: skip
    """Submit a dataset request; print its job id (and, with --wait, the finished job)."""
    ctx = context(url, channel, as_json)
    fields: dict[str, Any] = {
        "config": _json(config, "--config", dict, "a JSON object"),
        "columns": [c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        "filters": _json(filters, "--filters", dict, "a JSON object") if filters else None,
        "output": _json(output, "--output", dict, "a JSON object") if output else None,
        "labels": _labels(labels) or None,
        "request_id": request_id,
        "requested_by": requested_by,
    }
    if key_env is not None:
        key = os.environ.get(key_env)
        if not key:
            raise InvalidConfig(f"--key-env {key_env}: that environment variable is not set")
        fields["encryption_key"] = key
    if via == "kafka":
        job_id = asyncio.run(publish(ctx.settings, ctx.channel, tag, dataset, fields))
        answer = {"request_id": job_id, "status": "SUBMITTED"}
    else:
        with ctx.jobs_client() as client:
            submitted = client.submission(tag, dataset, **fields)
        answer = {"request_id": submitted.request_id, "status": submitted.status,
                  "duplicate": submitted.duplicate}  # fmt: skip
    if wait is None:
        ctx.emit(answer, lambda: out.print(answer["request_id"]))
        return
    job = _follow(ctx, answer["request_id"], wait)
    ctx.emit(job.record, lambda: _show_job(job.record))
    if job.status != "SUCCESS":
        sys.exit(1)


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidConfig(f"--label {pair!r} is not NAME=VALUE")
        labels[name] = value
    return labels


def _follow(ctx: Context, request_id: str, limit: float, after_attempt: int = 0) -> Any:
    """Wait for the job (for an attempt after ``after_attempt`` to end), with a progress bar
    on a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with ctx.jobs_client() as client, Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), console=err, disable=not err.is_terminal or ctx.as_json,
    ) as bar:  # fmt: skip
        task = bar.add_task(request_id, total=1.0, status="SUBMITTED")

        def progress(job: Any) -> None:
            bar.update(task, completed=job.progress, status=f"{job.status} (attempt {job.attempt})")

        return client.wait(
            request_id, timeout=limit, poll=0.5, progress=progress, after_attempt=after_attempt
        )


@cli.command()
@click.argument("request_id")
@common
def status(request_id: str, url: str | None, channel: str | None, as_json: bool | None) -> None:
    """One job: status, progress, attempts, error, files."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client:
        job = client.get(request_id)
    ctx.emit(job.record, lambda: _show_job(job.record))


def _show_job(record: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for name in ("request_id", "tag", "dataset", "status", "attempt", "duplicates", "progress",
                 "total_rows", "total_bytes", "execution_ms"):  # fmt: skip
        if record.get(name) is not None:
            table.add_row(name, str(record[name]))
    for name in ("submitted_at", "completed_at"):
        if record.get(name):
            table.add_row(name, _when(record[name]))
    if record.get("error"):
        table.add_row("error", f"[{record['error'].get('code')}] {record['error'].get('message')}")
    for output in record.get("outputs") or []:
        table.add_row("file", f"{output['key']} ({output['bytes']} bytes)")
    out.print(table)


def _when(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_ms / 1000)) + "Z"


def _jobs_table(jobs: Sequence[Any]) -> Table:
    table = Table("request id", "tag", "dataset", "status", "attempt", "progress", "updated")
    for job in jobs:
        updated = job.record.get("last_updated")
        table.add_row(job.request_id, job.tag, job.dataset, job.status, str(job.attempt),
                      f"{job.progress:.0%}", _when(updated) if updated else "")  # fmt: skip
    return table


@cli.command()
@click.option("--tag", default=None)
@click.option("--status", "state", default=None, help="SUBMITTED, PROCESSING, SUCCESS, …")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@common
def jobs(
    tag: str | None, state: str | None, limit: int, url: str | None, channel: str | None,
    as_json: bool | None,
) -> None:  # fmt: skip
    """The channel's jobs, newest first."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client:
        found = list(_take(client.jobs(tag=tag, status=state, page_size=min(limit, 500)), limit))
    ctx.emit([j.record for j in found], lambda: out.print(_jobs_table(found)))


def _take(items: Iterator[Any], count: int) -> Iterator[Any]:
    for i, item in enumerate(items):
        if i == count:
            return
        yield item


@cli.command()
@click.option("--tag", default=None)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 60))
@click.option("--until-done", is_flag=True, help="stop once every job shown has ended")
@common
def watch(
    tag: str | None, limit: int, interval: float, until_done: bool, url: str | None,
    channel: str | None, as_json: bool | None,
) -> None:  # fmt: skip
    """A live table of the channel's latest jobs (Ctrl-C to stop)."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client, Live(console=out, auto_refresh=False) as live:
        while True:
            found = list(_take(client.jobs(tag=tag, page_size=limit), limit))
            if ctx.as_json:
                click.echo(json.dumps([[j.request_id, j.status, j.progress] for j in found]))
            else:
                live.update(_jobs_table(found), refresh=True)
            if until_done and all(j.terminal for j in found):
                return
            time.sleep(interval)  # the refresh period, not a synchronisation


@cli.command()
@click.argument("request_id")
@click.option("-o", "--output-dir", "folder", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))  # fmt: skip
@common
def download(
    request_id: str, folder: Path, url: str | None, channel: str | None, as_json: bool | None
) -> None:
    """Download every file of a finished job, verified against its SHA-256 (resumes)."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client:
        paths = client.download(request_id, folder)
    listing = [{"path": str(p), "bytes": p.stat().st_size, "verified": "sha256"} for p in paths]

    def human() -> None:
        for entry in listing:
            out.print(f"{entry['path']}  {entry['bytes']} bytes, SHA-256 verified")

    ctx.emit(listing, human)


@cli.command()
@click.argument("request_id")
@common
def cancel(request_id: str, url: str | None, channel: str | None, as_json: bool | None) -> None:
    """Ask for a running job to be cancelled."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client:
        answer = {"request_id": request_id, "status": client.cancel(request_id)}
    ctx.emit(answer, lambda: out.print(f"{request_id}: {answer['status']}"))


@cli.command()
@click.argument("request_id")
@click.option("--wait", is_flag=False, flag_value=3600.0, default=None, type=float,
              metavar="[SECONDS]", help="follow the new attempt to its end (3600 s)")  # fmt: skip
@common
def retry(
    request_id: str, wait: float | None, url: str | None, channel: str | None,
    as_json: bool | None,
) -> None:  # fmt: skip
    """Start a failed or cancelled job again (an expired one is generated again)."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client:
        before = client.get(request_id).attempt
        answer = {"request_id": request_id, "status": client.retry(request_id)}
    if wait is None:
        ctx.emit(answer, lambda: out.print(f"{request_id}: {answer['status']}"))
        return
    job = _follow(ctx, request_id, wait, after_attempt=before)
    ctx.emit(job.record, lambda: _show_job(job.record))
    if job.status != "SUCCESS":
        sys.exit(1)


@cli.command()
@common
def datasets(url: str | None, channel: str | None, as_json: bool | None) -> None:
    """The channel's managed datasets."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client:
        found = client.datasets()

    def human() -> None:
        table = Table("code", "version", "rows", "columns")
        for d in found:
            names = ", ".join(c["name"] for c in d.get("columns") or [])
            table.add_row(str(d.get("code")), str(d.get("version")), str(d.get("rows")), names)
        out.print(table)

    ctx.emit(found, human)


@cli.command()
@common
def types(url: str | None, channel: str | None, as_json: bool | None) -> None:
    """The dataset types you may request, with their parameters."""
    ctx = context(url, channel, as_json)
    with ctx.jobs_client() as client:
        found = client.dataset_types()

    def human() -> None:
        table = Table("type", "parameters (config)", "description")
        for t in found:
            props = t["config_schema"].get("properties") or {}
            params = ", ".join(
                f"{name}: {p.get('type', 'any')}"
                + (f" = {p['default']}" if p.get("default") is not None else "")
                for name, p in props.items()
            )
            table.add_row(t["name"], params, t["description"])
        out.print(table)

    ctx.emit(found, human)


# --- Kafka-side commands --------------------------------------------------------------------


async def publish(
    settings: Settings, channel: str, tag: str, dataset: str, fields: dict[str, Any]
) -> str:
    """Publish one request keyed by its tag, after the checks the API would make; its job id."""
    from aiokafka import AIOKafkaProducer

    from app.catalog.loader import default_catalog
    from app.domain import identifiers
    from app.domain.dedup import request_id_for
    from app.domain.model import DatasetRequest
    from app.stream.avro import registry

    identifiers.check("channel", channel)
    identifiers.check("tag", tag)
    identifiers.check("dataset", dataset)
    if fields.get("request_id") is not None:
        identifiers.check_client_id("request_id", fields["request_id"])
    if fields.get("encryption_key") is not None:
        raise InvalidConfig("--via kafka cannot carry an encryption key (use the HTTP API)")
    catalog = default_catalog([settings.catalog_dir] if settings.catalog_dir else [])
    if dataset not in catalog.types:
        raise UnknownDataset(
            f"unknown dataset type {dataset!r}; known: {', '.join(sorted(catalog.types))}"
        )
    request = DatasetRequest(
        request_id=fields.get("request_id"),
        tag=tag,
        dataset=dataset,
        channel=channel,
        requested_by=fields.get("requested_by") or "cli",
        config=json.dumps(fields.get("config") or {}, sort_keys=True),
        columns=fields.get("columns"),
        filters=json.dumps(fields["filters"], sort_keys=True) if fields.get("filters") else None,
        labels=fields.get("labels") or {},
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
    return request_id


@cli.command()
@click.argument("dataset")
@click.option("--from", "first", required=True, help="first day (yyyy-mm-dd)")
@click.option("--to", "last", required=True, help="last day (yyyy-mm-dd)")
@click.option("--channel", "channels", multiple=True, required=True, help="repeat for several")
@click.option("--json", "as_json", is_flag=True, default=None, help="print the result as JSON")
def backfill(
    dataset: str, first: str, last: str, channels: tuple[str, ...], as_json: bool | None
) -> None:
    """Submit a standard dataset (schedule: daily) for every day and channel given."""
    ctx = context(None, None, as_json)
    result = asyncio.run(_backfill(ctx.settings, dataset, first, last, channels))
    ctx.emit(result, lambda: out.print(f"{len(result['jobs'])} jobs submitted"))


async def _backfill(
    settings: Settings, dataset: str, first_day: str, last_day: str, channels: Sequence[str]
) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from app.catalog.loader import default_catalog
    from app.domain import identifiers, standard
    from app.stream.avro import registry

    dirs = [settings.catalog_dir] if settings.catalog_dir is not None else []
    dataset_type = default_catalog(dirs).types.get(dataset)
    if dataset_type is None or dataset_type.schedule is None:
        raise InvalidConfig(f"{dataset!r} is not a standard dataset (schedule: daily)")
    first = standard.parse_day(first_day, "--from")
    last = standard.parse_day(last_day, "--to")
    if last < first:
        raise InvalidConfig("--to is before --from")
    checked = [identifiers.check("--channel", c) for c in channels]
    now = now_ms()
    requests = [
        standard.standard_request(dataset, channel, day, now)
        for channel in checked
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
        "dataset": dataset,
        "jobs": [
            {"channel": r.channel, "date": json.loads(r.config)["date"], "request_id": r.request_id}
            for r in requests
        ],
    }


@cli.group()
def dlq() -> None:
    """The dead-letter topic: what the writers could not use, and why."""


@dlq.command("list")
@click.option("--code", default=None, help="only this error code")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, default=None, help="print the result as JSON")
def dlq_list(code: str | None, limit: int, as_json: bool | None) -> None:
    """The newest dead letters, with their error and their source."""
    from app.stream import dead_letters

    ctx = context(None, None, as_json)
    found = asyncio.run(dead_letters.read(ctx.settings, code, limit))
    listing = [d.summary() for d in found]

    def human() -> None:
        table = Table("partition/offset", "when", "source", "error", "message")
        for d in found:
            table.add_row(f"{d.partition}/{d.offset}", _when(d.timestamp_ms), d.source, d.code,
                          d.headers.get("error-message", "")[:120])  # fmt: skip
        out.print(table)

    ctx.emit(listing, human)


@dlq.command("replay")
@click.option("--code", default=None, help="every dead letter of this error code")
@click.option("--offset", "offsets", multiple=True, metavar="PARTITION/OFFSET",
              help="one dead letter (repeatable)")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="show what would be replayed")
@click.option("--json", "as_json", is_flag=True, default=None, help="print the result as JSON")
def dlq_replay(
    code: str | None, offsets: tuple[str, ...], dry_run: bool, as_json: bool | None
) -> None:
    """Send dead letters back to the topic they came from (after fixing the cause)."""
    from app.stream import dead_letters

    if not code and not offsets:
        raise click.UsageError("name what to replay: --code CODE and/or --offset P/O")
    ctx = context(None, None, as_json)
    wanted = {_coordinates(o) for o in offsets}
    found = asyncio.run(dead_letters.read(ctx.settings, code, 100_000))
    chosen = [d for d in found if not wanted or (d.partition, d.offset) in wanted]
    missing = wanted - {(d.partition, d.offset) for d in chosen}
    if missing:
        raise errors.NotFound(
            "no such dead letter: " + ", ".join(f"{p}/{o}" for p, o in sorted(missing))
        )
    sent = 0 if dry_run else asyncio.run(dead_letters.replay(ctx.settings, chosen))
    result = {"replayed": sent, "dry_run": dry_run, "letters": [d.summary() for d in chosen]}
    ctx.emit(result, lambda: out.print(f"{len(chosen)} dead letters "
                                       f"{'would be ' if dry_run else ''}replayed"))  # fmt: skip


def _coordinates(text: str) -> tuple[int, int]:
    partition, _, offset = text.partition("/")
    if not (partition.isdigit() and offset.isdigit()):
        raise InvalidConfig(f"--offset {text!r} is not PARTITION/OFFSET")
    return int(partition), int(offset)


@cli.group()
def topics() -> None:
    """The service's Kafka topics."""


@topics.command("check")
@click.option("--json", "as_json", is_flag=True, default=None, help="print the result as JSON")
def topics_check(as_json: bool | None) -> None:
    """Check every topic against the layout the service needs (creates nothing)."""
    from app.stream.topics import ensure_topics, topic_specs

    ctx = context(None, None, as_json)
    asyncio.run(ensure_topics(ctx.settings, create=False))  # raises on any difference
    specs = topic_specs(ctx.settings)
    listing = [{"topic": s.name, "partitions": s.partitions,
                "cleanup.policy": s.config.get("cleanup.policy"), "ok": True}
               for s in specs]  # fmt: skip

    def human() -> None:
        table = Table("topic", "partitions", "cleanup", "layout")
        for entry in listing:
            table.add_row(str(entry["topic"]), str(entry["partitions"]),
                          str(entry["cleanup.policy"]), "ok")  # fmt: skip
        out.print(table)

    ctx.emit(listing, human)


# --- managed datasets -----------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset-code", required=True)
@click.option("--user-code", default="cli", show_default=True)
@click.option("--append", is_flag=True, help="add the rows (default: they replace the dataset's)")
@click.option("--columns", default=None,
              help="the columns (a JSON file or JSON text, as in POST /dataset-fill); default: "
              "the header's names, types sniffed by DuckDB")  # fmt: skip
@click.option("--via", type=click.Choice(["upload", "json"]), default="upload", show_default=True,
              help="upload: convert here, upload the typed file, one fill; json: chunks of JSON "
              "rows through POST /dataset-fill (CSV only)")  # fmt: skip
@click.option("--chunk-rows", default=100_000, show_default=True, type=click.IntRange(1),
              help="rows per request (--via json)")  # fmt: skip
@common
def fill(
    file: Path, dataset_code: str, user_code: str, append: bool, columns: str | None, via: str,
    chunk_rows: int, url: str | None, channel: str | None, as_json: bool | None,
) -> None:  # fmt: skip
    """Fill a managed dataset from a file (CSV with a header, JSON Lines, Parquet)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.client import ExhaustClient
    from app.domain import identifiers

    ctx = context(url, channel, as_json)
    identifiers.check("--dataset-code", dataset_code)
    declared = None
    if columns is not None:
        declared = (
            json.loads(Path(columns).read_text())
            if Path(columns).is_file()
            else _json(
                columns, "--columns", list, "a JSON array of columns", "is neither a file nor JSON"
            )
        )
    client = ExhaustClient(ctx.url, ctx.channel, user=user_code,
                           api_key=os.environ.get("EXHAUST_API_KEY") or None)  # fmt: skip
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        "rows", TimeRemainingColumn(), console=err, disable=not err.is_terminal,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"filling {dataset_code}", total=None)
        if via == "upload":
            summary = client.fill_file(file, dataset_code, columns=declared, append=append,
                                       user_code=user_code)  # fmt: skip
        else:
            summary = client.fill_csv(
                file, dataset_code, columns=declared, append=append, chunk_rows=chunk_rows,
                user_code=user_code,
                progress=lambda sent, total: bar.update(task, completed=sent, total=total),
            )  # fmt: skip
    result = {
        "status": "success",
        "dataset-code": summary.dataset_code,
        "rows-inserted": summary.rows,
        "chunks": summary.chunks,
        "version": summary.version,
        "seconds": round(summary.seconds, 3),
        "rows-per-second": round(summary.rows / summary.seconds) if summary.seconds else None,
    }
    ctx.emit(result)


@cli.command("demo-data")
@click.option("--days", default=7, show_default=True, help="days of summary events before today")
@click.option("--users-file", default="learnosity-users.ndjson", show_default=True,
              help="where to write the Learnosity walkthrough's users-by-group upload")  # fmt: skip
@common
def demo_data(
    days: int, users_file: str, url: str | None, channel: str | None, as_json: bool | None
) -> None:
    """Fill the profiles' sample datasets (replacing earlier sample rows)."""
    import datetime as dt

    from app import demo_data as samples
    from app.client import ExhaustClient
    from app.domain import identifiers

    ctx = context(url, channel or "ORG_001", as_json)
    checked = identifiers.check("--channel", ctx.channel)
    client = ExhaustClient(ctx.url, checked, user="demo-data",
                           api_key=os.environ.get("EXHAUST_API_KEY") or None)  # fmt: skip
    today = dt.datetime.now(dt.UTC).date()
    filled = {}
    for sample in [
        *samples.sunbird(today, history_days=days),
        *samples.awards_and_transactions(),
        samples.learnosity_sessions(),
    ]:
        outcome = client.fill(sample.code, sample.rows, sample.columns, append=False)
        filled[sample.code] = outcome.get("rows-inserted", len(sample.rows))
    Path(users_file).write_text(samples.learnosity_users())
    ctx.emit({"status": "success", "channel": checked, "datasets": filled,
              "learnosity-users-file": users_file})  # fmt: skip


@contextmanager
def _no_traceback() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point; the exit code (see :data:`EXIT_CODES`)."""
    with _no_traceback():
        try:
            cli.main(args=list(argv) if argv is not None else None, prog_name="exhaust")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
