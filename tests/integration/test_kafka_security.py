"""Exhaust on a secured broker: SASL_SSL (SCRAM-SHA-512) and mutual TLS, ACLs enforced.

The broker is the project's own Kafka started with ``stack_kafka_security=sasl_ssl``: a CA of
its own, one SCRAM user per principal created by Kafka's storage tool, the StandardAuthorizer
denying whatever :func:`app.stream.access.grants` does not allow. Each worker role runs as its
own principal holding only its own ACLs, so a grant missing from that table fails here.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import SecretStr

from app.settings import Settings
from app.stream.access import PrincipalRole
from app.stream.connection import client_options
from deploy.local.secure_kafka import SecureKafka
from tests.conftest import ROOT
from tests.integration.harness import Worker, download, eventually

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def collect_refused_clients() -> Iterator[None]:
    """Finalise here what this module's clients leave behind. Once, the garbage collector
    warned of an unclosed socket during the Learnosity test that runs after this module; the
    likeliest source is a client the broker refused here (authentication, authorisation), whose
    connection aiokafka may leave open. Only this module's own clients can leak into this
    process (the workers are other processes), so collecting here keeps the warning where it
    belongs. Not reproduced on demand: a collection after each test here showed nothing."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def secured() -> Iterator[SecureKafka]:
    from deploy.local.stack import LocalStack

    stack_dir = ROOT / ".stack-test-secure"
    shutil.rmtree(stack_dir, ignore_errors=True)
    settings = Settings(
        stack_dir=stack_dir,
        cache_dir=ROOT / ".cache",
        stack_kafka_security="sasl_ssl",
        stack_kafka_port=int(os.environ.get("EXHAUST_TEST_SECURE_KAFKA_PORT", "29192")),
        stack_controller_port=int(os.environ.get("EXHAUST_TEST_SECURE_CONTROLLER_PORT", "29193")),
        stack_kafka_tls_port=int(os.environ.get("EXHAUST_TEST_SECURE_TLS_PORT", "29194")),
    )
    local = LocalStack(settings, only=("kafka",))
    local.up()
    try:
        yield SecureKafka(settings)
    finally:
        local.down(only_started=True)
        shutil.rmtree(stack_dir, ignore_errors=True)


@pytest.fixture
def tenant(secured: SecureKafka, settings_factory: Callable[..., Settings]) -> SecureKafka:
    """The secured broker with the ACLs of this test's own topic prefix and group."""
    base = settings_factory()
    scoped = SecureKafka(
        secured.settings.model_copy(
            update={"topic_prefix": base.topic_prefix, "consumer_group": base.consumer_group}
        )
    )
    scoped.apply_acls()
    return scoped


def as_principal(
    base: Settings, secure: SecureKafka, role: PrincipalRole | None, mtls: bool = False
) -> Settings:
    """``base`` connecting to the secured broker as ``role``'s principal."""
    env = secure.client_env(role, mtls)
    updates = {key.removeprefix("EXHAUST_").lower(): value for key, value in env.items()}
    return Settings.model_validate({**base.model_dump(), **updates})


def secrets_of(secure: SecureKafka) -> list[str]:
    tls = secure.home / "tls"
    return [*secure.passwords().values(), (tls / "broker.pass").read_text().strip()]


async def test_a_request_reaches_success_with_every_role_its_own_principal(
    tenant: SecureKafka, settings_factory: Callable[..., Settings]
) -> None:
    base = settings_factory(
        topic_prefix=tenant.settings.topic_prefix, consumer_group=tenant.settings.consumer_group
    )
    workers = [
        Worker(as_principal(base, tenant, role), role, role=role)
        for role in ("processor", "generator", "api")
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            await worker.wait_ready()
        api = workers[2]
        status, body = await api.post(
            "/v1/requests",
            {"tag": "secure-1", "dataset": "demo-export", "config": {"rows": 50}},
            channel="acme",
        )
        assert status == 202, body
        job_id = body["request_id"]

        async def succeeded() -> Any:
            _, job = await api.get(f"/v1/jobs/{job_id}", channel="acme")
            return job if job and job.get("status") in ("SUCCESS", "FAILED") else None

        job = await eventually(succeeded, 120, "the job over SASL_SSL")
        assert job["status"] == "SUCCESS", job
        data = await asyncio.to_thread(download, job["download_urls"][0])
        assert data.count(b"\n") >= 50

        async def read_model_current() -> bool:
            _, metrics = await api.get("/metrics")
            return 'exhaust_read_model_lag{model="read_model"} 0.0' in metrics

        await eventually(read_model_current, 10, "the read model's lag to be reported as 0")
    finally:
        for worker in workers:
            if worker.proc is not None:
                worker.stop()
    logs = "\n".join(worker.log_path.read_text(errors="replace") for worker in workers)
    leaked = [secret[:4] + "…" for secret in secrets_of(tenant) if secret in logs]
    assert leaked == [], "a Kafka secret appears in the workers' logs"


async def test_the_producer_principal_may_write_requests_and_nothing_else(
    tenant: SecureKafka, settings_factory: Callable[..., Settings]
) -> None:
    base = settings_factory(
        topic_prefix=tenant.settings.topic_prefix, consumer_group=tenant.settings.consumer_group
    )
    admin = as_principal(base, tenant, None)
    from app.stream.topics import ensure_topics

    await ensure_topics(admin)
    producer_settings = as_principal(base, tenant, "producer")
    producer = AIOKafkaProducer(**client_options(producer_settings), request_timeout_ms=10_000)
    await producer.start()
    try:
        sent = await producer.send_and_wait(base.topic("requests"), b"{}", key=b"tag")
        assert sent.offset >= 0
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(base.topic("job-events"), b"forged", key=b"tag")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        base.topic("jobs"), **client_options(producer_settings), request_timeout_ms=10_000
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):  # refused at start or first fetch
            await consumer.start()
            await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()


async def test_a_client_certificate_names_its_principal_and_a_bad_password_is_refused(
    tenant: SecureKafka, settings_factory: Callable[..., Settings]
) -> None:
    base = settings_factory(
        topic_prefix=tenant.settings.topic_prefix, consumer_group=tenant.settings.consumer_group
    )
    from app.stream.topics import ensure_topics

    await ensure_topics(as_principal(base, tenant, None))
    # Mutual TLS: the generator's certificate may write job-events but not requests.
    generator = as_principal(base, tenant, "generator", mtls=True)
    producer = AIOKafkaProducer(**client_options(generator), request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(base.topic("job-events"), b"x", key=b"tag")
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(base.topic("requests"), b"x", key=b"tag")
    finally:
        await producer.stop()
    # SCRAM with the wrong password: the broker refuses the connection.
    wrong = as_principal(base, tenant, "processor").model_copy(
        update={"kafka_sasl_password": SecretStr("not-the-password")}
    )
    refused = AIOKafkaProducer(**client_options(wrong), request_timeout_ms=5_000)
    with pytest.raises(KafkaError):
        await refused.start()
    await refused.stop()
