"""The checker: after a run, proves the invariants from the outside.

It reads ``exhaust.jobs`` from the beginning (every record, not only the latest of each key),
every object of the bucket, and the API's answer for every job, and compares them with the
load generator's ledger:

============== ============================================================================
lost           an acknowledged request with no job in the topic
stuck          an acknowledged request whose job is not terminal
doubled        a job with two different results: SUCCESS records naming different attempts,
               manifests or outputs, or a terminal record followed by a non-terminal one
dup_miscount   ``duplicates`` outside [acknowledged copies - 1, sent copies - 1]
no_code        a FAILED (or EXPIRED) job without an error code
bad_output     a SUCCESS whose manifest or files are missing, or whose bytes differ from
               the sizes and SHA-256 digests the job and its manifest give
orphans        an object under a job's prefix but outside its live attempt (a SUCCESS's
               attempt; nothing for a job that did not succeed), or an unfinished multipart
               upload, once the run has settled
read_model     a job the API answers differently from the topic (status, attempt, outputs)
memory_growth  (the soak only) a process whose memory grew past the tolerance after warm-up
============== ============================================================================

Each is a count in :class:`Report`, with up to five examples; ``report.ok`` is true when
every count is zero.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from app.domain.model import job_key
from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.avro import registry
from app.stream.connection import client_options
from app.stream.topics import assign_all
from deploy.local.cluster.load import CHANNEL, Ledger

TERMINAL = {"SUCCESS", "FAILED", "CANCELLED", "EXPIRED"}
HASHED_JOBS = 5_000  # jobs whose outputs are read back and hashed; a seeded sample beyond
CHECKS = (
    "lost", "stuck", "doubled", "dup_miscount", "no_code", "bad_output", "orphans", "read_model",
    "memory_growth",
)  # fmt: skip


@dataclass
class Report:
    """What one run proved: a count per check, examples, and the run's figures."""

    scenario: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    examples: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, check: str, example: str) -> None:
        self.counts[check] += 1
        shown = self.examples.setdefault(check, [])
        if len(shown) < 5:
            shown.append(example)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def table(self) -> str:
        """The report as a small text table, one row per check, then the figures."""
        lines = [f"scenario {self.scenario}: {'PASS' if self.ok else 'FAIL'}"]
        for name, value in self.figures.items():
            lines.append(f"  {name:<22} {value}")
        lines.append(f"  {'check':<22} {'count':>6}  examples")
        for check in CHECKS:
            examples = "; ".join(self.examples.get(check, []))
            lines.append(f"  {check:<22} {self.counts[check]:>6}  {examples}")
        return "\n".join(lines)


