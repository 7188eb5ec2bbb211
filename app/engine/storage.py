"""Object storage behind one small protocol, and its aiobotocore implementation.

aiobotocore has no transfer manager, so :meth:`S3ObjectStore.upload_file` is our own: a file up
to ``settings.s3_multipart_threshold_bytes`` goes in one streamed PUT, a larger one in a streaming
multipart loop (parts of ``settings.s3_multipart_chunk_bytes``, up to
``settings.upload_concurrency`` in flight, the file hashed as it is read, the upload aborted on any
failure so no orphaned parts are left behind).

A streamed PUT is sent with ``UNSIGNED-PAYLOAD`` (:mod:`app.engine.botocore_compat`), as AWS's
SDKs send streaming uploads over HTTPS: a signed body must be hashed before it is sent (botocore
does that on the event loop) and a server must hash all of it before it can accept it, which
S3Proxy does by holding the whole body in its heap (an 800 MB PUT ran it out of memory). The
headers stay signed; over plain HTTP the body is then protected by TCP's checksum only, so use
HTTPS in production. The file's SHA-256 for the manifest is computed in a thread while it is sent.

Failures of writes are classified once, here (:func:`storage_errors`): a 4xx answer (bad key,
denied, bucket gone) is a :class:`~app.domain.errors.StorageError` that no retry can fix;
throttling, 5xx and connection failures are :class:`~app.domain.errors.TransientError`. Neither
carries botocore's text: the user sees the operation, the HTTP status and the store's error code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote

from aiobotocore.session import get_session
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from app import clock
from app.domain.errors import InputsTooLarge, NotFound, StorageError, TransientError
from app.engine import botocore_compat
from app.engine.botocore_compat import UNSIGNED_BODY, choose_signer
from app.settings import Settings


class ObjectStore(Protocol):
    """What the service needs of object storage."""

    async def ensure_bucket(self) -> None: ...

    async def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...

    async def upload_file(self, key: str, path: Path, content_type: str = ...) -> Uploaded: ...

    async def download_file(self, key: str, path: Path, max_bytes: int | None = None) -> int:
        """Stream an object into a local file; past ``max_bytes``, stop and raise
        :class:`InputsTooLarge` (an object replaced by a larger one after its size was read)."""
        ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""
        ...

    async def delete_keys(self, keys: list[str]) -> None:
        """Delete objects (missing ones are not an error)."""
        ...

    async def list_sizes(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix``: ``{key: size}``."""
        ...

    async def unfinished_uploads(self, prefix: str) -> list[tuple[str, str]]:
        """Multipart uploads under ``prefix`` neither completed nor aborted: (key, upload id)."""
        ...

    async def abort_upload(self, key: str, upload_id: str) -> None: ...

    async def presign_get(self, key: str, expires_in: int) -> str: ...

    def link(self, key: str, expires_in: int) -> tuple[str, int]:
        """A presigned GET link and its expiry (epoch ms); may be reused briefly."""
        ...

    async def presign_put(self, key: str, expires_in: int) -> str: ...


class SweepStore(Protocol):
    """What deleting a dead attempt's objects needs of the store (the janitor's part of it)."""

    async def list_sizes(self, prefix: str) -> dict[str, int]: ...

    async def unfinished_uploads(self, prefix: str) -> list[tuple[str, str]]: ...

    async def delete_keys(self, keys: list[str]) -> None: ...

    async def abort_upload(self, key: str, upload_id: str) -> None: ...


async def delete_under(store: SweepStore, prefix: str, keep: str | None = None) -> tuple[int, int]:
    """Delete every object under ``prefix`` and abort every multipart upload started there,
    except those under ``keep``: ``(objects deleted, uploads aborted)``. Idempotent, so a
    sweep interrupted by a crash is simply made again."""
    keys = [
        key for key in await store.list_sizes(prefix) if keep is None or not key.startswith(keep)
    ]
    uploads = [
        (key, upload_id)
        for key, upload_id in await store.unfinished_uploads(prefix)
        if keep is None or not key.startswith(keep)
    ]
    if keys:
        await store.delete_keys(keys)
    for key, upload_id in uploads:
        await store.abort_upload(key, upload_id)
    return len(keys), len(uploads)


