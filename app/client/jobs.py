"""The jobs client: submit, read, list, wait for, cancel and download jobs, sync or async.

    with JobsClient("http://127.0.0.1:8080", channel="acme") as client:
        job_id = client.submit("daily", "demo-export", config={"rows": 1000})
        job = client.wait(job_id, progress=lambda job: print(job.status, job.progress))
        files = client.download(job_id, "out/")      # resumed with Range, SHA-256 checked

    async with AsyncJobsClient("http://127.0.0.1:8080", channel="acme") as client:
        async for job in client.jobs(status="SUCCESS"):
            ...

Every operation is written once, as a generator of steps (:class:`Call`, :class:`Pause`,
:class:`Save`) that knows nothing of sockets or event loops; :class:`JobsClient` runs the
steps with ``httpx.Client`` and :class:`AsyncJobsClient` with ``httpx.AsyncClient``. So retries,
pagination, polling, resuming and verification behave the same in both (httpx has no retry
policy for answers such as 429 and 503, hence :func:`_retrying`).

A submission carries its ``request_id`` (chosen here when the caller gives none): the service
deduplicates on it, so a submission retried after a lost answer is one job, and the id is known
before the first byte is sent. Answers 429 and 503 and lost connections are retried, waiting as
``Retry-After`` says (else 0.5 s doubling to 8 s); the API's refusals are raised as the
service's own errors (:mod:`app.domain.errors`, the same codes as HTTP, events and logs).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.domain.errors import (
    DownloadCorrupt,
    ExhaustError,
    InvalidIdentifier,
    NotFound,
    NotReady,
    TransientError,
    WaitTimedOut,
    error_for,
)

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED", "EXPIRED"})
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
CHUNK_BYTES = 1 << 20  # a download is written to disk a mebibyte at a time
VISIBLE_WITHIN = 30.0  # seconds a job just accepted may take to show in the API's view

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Output:
    """One file of a job: its object key, size and SHA-256 (as its manifest lists it)."""

    key: str
    bytes: int
    sha256: str

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the API shows it; ``record`` holds every field, these are the common ones."""

    request_id: str
    tag: str
    dataset: str
    status: str
    attempt: int
    progress: float
    outputs: tuple[Output, ...]
    download_urls: tuple[str, ...]
    error: dict[str, Any] | None
    record: dict[str, Any] = field(repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Job:
        return cls(
            request_id=body["request_id"],
            tag=body["tag"],
            dataset=body["dataset"],
            status=body["status"],
            attempt=int(body.get("attempt") or 0),
            progress=float(body.get("progress") or 0.0),
            outputs=tuple(
                Output(o["key"], int(o["bytes"]), o["sha256"]) for o in body.get("outputs") or []
            ),
            download_urls=tuple(body.get("download_urls") or ()),
            error=body.get("error"),
            record=body,
        )


@dataclass(frozen=True, slots=True)
class Submitted:
    """The answer to a submission: the job's id, and whether it was already known."""

    request_id: str
    status: str
    duplicate: bool


# --- the steps an operation asks its driver to take ----------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """Send this request (``path`` under the client's base URL); the driver answers with the
    ``httpx.Response`` (body read), or with the ``httpx.TransportError`` that stopped it."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any] | None = None
    json: Any = None


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Save:
    """GET ``url`` into ``path`` from byte ``start`` (appending, with a Range header when
    ``start`` > 0); the driver answers with the SHA-256 of the whole file, the HTTP status and
    the file's size, or with the ``httpx.TransportError`` that cut it short."""

    url: str
    path: Path
    start: int
    size: int  # the file's size when whole: a file that has it already is only hashed


Step = Call | Pause | Save
Operation = Generator[Step, Any, T]


class JobsCore:
    """The operations, as generators of steps (see the module's docstring)."""

    def __init__(
        self, channel: str, user: str | None, retries: int, api_key: str | None = None
    ) -> None:
        self.headers = {"X-Channel-ID": channel}
        if user:
            self.headers["X-Authenticated-Userid"] = user
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.retries = retries

    def submit(
        self, tag: str, dataset: str, *, request_id: str | None = None, **fields: Any
    ) -> Operation[Submitted]:
        body = {"tag": tag, "dataset": dataset, "request_id": request_id or str(uuid.uuid4())}
        body.update({k: v for k, v in fields.items() if v is not None})
        answer = yield from self.call("POST", "/v1/requests", json=body)
        return Submitted(answer["request_id"], answer["status"], bool(answer.get("duplicate")))

    def get(self, request_id: str) -> Operation[Job]:
        answer = yield from self.call("GET", f"/v1/jobs/{_segment(request_id)}")
        return Job.from_json(answer)

    def page(self, params: dict[str, Any]) -> Operation[tuple[list[Job], str | None]]:
        answer = yield from self.call("GET", "/v1/jobs", params=params)
        return [Job.from_json(j) for j in answer["jobs"]], answer.get("next_cursor")

    def datasets(self) -> Operation[list[dict[str, Any]]]:
        answer = yield from self.call("GET", "/v1/datasets")
        return list(answer["datasets"])

    def dataset_types(self) -> Operation[list[dict[str, Any]]]:
        answer = yield from self.call("GET", "/v1/dataset-types")
        return list(answer["dataset_types"])

    def cancel(self, request_id: str) -> Operation[str]:
        answer = yield from self.call("POST", f"/v1/jobs/{_segment(request_id)}/cancel")
        return str(answer["status"])

    def retry(self, request_id: str) -> Operation[str]:
        answer = yield from self.call("POST", f"/v1/jobs/{_segment(request_id)}/retry")
        return str(answer["status"])

    def wait(
        self,
        request_id: str,
        timeout: float | None,
        poll: float,
        progress: Callable[[Job], None] | None,
        after_attempt: int = 0,
    ) -> Operation[Job]:
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        seen: tuple[str, float, int] | None = None
        while True:
            try:
                job = yield from self.get(request_id)
            except NotFound:  # accepted, not yet in the API's view (it follows the topic)
                if time.monotonic() - started > VISIBLE_WITHIN:
                    raise
                if deadline is not None and time.monotonic() + poll > deadline:
                    raise WaitTimedOut(
                        f"job {request_id} not shown yet after {timeout:.0f}s", status="UNSEEN"
                    ) from None
                yield Pause(poll)
                continue
            if progress is not None and (job.status, job.progress, job.attempt) != seen:
                seen = (job.status, job.progress, job.attempt)
                progress(job)
            if job.terminal and job.attempt > after_attempt:
                return job
            if deadline is not None and time.monotonic() + poll > deadline:
                raise WaitTimedOut(
                    f"job {request_id} is still {job.status} after {timeout:.0f}s",
                    status=job.status,
                )
            yield Pause(poll)

    def download(self, request_id: str, folder: Path) -> Operation[list[Path]]:
        """Every file of a SUCCESS job into ``folder``; a partial file there is resumed."""
        job = yield from self.get(request_id)
        if job.status != "SUCCESS":
            raise NotReady(
                f"job {request_id} is {job.status}: only a SUCCESS has files", status=job.status
            )
        paths = []
        for output, url in zip(job.outputs, job.download_urls, strict=True):
            path = folder / output.name
            yield from self.save(output, url, path)
            paths.append(path)
        return paths

    def save(self, output: Output, url: str, path: Path) -> Operation[None]:
        """One file, resumed from what ``path`` holds; fetched whole once more if its bytes do
        not match, then refused (:class:`DownloadCorrupt`)."""
        lost, mismatched = 0, 0
        while True:
            start = path.stat().st_size if path.exists() else 0
            if start > output.bytes:  # not this file: start again
                path.unlink()
                start = 0
            answer = yield Save(url, path, start, output.bytes)
            if isinstance(answer, httpx.TransportError):
                lost += 1
                if lost > self.retries:
                    raise TransientError(f"download of {output.name} failed: {answer}")
                yield Pause(_backoff(lost - 1))
                continue
            digest, status, size = answer
            if status >= 400 and status != 416:  # 416: a range past the object's end
                raise TransientError(f"download of {output.name} answered HTTP {status}")
            if size == output.bytes and digest == output.sha256:
                return
            path.unlink()  # complete but wrong, or cut short by the server: start again
            mismatched += 1
            if mismatched == 2:
                raise DownloadCorrupt(
                    f"{output.name}: the bytes downloaded do not match the job's size and "
                    f"SHA-256 ({size} bytes, {digest[:12]}…; expected {output.bytes} bytes, "
                    f"{output.sha256[:12]}…)"
                )

    def call(self, method: str, path: str, **kwargs: Any) -> Operation[Any]:
        """One API call with the retry policy; the JSON answer, or the API's error raised."""
        request = Call(method, path, self.headers, **kwargs)
        for attempt in range(self.retries + 1):
            response = yield request
            last = attempt == self.retries
            if isinstance(response, httpx.TransportError):
                if last:
                    raise TransientError(f"{method} {path}: no answer ({response!r})")
                yield Pause(_backoff(attempt))
                continue
            if response.status_code in RETRIED_STATUSES and not last:
                yield Pause(retry_after(response) or _backoff(attempt))
                continue
            if response.status_code >= 400:
                raise api_error(method, path, response)
            return response.json()
        raise AssertionError("unreachable: the last attempt returns or raises")


def _segment(value: str) -> str:
    """An id as one path segment (a hostile id must not walk the API's paths)."""
    if not value or "/" in value or value in (".", ".."):
        raise InvalidIdentifier(f"{value!r} is not a job id")
    return value


def _backoff(attempt: int) -> float:
    return float(min(8.0, 0.5 * 2**attempt))


def retry_after(response: httpx.Response) -> float | None:
    """The seconds an answer's ``Retry-After`` asks for (capped at 60), or None."""
    value = response.headers.get("Retry-After", "")
    try:
        return min(60.0, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date, or garbage: the backoff's own wait


def api_error(method: str, path: str, response: httpx.Response) -> ExhaustError:
    """The API's error envelope as its :class:`ExhaustError`; an answer without one (a proxy's
    502, 503 or 504) as a transient error."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        if response.status_code in (429, 502, 503, 504):
            return TransientError(f"{method} {path} answered HTTP {response.status_code}")
        return ExhaustError(
            f"{method} {path} answered HTTP {response.status_code}", code="HTTP_ERROR"
        )
    details = {
        k: v for k, v in error.items() if k not in ("code", "message") and isinstance(v, str | int)
    }
    return error_for(code, message, **details)


# --- the drivers ---------------------------------------------------------------------------


class JobsClient:
    """The jobs client over ``httpx.Client`` (blocking)."""

    def __init__(
        self,
        base_url: str,
        channel: str,
        *,
        user: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        http: httpx.Client | None = None,
    ) -> None:
        self.core = JobsCore(channel, user, retries, api_key)
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def submit(self, tag: str, dataset: str, **fields: Any) -> str:
        """Submit a request; the id its job has (``request_id=`` to choose it)."""
        return self.submission(tag, dataset, **fields).request_id

    def submission(self, tag: str, dataset: str, **fields: Any) -> Submitted:
        return self._run(self.core.submit(tag, dataset, **fields))

    def get(self, request_id: str) -> Job:
        return self._run(self.core.get(request_id))

    def jobs(
        self, *, tag: str | None = None, status: str | None = None, page_size: int = 100
    ) -> Iterator[Job]:
        """The channel's jobs, newest first, fetched a page at a time as iterated."""
        params: dict[str, Any] = {"limit": page_size, "tag": tag, "status": status}
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            page, cursor = self._run(self.core.page(params))
            yield from page
            if not cursor:
                return
            params["cursor"] = cursor

    def wait(
        self,
        request_id: str,
        *,
        timeout: float | None = None,
        poll: float = 1.0,
        progress: Callable[[Job], None] | None = None,
        after_attempt: int = 0,
    ) -> Job:
        """Until the job is terminal in an attempt after ``after_attempt`` (the attempt a
        retry follows); ``progress`` is called whenever it changes."""
        return self._run(self.core.wait(request_id, timeout, poll, progress, after_attempt))

    def datasets(self) -> list[dict[str, Any]]:
        """The channel's managed datasets (code, version, rows, columns)."""
        return self._run(self.core.datasets())

    def dataset_types(self) -> list[dict[str, Any]]:
        """The types this channel may request, each with its config's JSON Schema."""
        return self._run(self.core.dataset_types())

    def cancel(self, request_id: str) -> str:
        """Ask for the job to be cancelled (``AlreadyFinished`` when it is terminal)."""
        return self._run(self.core.cancel(request_id))

    def retry(self, request_id: str) -> str:
        """Start a FAILED or CANCELLED job again (an EXPIRED one is generated again); its
        status, ``RETRY_REQUESTED``. :class:`NotRetryable` says why a job cannot be."""
        return self._run(self.core.retry(request_id))

    def download(self, request_id: str, folder: str | Path) -> list[Path]:
        """Every file of a SUCCESS job into ``folder``, verified; partial files are resumed."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        return self._run(self.core.download(request_id, target))

    def _run(self, operation: Operation[T]) -> T:
        answer: Any = None
        try:
            while True:
                step = operation.send(answer)
                answer = self._take(step)
        except StopIteration as done:
            result: T = done.value
            return result

    def _take(self, step: Step) -> Any:
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return None
        try:
            if isinstance(step, Call):
                return self.http.request(
                    step.method, step.path, headers=step.headers, params=step.params,
                    json=step.json,
                )  # fmt: skip
            return _save(self.http, step)
        except httpx.TransportError as exc:
            return exc


def _save(http: httpx.Client, step: Save) -> tuple[str, int, int]:
    if step.start and step.start == step.size:
        return _digest(step.path).hexdigest(), 200, step.size
    digest = _digest(step.path) if step.start else hashlib.sha256()
    headers = {"Range": f"bytes={step.start}-"} if step.start else {}
    with http.stream("GET", step.url, headers=headers) as response:
        if response.status_code >= 400:
            return "", response.status_code, step.start
        if step.start and response.status_code != 206:  # the server ignored the Range
            digest, mode = hashlib.sha256(), "wb"
        else:
            mode = "ab" if step.start else "wb"
        with step.path.open(mode) as file:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                digest.update(chunk)
                file.write(chunk)
    return digest.hexdigest(), response.status_code, step.path.stat().st_size


def _digest(path: Path) -> Any:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest


class AsyncJobsClient:
    """The jobs client over ``httpx.AsyncClient``; the same operations, awaited."""

    def __init__(
        self,
        base_url: str,
        channel: str,
        *,
        user: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.core = JobsCore(channel, user, retries, api_key)
        self.http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def __aenter__(self) -> AsyncJobsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def submit(self, tag: str, dataset: str, **fields: Any) -> str:
        return (await self.submission(tag, dataset, **fields)).request_id

    async def submission(self, tag: str, dataset: str, **fields: Any) -> Submitted:
        return await self._run(self.core.submit(tag, dataset, **fields))

    async def get(self, request_id: str) -> Job:
        return await self._run(self.core.get(request_id))

    async def jobs(
        self, *, tag: str | None = None, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Job]:
        params: dict[str, Any] = {"limit": page_size, "tag": tag, "status": status}
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            page, cursor = await self._run(self.core.page(params))
            for job in page:
                yield job
            if not cursor:
                return
            params["cursor"] = cursor

    async def wait(
        self,
        request_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the whole wait's, as the sync one)
        poll: float = 1.0,
        progress: Callable[[Job], None] | None = None,
        after_attempt: int = 0,
    ) -> Job:
        return await self._run(self.core.wait(request_id, timeout, poll, progress, after_attempt))

    async def datasets(self) -> list[dict[str, Any]]:
        return await self._run(self.core.datasets())

    async def dataset_types(self) -> list[dict[str, Any]]:
        return await self._run(self.core.dataset_types())

    async def cancel(self, request_id: str) -> str:
        return await self._run(self.core.cancel(request_id))

    async def retry(self, request_id: str) -> str:
        """Start a FAILED or CANCELLED job again (see :meth:`JobsClient.retry`)."""
        return await self._run(self.core.retry(request_id))

    async def download(self, request_id: str, folder: str | Path) -> list[Path]:
        target = Path(folder)
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        return await self._run(self.core.download(request_id, target))

    async def _run(self, operation: Operation[T]) -> T:
        answer: Any = None
        try:
            while True:
                step = operation.send(answer)
                answer = await self._take(step)
        except StopIteration as done:
            result: T = done.value
            return result

    async def _take(self, step: Step) -> Any:
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return None
        try:
            if isinstance(step, Call):
                return await self.http.request(
                    step.method, step.path, headers=step.headers, params=step.params,
                    json=step.json,
                )  # fmt: skip
            return await self._save(step)
        except httpx.TransportError as exc:
            return exc

    async def _save(self, step: Save) -> tuple[str, int, int]:
        if step.start and step.start == step.size:
            return (await asyncio.to_thread(_digest, step.path)).hexdigest(), 200, step.size
        digest = await asyncio.to_thread(_digest, step.path) if step.start else hashlib.sha256()
        headers = {"Range": f"bytes={step.start}-"} if step.start else {}
        async with self.http.stream("GET", step.url, headers=headers) as response:
            if response.status_code >= 400:
                return "", response.status_code, step.start
            if step.start and response.status_code != 206:
                digest, mode = hashlib.sha256(), "wb"
            else:
                mode = "ab" if step.start else "wb"
            with step.path.open(mode) as file:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    digest.update(chunk)
                    file.write(chunk)
        return digest.hexdigest(), response.status_code, step.path.stat().st_size


__all__ = [
    "AsyncJobsClient",
    "Job",
    "JobsClient",
    "JobsCore",
    "Output",
    "Submitted",
]
