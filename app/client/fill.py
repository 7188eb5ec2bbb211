"""A Python client of the HTTP API (httpx) for managed datasets: fill them, read them back.

    client = ExhaustClient("http://127.0.0.1:8080", channel="acme")
    client.fill("people", rows=[["1", "Ada"]], columns=[{"name": "id", "type": "integer"},
                                                        {"name": "name", "type": "string"}])
    client.fill_file("people.csv", "people")         # columns sniffed, one upload
    client.fill_csv("people.csv", "people")          # columns sniffed by DuckDB, chunked
    client.fill_rows("people", frame.itertuples(index=False), columns)   # any iterable, chunked

A fill refused as busy (429, 503) is sent again after the answer's ``Retry-After``, with the
same ``X-Fill-ID``, so it is applied once.

``fill_file`` converts the file here (the server's own checks), uploads the typed Parquet to a
presigned URL and fills from it in one fill: the fast way for large files.

``fill_csv`` does what the dataset-fill guide's sample script does by hand, for files of any
size: DuckDB reads the CSV (every value as text, as that script sends them), and each chunk of
rows becomes JSON, gzip, base64, and one ``POST /dataset-fill``. The first chunk truncates unless
``append=True``; the next ones append. Chunk ``i`` of a run is sent with ``X-Fill-ID =
{run}-{i}``, so a retried chunk (connection lost, worker restarting) is applied once. The next
chunk is prepared while the current one is in flight.

Memory: the CSV is loaded into a DuckDB database in a temp directory (it spills to disk beyond
``memory_limit``), and at most two chunks are held at a time.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import httpx

from app.client.jobs import api_error, retry_after
from app.domain.errors import ExhaustError, TransientError, error_for

DUCKDB_TYPES = {
    "BIGINT": "integer", "INTEGER": "integer", "SMALLINT": "integer", "TINYINT": "integer",
    "HUGEINT": "string", "UBIGINT": "string",
    "DOUBLE": "number", "FLOAT": "number", "BOOLEAN": "boolean",
    "DATE": "date", "TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime",
}  # fmt: skip
"""DuckDB's sniffed CSV types and the fill types they become (anything else: string)."""

T = TypeVar("T")
Progress = Callable[[int, int], None]  # (rows sent so far, rows in total or -1 when unknown)


@dataclass(frozen=True, slots=True)
class FillSummary:
    dataset_code: str
    rows: int
    chunks: int
    seconds: float
    version: int | None