class S3ObjectStore:
    """:class:`ObjectStore` over any S3-compatible server, through aiobotocore."""

    def __init__(self, settings: Settings, bucket: str | None = None) -> None:
        self.settings = settings
        self.bucket = bucket or settings.s3_bucket
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self.links = LinkSigner(settings, self.bucket)

    async def __aenter__(self) -> S3ObjectStore:
        botocore_compat.install()
        session = get_session()
        self._client = await self._stack.enter_async_context(
            session.create_client("s3", **self.settings.s3_client_kwargs())
        )
        self._client.meta.events.register("choose-signer.s3.PutObject", choose_signer)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3ObjectStore used outside 'async with'")
        return self._client

    async def ensure_bucket(self) -> None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _status(exc) not in (404, 403):
                raise TransientError(f"cannot reach bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"cannot reach object storage: {exc}") from exc
        with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
            await self.client.create_bucket(Bucket=self.bucket)

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        with storage_errors("PutObject", key):
            await self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )

    async def upload_file(
        self, key: str, path: Path, content_type: str = "application/octet-stream"
    ) -> Uploaded:
        """Upload a local file; return its size and SHA-256.

        Up to one part: read and PUT from memory. Up to ``s3_multipart_threshold_bytes``: one
        PUT streamed from the file with an unsigned body, hashed in a thread meanwhile.
        Larger: multipart, with up to ``settings.upload_concurrency`` parts in flight, the file
        read once a part at a time off the event loop, hashing as it goes. Memory is at most
        ``upload_concurrency + 1`` parts. A failed multipart upload is aborted (no orphaned
        parts)."""
        chunk = self.settings.s3_multipart_chunk_bytes
        digest = hashlib.sha256()
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            size = (await asyncio.to_thread(os.fstat, handle.fileno())).st_size
            if chunk <= size <= self.settings.s3_multipart_threshold_bytes:
                return await self._put_file(key, path, handle, size, content_type)
            first = await asyncio.to_thread(_read_hashing, handle, chunk, digest)
            if len(first) < chunk:
                await self.put_bytes(key, first, content_type)
                return Uploaded(len(first), digest.hexdigest())
            return await self._multipart(key, handle, first, digest, content_type)
        finally:
            handle.close()

    async def _put_file(
        self, key: str, path: Path, handle: BinaryIO, size: int, content_type: str
    ) -> Uploaded:
        hashing = asyncio.ensure_future(asyncio.to_thread(_path_sha256, path))
        token = UNSIGNED_BODY.set(True)
        try:
            with storage_errors("PutObject", key):
                await self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=handle, ContentLength=size,
                    ContentType=content_type,
                )  # fmt: skip
        except BaseException:
            await asyncio.gather(hashing, return_exceptions=True)
            raise
        finally:
            UNSIGNED_BODY.reset(token)
        return Uploaded(size, await hashing)

    async def _multipart(
        self, key: str, handle: BinaryIO, first: bytes, digest: Any, content_type: str
    ) -> Uploaded:
        chunk = self.settings.s3_multipart_chunk_bytes
        with storage_errors("CreateMultipartUpload", key):
            created = await self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )
        upload_id = created["UploadId"]
        slots = asyncio.Semaphore(self.settings.upload_concurrency)
        tasks: list[asyncio.Task[dict[str, Any]]] = []

        async def send(number: int, body: bytes) -> dict[str, Any]:
            try:
                with storage_errors("UploadPart", key):
                    sent = await self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                        Body=body,
                    )  # fmt: skip
                return {"ETag": sent["ETag"], "PartNumber": number}
            finally:
                slots.release()

        size = 0
        try:
            body, number = first, 0
            while body:
                number += 1
                size += len(body)
                await slots.acquire()
                failed = [t for t in tasks if t.done() and t.exception() is not None]
                if failed:
                    slots.release()
                    await failed[0]  # raises its error
                tasks.append(asyncio.create_task(send(number, body)))
                body = await asyncio.to_thread(_read_hashing, handle, chunk, digest)
            parts = list(await asyncio.gather(*tasks))
            with storage_errors("CompleteMultipartUpload", key):
                await self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            raise
        return Uploaded(size, digest.hexdigest())

    async def download_file(self, key: str, path: Path, max_bytes: int | None = None) -> int:
        """Stream an object into a local file, a block at a time; return its size. Past
        ``max_bytes`` the download stops with :class:`InputsTooLarge`."""
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                raise NotFound(f"no object {key}") from exc
            with storage_errors("GetObject", key):
                raise
        except BotoCoreError as exc:
            raise TransientError("object storage unreachable during GetObject") from exc
        size = 0
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async with response["Body"] as body:
                while block := await body.read(1024 * 1024):
                    size += len(block)
                    if max_bytes is not None and size > max_bytes:
                        raise InputsTooLarge(
                            f"object {key} is larger than {max_bytes} bytes (it grew after its "
                            "size was read)"
                        )
                    await asyncio.to_thread(handle.write, block)
        finally:
            handle.close()
        return size

    async def get_bytes(self, key: str) -> bytes:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                raise NotFound(f"no object {key}") from exc
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def size(self, key: str) -> int | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return int(head["ContentLength"])

    async def delete_keys(self, keys: list[str]) -> None:
        """One DeleteObject per key, 16 at a time. Not DeleteObjects: S3-compatible stores
        differ on it (S3Proxy's filesystem backend answers 501 to botocore's checksummed
        request), and deletions here are rare (superseded dataset versions)."""
        for start in range(0, len(keys), 16):
            await asyncio.gather(*(self._delete(key) for key in keys[start : start + 16]))

    async def _delete(self, key: str) -> None:
        with storage_errors("DeleteObject", key):
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def list_sizes(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix``: ``{key: size}`` (all pages)."""
        sizes: dict[str, int] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        with storage_errors("ListObjectsV2", prefix):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    if not entry["Key"].endswith("/"):  # S3Proxy's filesystem backend lists
                        sizes[entry["Key"]] = int(entry["Size"])  # its directories too
        return sizes

    async def unfinished_uploads(self, prefix: str) -> list[tuple[str, str]]:
        """Multipart uploads started under ``prefix`` and neither completed nor aborted:
        ``(key, upload id)``."""
        uploads: list[tuple[str, str]] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        with storage_errors("ListMultipartUploads", prefix):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                uploads += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        return uploads

    async def abort_upload(self, key: str, upload_id: str) -> None:
        with storage_errors("AbortMultipartUpload", key):
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )

    async def presign_get(self, key: str, expires_in: int) -> str:
        return self.links.sign(key, expires_in)

    def link(self, key: str, expires_in: int) -> tuple[str, int]:
        return self.links.get(key, expires_in)

    async def presign_put(self, key: str, expires_in: int) -> str:
        url: str = await self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url


class LinkSigner:
    """Presigned GET links, signed by botocore's own SigV4 query signer, and reused briefly.

    ``client.generate_presigned_url`` runs botocore's whole request pipeline (~0.2 ms a link);
    a status page lists dozens. This builds the same path-style URL and signs it with
    ``S3SigV4QueryAuth`` directly (~0.06 ms, the URL is byte-identical: see the unit test), and
    hands out the same link for up to ``link_reuse_seconds`` after signing, so a link is valid
    for between ``expiry - reuse`` and ``expiry`` seconds; callers get the exact expiry with it.
    The cache holds at most ``link_cache_size`` links (memory bounded by configuration).
    """

    def __init__(self, settings: Settings, bucket: str) -> None:
        self.endpoint = settings.s3_endpoint.rstrip("/")
        self.bucket = bucket
        self.region = settings.s3_region
        self.credentials = Credentials(
            settings.s3_access_key, settings.s3_secret_key.get_secret_value()
        )
        self.reuse_ms = int(settings.link_reuse_seconds * 1000)
        self.limit = settings.link_cache_size
        self._cache: dict[tuple[str, int], tuple[str, int]] = {}  # -> (url, expires_at_ms)

    def get(self, key: str, expires_in: int, now_ms: int | None = None) -> tuple[str, int]:
        """A link to ``key`` and when it expires (epoch ms)."""
        now = clock.now_ms() if now_ms is None else now_ms
        cached = self._cache.get((key, expires_in))
        if cached is not None and cached[1] - expires_in * 1000 + self.reuse_ms > now:
            return cached
        url = self.sign(key, expires_in)
        signed = (url, now + expires_in * 1000)
        self._cache.pop((key, expires_in), None)
        self._cache[(key, expires_in)] = signed
        if len(self._cache) > self.limit:
            del self._cache[next(iter(self._cache))]
        return signed

    def sign(self, key: str, expires_in: int) -> str:
        request = AWSRequest(
            method="GET", url=f"{self.endpoint}/{self.bucket}/{quote(key, safe='/~')}"
        )
        S3SigV4QueryAuth(self.credentials, "s3", self.region, expires_in).add_auth(request)
        url: str = request.url
        return url


def _read_hashing(handle: BinaryIO, size: int, digest: Any) -> bytes:
    block = handle.read(size)
    digest.update(block)
    return block


def _path_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class Uploaded:
    bytes: int
    sha256: str


RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@contextlib.contextmanager
def storage_errors(operation: str, key: str) -> Iterator[None]:
    """Translate botocore failures of ``operation`` into the error tree (see module doc)."""
    try:
        yield
    except ClientError as exc:
        status = _status(exc)
        code = str(exc.response.get("Error", {}).get("Code", "") or "unknown")
        message = f"object storage refused {operation} of {key!r} (HTTP {status}, {code})"
        if status in RETRYABLE_STATUS or status == 0:
            raise TransientError(message) from exc
        raise StorageError(message) from exc
    except BotoCoreError as exc:
        raise TransientError(f"object storage unreachable during {operation}") from exc


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