async def read_jobs(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every record of ``exhaust.jobs`` by key, in order, from the beginning to the end."""
    decode = registry().decode
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )  # a reset requested on assignment must not land after the seek (aiokafka races)
    await consumer.start()
    history: dict[str, list[dict[str, Any]]] = {}
    try:
        partitions = await assign_all(consumer, settings.topic("jobs"))
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for message in (m for ms in batch.values() for m in ms):
                if message.value is not None and message.key is not None:
                    record = decode("JobStatus", message.value)
                    history.setdefault(message.key.decode(), []).append(record)
    finally:
        await consumer.stop()
    return history


async def wait_settled(
    settings: Settings, ledger: Ledger, limit: float, interval: float = 2.0
) -> float:
    """Seconds until every acknowledged request's job is terminal (or ``limit``)."""
    started = time.monotonic()
    wanted = {job_key(CHANNEL, rid) for rid in ledger.acknowledged}
    while True:
        history = await read_jobs(settings)
        pending = [
            k for k in wanted if not history.get(k) or history[k][-1]["status"] not in TERMINAL
        ]
        if not pending or time.monotonic() - started > limit:
            return time.monotonic() - started
        await asyncio.sleep(interval)


def longest_stall(history: dict[str, list[dict[str, Any]]], ledger: Ledger, since_ms: int) -> float:
    """Seconds of the longest time, in any partition of the jobs, that passed after
    ``since_ms`` (the end of the load) without one of its jobs ending, while some were still
    to end.

    The time to settle grows with the backlog a load leaves and the speed of the machine; a
    stall does not: a partition whose consumer is stuck (a consumer asking a moved leader for
    offsets until its metadata ages out kept jobs waiting 4 minutes once) shows as a long gap
    in that partition while the others drain.
    """
    ended: dict[int, list[int]] = {}
    for rid in ledger.acknowledged:
        records = history.get(job_key(CHANNEL, rid))
        if not records or records[-1]["status"] not in TERMINAL:
            continue
        final = records[-1]
        same = (final["status"], final["attempt"])
        at = next(r["last_updated"] for r in records if (r["status"], r["attempt"]) == same)
        ended.setdefault(final["partition"], []).append(at)
    longest = 0
    for times in ended.values():
        points = sorted([since_ms, *(t for t in times if t > since_ms)])
        longest = max([longest, *(b - a for a, b in itertools.pairwise(points))])
    return longest / 1000


def _history(records: list[dict[str, Any]]) -> str:
    """A job's records in short: status/attempt/duplicates/request offset/ms since the first."""
    first = records[0]["last_updated"]
    return ",".join(
        f"{r['status'][:4]}/a{r['attempt']}/d{r['duplicates']}/o{r.get('request_offset', -1)}"
        f"/+{r['last_updated'] - first}"
        for r in records
    )


def _outputs(record: dict[str, Any]) -> list[tuple[str, int, str]]:
    return sorted((o["key"], o["bytes"], o["sha256"]) for o in record["outputs"])


def _prefix(record: dict[str, Any], attempt: int | None = None) -> str:
    job_prefix = f"{record['channel']}/{record['dataset']}/{record['request_id']}/"
    return job_prefix if attempt is None else f"{job_prefix}{attempt}/"


def _under_any(key: str, prefixes: set[str]) -> bool:
    """Whether ``key`` lies under one of ``prefixes`` (each ending in "/"), in the time of a
    few set lookups (a soak has hundreds of thousands of objects and of prefixes)."""
    end = key.find("/")
    while end != -1:
        if key[: end + 1] in prefixes:
            return True
        end = key.find("/", end + 1)
    return False


class Checker:
    """Checks one run of the cluster whose settings are ``settings``; ``api`` answers
    ``GET path`` with (status, JSON) as the channel's client."""

    def __init__(
        self,
        settings: Settings,
        api: Callable[[str], Awaitable[tuple[int, Any]]] | None = None,
        check_orphans: bool = True,
    ) -> None:
        self.settings, self.api, self.check_orphans = settings, api, check_orphans
        self._verified: set[tuple[str, int, str]] = set()  # outputs whose bytes matched

    async def check(self, scenario: str, ledger: Ledger) -> Report:
        report = Report(scenario)
        history = await read_jobs(self.settings)
        sent, acked, ids = ledger.counts()
        report.figures.update(sent=sent, acknowledged=acked, acknowledged_ids=ids)
        # The jobs of this run's ledger are checked one by one; every job's live attempt
        # counts when looking for orphans (the bucket is shared with earlier runs).
        mine = {job_key(CHANNEL, rid) for rid in ledger.requests}
        scoped = {key: records for key, records in history.items() if key in mine}
        report.figures["jobs_in_topic"] = len(scoped)
        self._check_topic(report, ledger, scoped)
        async with S3ObjectStore(self.settings) as store:
            await self._check_objects(report, store, history, scoped)
        if self.api is not None:
            await self._check_read_model(report, scoped)
        return report

    def _check_topic(
        self, report: Report, ledger: Ledger, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        for rid, entry in ledger.requests.items():
            records = history.get(job_key(CHANNEL, rid))
            if not records:
                if entry.acked:
                    report.fail("lost", rid)
                continue
            latest = records[-1]
            if entry.acked and latest["status"] not in TERMINAL:
                report.fail("stuck", f"{rid} {latest['status']} attempt {latest['attempt']}")
            if not entry.acked - 1 <= latest["duplicates"] <= entry.sent - 1:
                report.fail(
                    "dup_miscount",
                    f"{rid} duplicates {latest['duplicates']}, "
                    f"sent {entry.sent}, acked {entry.acked} at "
                    + ",".join(f"p{p}@{o}" for p, o in entry.landed)
                    + "; history "
                    + _history(records),
                )
        for key, records in history.items():
            results = {
                (r["attempt"], r["manifest_key"], tuple(_outputs(r)))
                for r in records
                if r["status"] == "SUCCESS"
            }
            if len(results) > 1:
                report.fail("doubled", f"{key}: {len(results)} different results")
            ended = False
            for record in records:
                if ended and record["status"] not in TERMINAL:
                    report.fail(
                        "doubled",
                        f"{key}: {record['status']} after a terminal status; history "
                        + _history(records),
                    )
                    break
                ended = ended or record["status"] in TERMINAL
            latest = records[-1]
            if latest["status"] in ("FAILED", "EXPIRED") and not (latest.get("error") or {}).get(
                "code"
            ):
                report.fail("no_code", f"{key} {latest['status']}")
        statuses: dict[str, int] = {}
        for records in history.values():
            statuses[records[-1]["status"]] = statuses.get(records[-1]["status"], 0) + 1
        report.figures["statuses"] = dict(sorted(statuses.items()))
        report.figures["attempts_over_1"] = sum(
            1 for records in history.values() if records[-1]["attempt"] > 1
        )
        report.figures["duplicates_counted"] = sum(r[-1]["duplicates"] for r in history.values())

    async def _check_objects(
        self,
        report: Report,
        store: S3ObjectStore,
        history: dict[str, list[dict[str, Any]]],
        scoped: dict[str, list[dict[str, Any]]],
    ) -> None:
        objects = await store.list_sizes(f"{CHANNEL}/")
        report.figures["objects"] = len(objects)
        live = {
            _prefix(records[-1], records[-1]["attempt"])
            for records in history.values()
            if records[-1]["status"] == "SUCCESS"
        }
        succeeded = [
            (key, records[-1])
            for key, records in scoped.items()
            if records[-1]["status"] == "SUCCESS"
            # (not those an earlier pass of this run checked byte for byte)
            and not (
                set(_outputs(records[-1])) <= self._verified
                and records[-1]["manifest_key"] in objects
            )
        ]
        # Every job's manifest and sizes are checked; the outputs' bytes are hashed for all of
        # them up to HASHED_JOBS jobs, and for a seeded sample of that many beyond (a soak's
        # hundreds of thousands of objects would take hours to read back).
        hashed = {key for key, _ in succeeded}
        if len(hashed) > HASHED_JOBS:
            hashed = set(random.Random(len(hashed)).sample(sorted(hashed), HASHED_JOBS))
        report.figures["jobs_hashed"] = len(hashed)
        slots = asyncio.Semaphore(16)

        async def check(key: str, latest: dict[str, Any]) -> None:
            async with slots:
                await self._check_job(report, store, objects, key, latest, key in hashed)

        await asyncio.gather(*(check(key, latest) for key, latest in succeeded))
        if not self.check_orphans:
            return
        for object_key in objects:
            if not _under_any(object_key, live):
                report.fail("orphans", object_key)
        for upload_key, _ in await store.unfinished_uploads(f"{CHANNEL}/"):
            report.fail("orphans", f"unfinished upload {upload_key}")

    async def _check_job(
        self,
        report: Report,
        store: S3ObjectStore,
        objects: dict[str, int],
        key: str,
        latest: dict[str, Any],
        hash_bytes: bool,
    ) -> None:
        manifest_key = latest["manifest_key"]
        if manifest_key not in objects:
            report.fail("bad_output", f"{key}: manifest {manifest_key} missing")
            return
        manifest = json.loads(await store.get_bytes(manifest_key))
        listed = sorted((f["key"], f["bytes"], f["sha256"]) for f in manifest["files"])
        if listed != _outputs(latest):
            report.fail("bad_output", f"{key}: manifest and job list different files")
        for output_key, size, digest in _outputs(latest):
            if objects.get(output_key) != size:
                report.fail(
                    "bad_output", f"{output_key}: {objects.get(output_key)} bytes, not {size}"
                )
            elif not hash_bytes:
                continue
            elif hashlib.sha256(await store.get_bytes(output_key)).hexdigest() != digest:
                report.fail("bad_output", f"{output_key}: SHA-256 differs")
            else:
                self._verified.add((output_key, size, digest))

    async def _check_read_model(
        self, report: Report, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        api = self.api
        assert api is not None
        slots = asyncio.Semaphore(16)

        async def answer(request_id: str) -> tuple[int, Any]:
            async with slots:
                return await api(f"/v1/jobs/{request_id}")

        keys = list(history)
        answers = await asyncio.gather(*(answer(history[k][-1]["request_id"]) for k in keys))
        for key, (status, body) in zip(keys, answers, strict=True):
            latest = history[key][-1]
            if status != 200 or not isinstance(body, dict):
                report.fail("read_model", f"{key}: HTTP {status}")
                continue
            seen = (
                body.get("status"),
                body.get("attempt"),
                sorted(o["key"] for o in body.get("outputs", [])),
            )
            truth = (
                latest["status"],
                latest["attempt"],
                sorted(o["key"] for o in latest["outputs"]),
            )
            if seen != truth:
                report.fail("read_model", f"{key}: API {seen[:2]}, topic {truth[:2]}")


def http_api(base_url: str, api_key: str) -> Callable[[str], Awaitable[tuple[int, Any]]]:
    """``GET path`` on the API as the key's channel: (status, JSON); status 0 unreachable."""

    def get(path: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            base_url + path, headers={"Authorization": f"Bearer {api_key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, OSError):
            return 0, None

    async def call(path: str) -> tuple[int, Any]:
        return await asyncio.to_thread(get, path)

    return call