class ExhaustClient:
    """Fills and managed datasets over HTTP (httpx: one connection pool per client)."""

    def __init__(
        self,
        base_url: str,
        channel: str,
        user: str | None = None,
        timeout: float = 120.0,
        retries: int = 5,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.channel = channel
        self.user = user
        self.timeout = timeout
        self.retries = retries
        headers = {"X-Channel-ID": channel}
        if user:
            headers["X-Authenticated-Userid"] = user
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> ExhaustClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def __del__(self) -> None:
        # A client dropped without close() (a script's last line) still closes its sockets.
        http = getattr(self, "http", None)
        if http is not None:
            http.close()

    # --- HTTP -----------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> httpx.Response:
        sent = {"Content-Type": "application/json", **(headers or {})}
        try:
            return self.http.request(method, path, content=body, headers=sent)
        except httpx.TransportError as exc:
            raise TransientError(f"no answer from {self.base_url}: {exc}") from exc

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One call; the JSON answer, or the API's error raised as its :class:`ExhaustError`."""
        response = self._send(method, path, body, headers)
        if not response.is_success:
            raise api_error(method, path, response)
        return response.status_code, response.json()

    def _retrying(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
        """A call retried on transient answers (429, 503, no answer), waiting what the API's
        ``Retry-After`` says or else a doubling backoff; ``headers`` carry the idempotency
        key (``X-Fill-ID``), so a retried fill is applied once."""
        delay = 0.5
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._send(method, path, body, headers)
            except TransientError:
                if last:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            if response.is_success:
                return response.json()
            error = api_error(method, path, response)
            if not error.retryable or last:
                raise error
            wait = retry_after(response)
            time.sleep(delay if wait is None else wait)
            delay = min(delay * 2, 10)
        raise AssertionError("unreachable")

    # --- datasets -------------------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/v1/datasets")[1]["datasets"]
        return found

    def dataset(self, code: str) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", f"/v1/datasets/{code}")[1]
        return found

    def fill(
        self,
        dataset_code: str,
        rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]],
        columns: Sequence[dict[str, Any]],
        *,
        append: bool = True,
        user_code: str | None = None,
        fill_id: str | None = None,
        wait_seconds: float = 600.0,
    ) -> dict[str, Any]:
        """Fill ``dataset_code`` with ``rows`` (lists in column order, or dicts by name)."""
        text = json.dumps(rows, separators=(",", ":"), default=str)
        return self.send_fill(
            dataset_code, text, columns, append=append, user_code=user_code,
            fill_id=fill_id, wait_seconds=wait_seconds,
        )  # fmt: skip

    def send_fill(
        self,
        dataset_code: str,
        rows_json: str,
        columns: Sequence[dict[str, Any]],
        *,
        append: bool,
        user_code: str | None = None,
        fill_id: str | None = None,
        wait_seconds: float = 600.0,
    ) -> dict[str, Any]:
        """One ``POST /dataset-fill`` of JSON rows, compressed; waits until it is applied."""
        body = fill_body(dataset_code, rows_json, columns, append, user_code or self.user)
        return self.post_fill(body, dataset_code, fill_id or uuid.uuid4().hex, wait_seconds)

    def post_fill(
        self, body: bytes, dataset_code: str, fill_id: str, wait_seconds: float = 600.0
    ) -> dict[str, Any]:
        answer: dict[str, Any] = self._retrying(
            "POST", "/dataset-fill", body, {"X-Fill-ID": fill_id}
        )
        deadline = time.monotonic() + wait_seconds
        while answer.get("status") == "pending":
            if time.monotonic() > deadline:
                raise TransientError(f"fill {fill_id} not applied after {wait_seconds:.0f}s")
            time.sleep(0.5)
            outcome = self.call("GET", answer["operation"])[1]
            if outcome["status"] == "REJECTED":
                raise error_for(outcome["error"]["code"], outcome["error"]["message"])
            if outcome["status"] == "APPLIED":
                answer = {
                    "status": "success",
                    "dataset-code": dataset_code,
                    "rows-inserted": outcome["rows"],
                    "fill-id": fill_id,
                    "version": outcome["version"],
                }
        return answer

    def fill_file(
        self,
        path: Path | str,
        dataset_code: str,
        *,
        columns: Sequence[dict[str, Any]] | None = None,
        append: bool = False,
        user_code: str | None = None,
        convert: bool = True,
        wait_seconds: float = 3600.0,
    ) -> FillSummary:
        """Fill a dataset from a file in one fill: CSV with a header row, JSON Lines (objects
        keyed by column name) or Parquet (``.csv``, ``.jsonl``/``.ndjson``, ``.parquet``).

        ``convert`` (default): the rows are checked and converted to the declared types here,
        by the server's own converter, and the typed Parquet is uploaded; the server checks it
        (one scan) and keeps it as the segment. Otherwise the file is uploaded as it is and
        the server converts it. Either way: ``POST /v1/datasets/{code}/uploads``, a PUT to its
        presigned URL, ``POST /dataset-fill`` with the ``upload-id``; a refused row is named
        with its row number, and nothing of a refused fill is kept."""
        from app.domain.managed_datasets import parse_columns
        from app.engine.fill_decoder import Limits, convert_file

        source = Path(path)
        if not source.is_file():
            raise ExhaustError(f"no file {source}")
        form = file_format(source)
        started = time.monotonic()
        declared = list(columns) if columns is not None else sniff_columns(source, form)
        with tempfile.TemporaryDirectory(prefix="exhaust-upload-") as tmp:
            upload, upload_form = source, form
            if convert:
                parsed = parse_columns(declared, 10_000)
                upload, upload_form = Path(tmp) / "segment.parquet", "parquet"
                limits = Limits(2**62, 2**62, 64 * 1024, "2GB", os.cpu_count() or 2)
                convert_file(source, form, parsed, upload, limits, confined=False)
            created = self.call("POST", f"/v1/datasets/{dataset_code}/uploads",
                                json.dumps({"format": upload_form}).encode())[1]  # fmt: skip
            self.put_file(created["url"], upload)
        body = {
            "user-code": user_code or self.user or "exhaust-client",
            "dataset-code": dataset_code,
            "columns": declared,
            "upload-id": created["upload-id"],
            "format": upload_form,
            "append": append,
        }
        fill_id = uuid.uuid4().hex
        answer = self.post_fill(json.dumps(body).encode(), dataset_code, fill_id, wait_seconds)
        rows = int(answer.get("rows-inserted") or 0)
        return FillSummary(dataset_code, rows, 1, time.monotonic() - started,
                           answer.get("version"))  # fmt: skip

    def put_file(self, url: str, path: Path) -> None:
        """PUT a file to a presigned URL, streamed from disk."""
        size = path.stat().st_size
        with path.open("rb") as handle:
            try:
                answer = httpx.put(url, content=handle, headers={"Content-Length": str(size)},
                                   timeout=max(self.timeout, 600))  # fmt: skip
            except httpx.TransportError as exc:
                raise TransientError(f"the upload failed: {exc}") from exc
        if not answer.is_success:
            raise TransientError(f"the upload was refused: HTTP {answer.status_code}")

    def fill_csv(
        self,
        path: Path | str,
        dataset_code: str,
        *,
        columns: Sequence[dict[str, Any]] | None = None,
        append: bool = False,
        chunk_rows: int = 100_000,
        user_code: str | None = None,
        progress: Progress | None = None,
    ) -> FillSummary:
        """Fill a dataset from a CSV file with a header row, in chunks (see module doc)."""
        with CsvChunks(Path(path), chunk_rows, columns) as source:
            return self._fill_chunks(
                dataset_code, iter(source), source.columns, append=append,
                user=user_code or self.user, progress=progress, total=source.rows,
            )  # fmt: skip

    def fill_rows(
        self,
        dataset_code: str,
        rows: Iterable[Sequence[Any] | Mapping[str, Any]],
        columns: Sequence[dict[str, Any]],
        *,
        append: bool = False,
        chunk_rows: int = 50_000,
        user_code: str | None = None,
        progress: Progress | None = None,
    ) -> FillSummary:
        """Fill a dataset from any iterable of rows (lists in column order or dicts by name: a
        generator, a DB cursor, a data frame's ``itertuples(index=False)`` or
        ``to_dicts()``), ``chunk_rows`` per fill, without
        holding more than one chunk; the first chunk truncates unless ``append``."""
        if chunk_rows < 1:
            raise ExhaustError("chunk_rows must be at least 1")

        def chunks() -> Iterator[tuple[int, str]]:
            it = iter(rows)
            while chunk := list(itertools.islice(it, chunk_rows)):
                yield len(chunk), json.dumps(chunk, separators=(",", ":"), default=str)

        return self._fill_chunks(
            dataset_code, chunks(), list(columns), append=append,
            user=user_code or self.user, progress=progress, total=-1,
        )  # fmt: skip

    def _fill_chunks(
        self,
        dataset_code: str,
        source: Iterator[tuple[int, str]],
        columns: Sequence[dict[str, Any]],
        *,
        append: bool,
        user: str | None,
        progress: Progress | None,
        total: int,
    ) -> FillSummary:
        """One fill per chunk of JSON rows, each with ``X-Fill-ID = {run}-{i}`` (a retried
        chunk is applied once); the next chunk is built while the current one is in flight."""
        started = time.monotonic()
        run = uuid.uuid4().hex[:16]
        version: int | None = None
        chunks = sent = 0
        with ThreadPoolExecutor(1) as pool:
            bodies = (
                (rows, fill_body(dataset_code, text, columns, append or i > 0, user))
                for i, (rows, text) in enumerate(source)
            )
            for rows, body in prefetch(bodies, pool):
                version = self.post_fill(body, dataset_code, f"{run}-{chunks}").get("version")
                chunks += 1
                sent += rows
                if progress is not None:
                    progress(sent, total)
        if chunks == 0 and not append:  # no rows: a truncate still empties the dataset
            body = fill_body(dataset_code, "[]", columns, False, user)
            version = self.post_fill(body, dataset_code, f"{run}-0").get("version")
            chunks = 1
        return FillSummary(dataset_code, sent, chunks, time.monotonic() - started, version)


