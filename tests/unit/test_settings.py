from __future__ import annotations

from pathlib import Path

import pytest

from app.config_doc import render
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_matches_settings() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == render()


def test_environment_overrides_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXHAUST_TOPIC_PREFIX", "acme")
    monkeypatch.setenv("EXHAUST_S3_SECRET_KEY", "s3cr3t")
    settings = Settings()
    assert settings.topic("jobs") == "acme.jobs"
    assert "s3cr3t" not in repr(settings)
    assert settings.s3_client_kwargs()["aws_secret_access_key"] == "s3cr3t"


def test_botocore_only_sends_checksums_when_required() -> None:
    config = Settings().boto_config()
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXHAUST_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValueError, match="topic_partitions"):
        Settings()


def test_as_env_round_trips_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(topic_prefix="x", s3_secret_key="s3cr3t", spool_dir=Path("/tmp/spool"))
    env = original.as_env()
    assert env["EXHAUST_S3_SECRET_KEY"] == "s3cr3t"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings() == original
