"""The platform works for real: broker, compacted topics, multipart upload, signed URLs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from botocore.exceptions import ConnectionClosedError

from app.domain.errors import StorageError, TopicLayoutError, TopicsMissing
from app.engine.storage import S3ObjectStore
from app.settings import Settings
from app.stream.topics import TopicSpec, ensure_topics, topic_specs
from tests.conftest import unique
from tests.integration.harness import eventually

pytestmark = pytest.mark.integration


def http_get(url: str) -> tuple[int, bytes]:
    """A plain HTTP GET (no AWS client): status and body, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_idempotent_producer_round_trip(settings: Settings) -> None:
    topic = settings.topic("roundtrip")
    await ensure_topics(settings, [TopicSpec(topic, 3)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = [(f"k{i % 7}".encode(), f"v{i}".encode()) for i in range(100)]
        for key, value in sent:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                received += [(m.key, m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(sent)
    # Per-key order is kept: each key's values arrive in the order they were sent.
    for key in {k for k, _ in sent}:
        assert [v for k, v in received if k == key] == [v for k, v in sent if k == key]


async def test_service_topics_are_created_with_compaction(settings: Settings) -> None:
    created = await ensure_topics(settings)
    assert sorted(created) == sorted(spec.name for spec in topic_specs(settings))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topic("jobs"))
        [response] = await admin.describe_configs([resource])
        entries = {e[0]: e[1] for e in response.resources[0][4]}
        described = await admin.describe_topics([settings.topic("requests")])
    finally:
        await admin.close()
    assert entries["cleanup.policy"] == "compact"
    assert len(described[0]["partitions"]) == settings.topic_partitions
    assert await ensure_topics(settings) == []  # second start: nothing to create, layout ok


async def test_existing_topic_breaking_the_layout_is_refused(settings: Settings) -> None:
    await ensure_topics(settings, [TopicSpec(settings.topic("requests"), 1)])
    await ensure_topics(settings, [TopicSpec(settings.topic("jobs"), 3)])  # not compacted

    async def refusal() -> TopicLayoutError | None:
        try:
            await ensure_topics(settings)
        except TopicsMissing:
            return None  # just created, described a moment later: the service retries too
        except TopicLayoutError as refused:
            return refused
        raise AssertionError("a broken layout was accepted")

    refused = await eventually(refusal, 30, "the layout refused")
    assert "co-partitioning" in refused.message
    assert "must be compact" in refused.message


def multipart_from_one_part(settings: Settings) -> Settings:
    """``settings`` with every file larger than one part uploaded in parts."""
    return settings.model_copy(
        update={"s3_multipart_threshold_bytes": settings.s3_multipart_chunk_bytes}
    )


async def test_multipart_upload_then_presigned_download(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    payload = os.urandom(settings.s3_multipart_chunk_bytes * 2 + 12345)  # three parts
    path.write_bytes(payload)
    async with S3ObjectStore(multipart_from_one_part(settings)) as store:
        await store.ensure_bucket()
        sent = await store.upload_file("some/dir/big.bin", path)
        url = await store.presign_get("some/dir/big.bin", expires_in=60)
        uploads = await store.client.list_multipart_uploads(Bucket=store.bucket)
    assert (sent.bytes, sent.sha256) == (len(payload), hashlib.sha256(payload).hexdigest())
    assert not uploads.get("Uploads")  # completed, nothing left dangling
    status, body = await asyncio.to_thread(http_get, url)
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(payload).hexdigest()


async def test_failed_multipart_upload_is_aborted(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (settings.s3_multipart_chunk_bytes + 10))
    async with S3ObjectStore(multipart_from_one_part(settings)) as store:
        await store.ensure_bucket()
        real_upload_part = store.client.upload_part
        calls = 0

        async def failing_second_part(**kwargs: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise ConnectionError("network dropped")
            return await real_upload_part(**kwargs)

        store.client.upload_part = failing_second_part
        with pytest.raises(ConnectionError):
            await store.upload_file("broken.bin", path)
        uploads = await store.client.list_multipart_uploads(Bucket=store.bucket)
        assert not await store.exists("broken.bin")
    assert not uploads.get("Uploads")


async def test_a_file_under_the_threshold_is_one_streamed_put_with_an_unsigned_body(
    settings: Settings, tmp_path: Path
) -> None:
    """Above one part and up to the threshold: one PutObject streamed from the file with
    UNSIGNED-PAYLOAD (S3Proxy buffers a signed body whole in its heap), headers still signed."""
    path = tmp_path / "mid.bin"
    payload = os.urandom(settings.s3_multipart_chunk_bytes * 3 + 777)
    path.write_bytes(payload)
    sent_headers: list[dict[str, str]] = []
    async with S3ObjectStore(settings) as store:
        await store.ensure_bucket()

        def record(request: Any, **_: object) -> None:
            sent_headers.append(
                {k.lower(): v.decode() if isinstance(v, bytes) else v
                 for k, v in request.headers.items()}
            )  # fmt: skip

        store.client.meta.events.register("before-send.s3", record)
        sent = await store.upload_file("mid/one.bin", path, "text/csv")
        await store.put_bytes("mid/small.txt", b"signed as usual")
        body = await store.get_bytes("mid/one.bin")
        head = await store.client.head_object(Bucket=store.bucket, Key="mid/one.bin")
        uploads = await store.client.list_multipart_uploads(Bucket=store.bucket)
    assert (sent.bytes, sent.sha256) == (len(payload), hashlib.sha256(payload).hexdigest())
    assert body == payload and head["ContentType"] == "text/csv"
    assert not uploads.get("Uploads")
    puts = [h for h in sent_headers if "x-amz-content-sha256" in h]
    # the streamed PUT, then the small one (signed), then the reads
    assert puts[0]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "AWS4-HMAC-SHA256" in puts[0]["authorization"]
    assert puts[1]["x-amz-content-sha256"] == hashlib.sha256(b"signed as usual").hexdigest()


async def test_a_streamed_put_cut_off_mid_body_is_retried_whole(
    settings: Settings, tmp_path: Path
) -> None:
    """botocore retries a dropped connection; the retry must send the file from its start."""
    path = tmp_path / "mid.bin"
    payload = os.urandom(settings.s3_multipart_chunk_bytes + 4321)
    path.write_bytes(payload)
    attempts = 0
    async with S3ObjectStore(settings) as store:
        await store.ensure_bucket()

        def drop_the_first(request: Any, **_: object) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                request.body.read(1 << 20)  # a megabyte went out, then the connection dropped
                raise ConnectionClosedError(endpoint_url=request.url)

        store.client.meta.events.register("before-send.s3.PutObject", drop_the_first)
        sent = await store.upload_file("retried/one.bin", path)
        body = await store.get_bytes("retried/one.bin")
    assert attempts == 2
    assert body == payload and sent.sha256 == hashlib.sha256(payload).hexdigest()


async def test_a_streamed_put_that_fails_reports_the_store_error(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "mid.bin"
    path.write_bytes(b"y" * (settings.s3_multipart_chunk_bytes + 1))
    async with S3ObjectStore(settings, bucket=unique("absent")) as store:  # never created
        with pytest.raises(StorageError) as caught:
            await store.upload_file("x/mid.bin", path)
    assert "PutObject" in caught.value.message and "NoSuchBucket" in caught.value.message


async def test_tampered_and_expired_presigned_urls_are_refused(settings: Settings) -> None:
    async with S3ObjectStore(settings) as store:
        await store.ensure_bucket()
        await store.put_bytes("a/secret.txt", b"only for the signed key")
        await store.put_bytes("a/other.txt", b"not signed for this")
        good = await store.presign_get("a/secret.txt", expires_in=300)
        short = await store.presign_get("a/secret.txt", expires_in=2)
    assert await asyncio.to_thread(http_get, good) == (200, b"only for the signed key")

    other_key = good.replace("a/secret.txt", "a/other.txt")
    status, body = await asyncio.to_thread(http_get, other_key)
    assert status == 403 and b"SignatureDoesNotMatch" in body
    forged = good[:-6] + ("000000" if not good.endswith("000000") else "111111")
    status, body = await asyncio.to_thread(http_get, forged)
    assert status == 403 and b"SignatureDoesNotMatch" in body

    deadline = time.monotonic() + 15
    status, body = await asyncio.to_thread(http_get, short)
    while status == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.25)  # polling the server's clock, with a deadline
        status, body = await asyncio.to_thread(http_get, short)
    assert status == 403 and b"expired" in body