FILE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def file_format(path: Path) -> str:
    """The fill format of a file, from its extension."""
    form = FILE_FORMATS.get(path.suffix.lower())
    if form is None:
        raise ExhaustError(f"{path}: a fill reads {', '.join(FILE_FORMATS)} files")
    return form


def sniff_columns(path: Path, form: str) -> list[dict[str, Any]]:
    """Columns of a CSV (the header's names, types and date formats sniffed by DuckDB) or of a
    Parquet file (its schema); JSON Lines files need them declared."""
    if form == "jsonl":
        raise ExhaustError(f"{path}: give the columns of a JSON Lines file (--columns)")
    if form == "csv":
        with tempfile.TemporaryDirectory(prefix="exhaust-sniff-") as tmp:
            return CsvChunks.sniff_file(path, Path(tmp))
    with duckdb.connect() as con:
        found = con.execute("DESCRIBE SELECT * FROM read_parquet($path)",
                            {"path": str(path)}).fetchall()  # fmt: skip
    return [_declared(str(name), DUCKDB_TYPES.get(str(kind), "string"))
            for name, kind, *_ in found]  # fmt: skip


def _declared(header: str, kind: str) -> dict[str, Any]:
    """A column declared from a file's header: a valid name, the header as its label."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", header)[:64]
    name = name if re.match(r"[A-Za-z_]", name) else f"_{name}"[:64]
    return {"name": name, "alias": header, "type": kind}


def prefetch(items: Iterator[T], pool: ThreadPoolExecutor) -> Iterator[T]:
    """``items``, each produced in ``pool`` while the caller works on the one before."""
    done = object()
    future = pool.submit(next, items, done)
    while (item := future.result()) is not done:
        future = pool.submit(next, items, done)
        yield item  # type: ignore[misc]


def fill_body(
    dataset_code: str,
    rows_json: str,
    columns: Sequence[dict[str, Any]],
    append: bool,
    user_code: str | None,
) -> bytes:
    """The dataset-fill body: rows as JSON text, gzip (level 1: speed over size) and base64."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    packed = packer.compress(rows_json.encode()) + packer.flush()
    body = {
        "user-code": user_code or "exhaust-client",
        "dataset-code": dataset_code,
        "columns": list(columns),
        "insert-data": base64.b64encode(packed).decode(),
        "append": append,
        "compressed": True,
    }
    return json.dumps(body).encode()


