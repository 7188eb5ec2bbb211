"""Kafka connection settings: one shape for every client, mistakes named at start."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import SecretStr, ValidationError

from app.domain.errors import ConfigurationError
from app.settings import Settings, unsafe_combinations
from app.stream.connection import client_options, faust_credentials
from deploy.local.certs import ensure_authority


def test_plaintext_is_the_local_default() -> None:
    settings = Settings()
    assert client_options(settings) == {
        "bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"
    }  # fmt: skip
    assert faust_credentials(settings) is None


def test_sasl_ssl_gives_every_client_scram_over_verified_tls(tmp_path: Path) -> None:
    tls = ensure_authority(tmp_path, ["exhaust-api"])
    settings = Settings(
        kafka_bootstrap="kafka-0.example:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="exhaust-api",
        kafka_sasl_password=SecretStr("s3cret-value"),
        kafka_ssl_cafile=tls.ca,
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "exhaust-api"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert (
        credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    )
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings)
    assert unsafe_combinations(settings) == []


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    tls = ensure_authority(tmp_path, ["exhaust-generator"])
    cert, key = tls.client("exhaust-generator")
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=tls.ca,
        kafka_ssl_certfile=cert,
        kafka_ssl_keyfile=key,
    )
    assert client_options(settings)["security_protocol"] == "SSL"
    assert isinstance(faust_credentials(settings), SSLCredentials)
    wrong = settings.model_copy(update={"kafka_ssl_keyfile": tls.ca})  # not a key
    with pytest.raises(ConfigurationError, match="cannot load the Kafka TLS files"):
        client_options(wrong)


def test_a_missing_file_or_credential_is_named_before_any_connection(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"EXHAUST_KAFKA_SSL_CAFILE=.*no such file"):
        client_options(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "x"))
    with pytest.raises(ValidationError, match="EXHAUST_KAFKA_SASL_PASSWORD"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u")
    with pytest.raises(ValidationError, match="KEYFILE"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=tmp_path / "c.pem")


def test_unencrypted_kafka_off_this_machine_is_refused_unless_allowed() -> None:
    remote = Settings(kafka_bootstrap="10.0.0.5:9092,127.0.0.1:9092")
    [problem] = unsafe_combinations(remote)
    assert "10.0.0.5" in problem and "EXHAUST_KAFKA_ALLOW_PLAINTEXT" in problem
    assert unsafe_combinations(remote.model_copy(update={"kafka_allow_plaintext": True})) == []
    assert unsafe_combinations(Settings(kafka_bootstrap="localhost:9092")) == []
