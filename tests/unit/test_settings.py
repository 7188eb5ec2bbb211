from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config_doc import render
from app.settings import ApiKey, Settings, unsafe_combinations

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


@pytest.mark.parametrize("channel", ["../evil", "a b", "", "évil", "a/b"])
def test_channels_of_api_keys_and_consumers_must_be_identifiers(channel: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        Settings(api_keys=json.dumps({"k-0123456789abcdef": channel}))
    with pytest.raises(ValueError, match="identifier"):
        Settings(api_keys=json.dumps({"k-0123456789abcdef": {"channel": "ok", "roles": [channel]}}))
    with pytest.raises(ValueError, match="identifier"):
        Settings(learnosity_consumers=json.dumps({"c": {"secret": "s", "channel": channel}}))


def test_an_api_key_names_a_channel_and_its_roles() -> None:
    keys = {
        "k-0123456789abcdef": "acme",
        "k-fedcba9876543210": {"channel": "acme", "roles": ["fin"]},
    }
    parsed = Settings(api_keys=json.dumps(keys)).api_key_channels
    assert parsed["k-0123456789abcdef"] == ApiKey("acme")
    assert parsed["k-fedcba9876543210"] == ApiKey("acme", frozenset({"fin"}))


def test_unsafe_combinations_are_named() -> None:
    assert unsafe_combinations(Settings()) == []  # the local defaults: loopback everywhere
    public = unsafe_combinations(Settings(http_host="0.0.0.0"))
    assert len(public) == 1 and "EXHAUST_API_KEYS" in public[0]
    assert unsafe_combinations(Settings(http_host="0.0.0.0", gateway_authenticates=True)) == []
    # Health and metrics only (processor, generator): nothing of a channel to protect.
    assert unsafe_combinations(Settings(http_host="0.0.0.0"), serves_api=False) == []
    keyed = Settings(http_host="10.0.0.5", api_keys=json.dumps({"k-0123456789abcdef": "acme"}))
    assert unsafe_combinations(keyed) == []
    remote = unsafe_combinations(Settings(s3_endpoint="https://s3.eu-west-1.amazonaws.com"))
    assert len(remote) == 1 and "EXHAUST_S3_SECRET_KEY" in remote[0]
    own = Settings(s3_endpoint="https://s3.example.org", s3_access_key="AKIA", s3_secret_key="s")
    assert unsafe_combinations(own) == []
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert unsafe_combinations(Settings(http_host=host)) == [], host


def test_a_worker_on_a_public_address_without_authentication_refuses_to_start() -> None:
    env = {**os.environ, "EXHAUST_HTTP_HOST": "0.0.0.0", "EXHAUST_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    env.pop("EXHAUST_API_KEYS", None)
    result = subprocess.run(
        [sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 9  # a configuration error
    assert "refusing to start" in result.stderr and "EXHAUST_API_KEYS" in result.stderr


def test_a_stall_window_shorter_than_two_writer_commits_is_refused() -> None:
    # The writer's progress is its committed offset, which moves once per commit (2.8 s): a
    # shorter window reports healthy partitions as stalled.
    with pytest.raises(ValidationError, match="watchdog_stall_seconds"):
        Settings(watchdog_stall_seconds=3.0)
    assert Settings(watchdog_stall_seconds=6.0).watchdog_stall_seconds == 6.0


def test_table_memory_is_bounded_by_settings_shared_over_partitions() -> None:
    from app.stream.agents import table_options

    settings = Settings(
        topic_partitions=8, table_cache_bytes=64 << 20, table_write_buffer_bytes=4 << 20
    )
    options = table_options(settings, settings.table_cache_bytes)
    # One database per partition, each with its cache share and at most two write buffers.
    assert options["block_cache_size"] == 8 << 20
    assert (options["write_buffer_size"], options["max_write_buffer_number"]) == (4 << 20, 2)


def test_a_worker_creates_its_spool_and_state_directories_or_refuses_naming_them(
    tmp_path: Path,
) -> None:
    from app.domain.errors import ConfigurationError
    from app.service import prepare_directories

    settings = Settings(state_dir=tmp_path / "a" / "state", spool_dir=tmp_path / "b" / "spool")
    prepare_directories(settings)
    assert settings.state_dir.is_dir() and settings.spool_dir is not None
    assert settings.spool_dir.is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match=r"EXHAUST_SPOOL_DIR=.*cannot be created"):
        prepare_directories(settings.model_copy(update={"spool_dir": tmp_path / "file" / "x"}))