class CsvChunks:
    """The rows of a CSV file as JSON text, ``chunk_rows`` at a time, through DuckDB."""

    def __init__(
        self, path: Path, chunk_rows: int, columns: Sequence[dict[str, Any]] | None = None
    ) -> None:
        if not path.is_file():
            raise ExhaustError(f"no file {path}")
        self.path = path
        self.chunk_rows = chunk_rows
        self._tmp = tempfile.TemporaryDirectory(prefix="exhaust-csv-")
        self.con = duckdb.connect(str(Path(self._tmp.name) / "csv.duckdb"))
        self.columns = list(columns) if columns is not None else self.sniff()
        names = [c["name"] for c in self.columns]
        self.con.execute(
            "CREATE TABLE csv AS SELECT row_number() OVER () AS rn, * "
            "FROM read_csv($path, all_varchar = true, header = true)",
            {"path": str(path)},
        )
        found = [d[0] for d in self.con.execute("SELECT * FROM csv LIMIT 0").description][1:]
        if len(found) != len(names):
            raise ExhaustError(f"{path} has {len(found)} columns, {len(names)} are declared")
        self._values = ", ".join('"' + n.replace('"', '""') + '"' for n in found)
        row = self.con.execute("SELECT count(*) FROM csv").fetchone()
        self.rows = int(row[0]) if row else 0

    def sniff(self) -> list[dict[str, Any]]:
        return self.sniff_with(self.con, self.path)

    @staticmethod
    def sniff_file(path: Path, tmp: Path) -> list[dict[str, Any]]:
        with duckdb.connect(str(tmp / "sniff.duckdb")) as con:
            return CsvChunks.sniff_with(con, path)

    @staticmethod
    def sniff_with(con: duckdb.DuckDBPyConnection, path: Path) -> list[dict[str, Any]]:
        """Columns from the header and DuckDB's type detection (formats of dates included)."""
        found = con.execute(
            "SELECT Columns, DateFormat, TimestampFormat FROM sniff_csv($path)",
            {"path": str(path)},
        ).fetchone()
        assert found is not None
        sniffed, date_format, timestamp_format = found
        columns = []
        for column in sniffed:
            kind = DUCKDB_TYPES.get(column["type"], "string")
            declared = _declared(str(column["name"]), kind)  # a header is the label
            if kind == "date" and date_format:
                declared["format"] = date_format
            if kind == "datetime" and timestamp_format:
                declared["format"] = timestamp_format
            columns.append(declared)
        return columns

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for start in range(0, self.rows, self.chunk_rows):
            end = min(start + self.chunk_rows, self.rows)
            found = self.con.execute(
                f"SELECT '[' || string_agg(to_json([{self._values}]), ',' ORDER BY rn) || ']' "
                "FROM csv WHERE rn > $start AND rn <= $end",
                {"start": start, "end": end},
            ).fetchone()
            yield end - start, found[0] if found and found[0] else "[]"

    def __enter__(self) -> CsvChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()
        self._tmp.cleanup()


__all__ = ["CsvChunks", "ExhaustClient", "FillSummary", "fill_body", "sniff_columns"]
