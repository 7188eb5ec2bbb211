"""The one settings object.

Read once at start (from ``EXHAUST_*`` environment variables or a ``.env`` file), frozen, and
passed explicitly to whatever needs it. Every field is documented in ``docs/configuration.md``;
``tests/unit/test_settings.py`` keeps that table and this class in step.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from botocore.config import Config as BotoConfig
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain import identifiers
from app.domain.managed_datasets import DatasetPolicy
from app.domain.state_machine import JobPolicy

# How often the writer commits its offsets (Faust's broker_commit_interval). Its watchdog
# measures progress by the committed offset, so a stall window must be well above this.
WRITER_COMMIT_SECONDS = 2.8

# The local stack's S3 credentials: fine on this machine, refused for any other endpoint.
LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY = "exhaust", "exhaust-local-secret"


class Settings(BaseSettings):
    """Everything Exhaust can be told, with defaults that run a local stack out of the box."""

    model_config = SettingsConfigDict(env_prefix="EXHAUST_", env_file=".env", frozen=True)

    # --- Kafka (clients) -----------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("exhaust", description="Prefix of every topic the service owns.")
    topic_partitions: int = Field(
        6,
        ge=1,
        description="Partitions of the topics the service creates.",
    )
    topic_replication: int = Field(
        1,
        ge=1,
        description="Replication factor of created topics (3 on a production cluster); in "
        "verify mode, the least a topic must have.",
    )
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of created topics (2 with a replication factor of 3); "
        "unset: the broker's default.",
    )
    topic_retention_hours: int = Field(
        168,
        ge=1,
        description="retention.ms of the event topics (requests, job-events, work, fills): "
        "long enough to replay a backlog after an outage. The compacted job store and "
        "catalog keep every key until it is deleted.",
    )
    dlq_retention_hours: int = Field(
        720, ge=1, description="retention.ms of the dead-letter topic (time to inspect and replay)."
    )
    topic_mode: Literal["create", "verify"] = Field(
        "create",
        description="create: the processor creates missing topics, other roles wait for them; "
        "verify: an operator owns the topics (Strimzi's Topic Operator, say) and every role "
        "only checks them (partitions, cleanup policy, co-partitioning, replication) and "
        "refuses to start on a mismatch.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client connects: SASL_SSL (SCRAM over TLS), SSL (TLS, "
        "with a client certificate for mutual TLS), or PLAINTEXT (the local stack).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_SSL, SASL_PLAINTEXT)."
    )
    kafka_sasl_username: str = Field("", description="SASL user name (the role's principal).")
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""), description="SASL password (from a secret; never logged)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM bundle of the CAs that sign the brokers' certificates; unset: the "
        "system's CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate (chain) for mutual TLS."
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of the client certificate."
    )
    kafka_ssl_key_password: SecretStr = Field(
        SecretStr(""), description="Password of an encrypted private key (never logged)."
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to."
    )
    kafka_allow_plaintext: bool = Field(
        False,
        description="Allow PLAINTEXT or SASL_PLAINTEXT to brokers that are not on this machine "
        "(a private network trusted with every job and its keys); refused otherwise.",
    )
    consumer_group: str = Field("exhaust", description="Consumer group (Faust app id) of workers.")
    writer_fetch_max_wait_ms: int = Field(
        10,
        ge=1,
        le=1500,
        description="Longest a fetch of the writer's consumer waits at the broker (faust-"
        "streaming's own 1500 ms adds up to that much latency to requests).",
    )
    writer_batch_max: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Most events the writer decides and writes as one batch: the events "
        "already buffered when it takes the next one, never waiting for more (the batch's table "
        "writes and sends then leave in a few produce requests instead of one each).",
    )
    consumer_session_timeout_seconds: float = Field(
        30.0, ge=6, description="A worker silent this long loses its partitions to the others."
    )

    # --- Object storage (clients) --------------------------------------------------------
    s3_endpoint: str = Field("http://127.0.0.1:19000", description="S3-compatible endpoint URL.")
    s3_region: str = Field("us-east-1", description="Region used to sign requests.")
    s3_access_key: str = Field(
        LOCAL_S3_ACCESS_KEY,
        description="S3 access key id. The default is the local stack's: a worker refuses it "
        "for an endpoint that is not on this machine.",
    )
    s3_secret_key: SecretStr = Field(
        SecretStr(LOCAL_S3_SECRET_KEY),
        description="S3 secret (the local stack's by default, refused off this machine).",
    )
    s3_bucket: str = Field("exhaust", description="Bucket that holds generated datasets.")
    s3_multipart_chunk_bytes: int = Field(
        8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Part size of multipart uploads."
    )
    s3_multipart_threshold_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        le=5 * 1024 * 1024 * 1024,
        description=(
            "Files up to this size are uploaded in one streamed PUT, larger ones in parts. "
            "Single-node servers (S3Proxy, the local stack) copy every part again when the "
            "upload completes, which makes one PUT 2-3x faster there (docs/benchmarks.md 5); "
            "on AWS S3, parallel parts beat one stream: set 64 MiB."
        ),
    )
    link_expiry_seconds: int = Field(
        3600, ge=1, le=604800, description="Lifetime of presigned download links."
    )
    link_reuse_seconds: float = Field(
        60.0,
        ge=0,
        description="A presigned link is handed out again for this long after signing (a "
        "link then lives between expiry minus this and expiry; responses give the exact time).",
    )
    link_cache_size: int = Field(100_000, ge=0, description="Most presigned links kept.")

    # --- HTTP ----------------------------------------------------------------------------
    http_host: str = Field(
        "127.0.0.1",
        description="Address the HTTP API binds to. Any other than loopback needs "
        "EXHAUST_API_KEYS, or EXHAUST_GATEWAY_AUTHENTICATES=true when a gateway in front "
        "authenticates every caller and sets X-Channel-ID.",
    )
    gateway_authenticates: bool = Field(
        False,
        description="Say that a gateway in front of the HTTP API authenticates every caller and "
        "sets X-Channel-ID (and X-Exhaust-Roles); only then may a worker bound to a non-loopback "
        "address run without EXHAUST_API_KEYS.",
    )
    http_port: int = Field(8080, ge=1, le=65535, description="Port of the HTTP API.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="json: one JSON object per line (timestamp, level, logger, event and the "
        "job's request_id, tag, channel, attempt); console: readable lines; auto: console on "
        "a terminal, JSON otherwise.",
    )

    # --- Jobs -----------------------------------------------------------------------------
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts per job before FAILED.")
    lease_seconds: float = Field(
        30.0, gt=0, description="A PROCESSING attempt without a heartbeat this long is retried."
    )
    dispatch_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="A SUBMITTED job not started this long gets its work item again (same "
        "attempt), unless it is still queued behind busy generators.",
    )
    deadline_index_size: int = Field(
        1_000_000,
        ge=1000,
        description="Most job deadlines a writer keeps in memory; beyond it the periodic "
        "sweep finds them.",
    )
    heartbeat_seconds: float = Field(2.0, gt=0, description="Progress report interval.")
    tick_seconds: float = Field(5.0, gt=0, description="How often leases are checked.")
    expiry_sweep_seconds: float = Field(
        300.0, gt=0, description="How often a full pass over the table expires old outputs."
    )
    retention_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="How long outputs of a SUCCESS job stay available."
    )
    dedup_window_seconds: int = Field(
        86400, ge=1, description="Identical requests without a client id within it are one job."
    )
    generator_concurrency: int = Field(
        2, ge=1, le=64, description="Work items one worker generates at the same time."
    )
    generator_prefetch: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Work items one worker holds decoded, ready to start the moment a "
        "generation ends (never started, so never committed: after a crash or a rebalance "
        "their partition's next owner runs them).",
    )
    janitor_grace_seconds: float = Field(
        600.0,
        ge=0,
        description="How long after a job ended its dead attempts' objects (a killed, failed "
        "or cancelled attempt's files and unfinished uploads) are deleted; longer than a "
        "generator needs to notice it lost its lease.",
    )
    generation_timeout_seconds: float = Field(
        3600.0, gt=0, description="An attempt running longer fails (and is retried)."
    )

    # --- Managed datasets (POST /dataset-fill) ---------------------------------------------
    compact_min_segments: int = Field(
        16,
        ge=0,
        le=100_000,
        description="A dataset version with this many segments (a fill each) has its small "
        "consecutive segments merged into one in the background (0: never), so exports fetch "
        "and open few files.",
    )
    compact_target_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024 * 1024,
        description="Largest segment compaction writes; segments of half this size or more are "
        "left as they are.",
    )
    compact_interval_seconds: float = Field(
        30.0, gt=0, description="How often each API worker looks for datasets to compact."
    )
    fill_max_upload_bytes: int = Field(
        5 * 1024**3,
        ge=1024,
        le=5 * 1024**3,
        description="Largest file a fill may upload (POST /v1/datasets/{code}/uploads, one "
        "presigned PUT; 5 GiB is S3's limit for one). Larger is refused before it is read.",
    )
    fill_upload_expiry_seconds: int = Field(
        3600,
        ge=60,
        le=7 * 86400,
        description="Lifetime of an upload's presigned PUT link.",
    )
    fill_max_body_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest /dataset-fill request body (BODY_TOO_LARGE).",
    )
    fill_max_decompressed_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024,
        description="Largest insert-data once un-gzipped; inflation stops there, a gzip bomb is "
        "refused before it is inflated in full (DECOMPRESSED_TOO_LARGE).",
    )
    fill_max_rows: int = Field(
        1_000_000, ge=1, description="Most rows in one fill (TOO_MANY_ROWS); send more in appends."
    )
    dataset_max_columns: int = Field(
        500, ge=1, le=10_000, description="Most columns of a dataset (TOO_MANY_COLUMNS)."
    )
    fill_max_value_bytes: int = Field(
        64 * 1024, ge=16, description="Longest single value, in bytes of UTF-8 (VALUE_TOO_LARGE)."
    )
    dataset_max_segments: int = Field(
        2000,
        ge=1,
        le=20_000,
        description="Most segments (appends) in one version of a dataset (TOO_MANY_SEGMENTS); "
        "a truncate starts again from one. Keeps a catalog entry well under a Kafka message.",
    )
    fill_inline_max_bytes: int = Field(
        256 * 1024,
        ge=0,
        le=768 * 1024,
        description="A fill's Parquet segment up to this size travels inside its event; a "
        "larger one is staged in object storage first and the event carries its key.",
    )
    fill_wait_seconds: float = Field(
        30.0,
        ge=0,
        description="How long POST /dataset-fill waits for the fill to be applied before "
        "answering 202 with an operation to poll.",
    )
    fill_memory_budget_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory the fills of one API worker may hold at once, reserved before a body "
        "is read: 3 x its Content-Length (the body, its parsed text and the decoded rows; "
        "without one, 3 x EXHAUST_FILL_MAX_BODY_BYTES). A fill that does not fit is 503 BUSY "
        "with Retry-After, unread.",
    )
    fill_concurrency: int = Field(
        2, ge=1, le=64, description="Fills one API worker decodes and converts at the same time."
    )
    fill_history: int = Field(
        20, ge=1, le=1000, description="Outcomes of recent fills kept in each catalog entry."
    )
    dataset_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="Superseded segments (after a truncate) and refused staged segments are "
        "deleted this long after they stop being used.",
    )
    dataset_sweep_seconds: float = Field(
        60.0, gt=0, description="How often a fill writer looks for segments past their grace."
    )
    duckdb_memory_limit: str = Field(
        "512MB", description="DuckDB memory_limit of each conversion (it spills beyond it)."
    )
    duckdb_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="DuckDB threads per conversion (its JSON reader is single-threaded; "
        "concurrent fills use the cores).",
    )

    # --- Generation engine ------------------------------------------------------------------
    export_memory_limit: str = Field(
        "256MB",
        description="DuckDB memory_limit of each export; sorts, groups and splits spill to the "
        "spool directory beyond it. A generator's peak memory is this times "
        "generator_concurrency, plus its upload parts.",
    )
    export_threads: int = Field(2, ge=1, le=64, description="DuckDB threads of each export.")
    export_max_files: int = Field(
        10_000, ge=1, description="Most files one job may write (splits beyond it fail the job)."
    )
    upload_concurrency: int = Field(
        4, ge=1, le=64, description="Parts of one multipart upload in flight at once."
    )
    catalog_dir: Path | None = Field(
        None,
        description="A directory of extra dataset types (*.yaml), added to the built-in ones.",
    )
    public_base_url: str | None = Field(
        None,
        description="Base URL of public links, standing for the bucket's public/ prefix: outputs "
        "of a type marked public (written under public/) are linked as {public_base_url}/{key "
        "without public/} instead of presigned. Scope the CDN or bucket policy to public/ "
        "(docs/security.md).",
    )
    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key that seals encryption keys between the API and the generator "
        "(all workers need the same one); unset: read or created at {state_dir}/secrets.key.",
    )

    # --- HTTP: who may call, how much ---------------------------------------------------
    api_keys: SecretStr | None = Field(
        None,
        description='API keys of the HTTP API, as JSON {"<key>": "<channel>"} or {"<key>": '
        '{"channel": "<channel>", "roles": ["<role>", …]}}. Set: every call (but Sunbird\'s '
        "public datasets) needs one (Authorization: Bearer <key> or X-API-Key) and acts for its "
        "channel with its roles (which gate dataset types). Unset: X-Channel-ID (and "
        "X-Exhaust-Roles) from a trusted gateway name them.",
    )
    anonymous_channels: dict[str, str] = Field(
        default_factory=dict,
        description="The channel a caller without X-Channel-ID acts for, per profile, as JSON "
        '{"usaspending": "<channel>", "sunbird-public": "<channel>"}: the public APIs these '
        "profiles copy have no tenants, so their unchanged clients send no header. Unset: such "
        "calls are refused (403). usaspending applies only without EXHAUST_API_KEYS (with keys, "
        "every call needs one); sunbird-public is the public dataset route, open by design.",
    )
    max_request_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest body of an API call (dataset-fill has its own limit); larger is 413 "
        "BODY_TOO_LARGE, refused before it is read.",
    )

    min_encryption_key_chars: int = Field(
        7,
        ge=1,
        le=256,
        description="Shortest encryption_key (zip password) a request may give; shorter or empty "
        "is 400 INVALID_ENCRYPTION_KEY in every profile. 7 admits Sunbird's documented sample key; "
        "raise it where clients can follow.",
    )
    max_inputs: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Most input files one request may name (after duplicates are dropped); more "
        "is 413 TOO_MANY_INPUTS at submit, or a FAILED job from Kafka.",
    )
    max_input_bytes: int = Field(
        10 * 1024**3,
        ge=1,
        description="Most bytes of input files one job may read, summed over its inputs and "
        "checked (by HEAD) before any is downloaded, and per upload at commence: 413 / FAILED "
        "INPUTS_TOO_LARGE.",
    )

    # --- Standard datasets and the Sunbird profile ----------------------------------------
    standard_catch_up_days: int = Field(
        3,
        ge=0,
        le=366,
        description="Each scheduler run submits the standard datasets (types declared "
        "schedule: daily) of this many complete days back, for every channel that holds their "
        "sources (0: no scheduler; use exhaust backfill).",
    )
    standard_delay_seconds: int = Field(
        3600,
        ge=0,
        le=86399,
        description="A day's standard datasets are submitted this long after it ends (UTC), "
        "so late data is in.",
    )
    scheduler_interval_seconds: float = Field(
        600.0, gt=0, description="How often the scheduler looks for standard datasets due."
    )
    standard_max_days: int = Field(
        10,
        ge=1,
        le=366,
        description="Longest date range of GET /dataset/get and /public/dataset/get, in days.",
    )
    submit_visible_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="The Sunbird and USAspending submit calls wait up to this long for the new "
        "job to show in the read model, so that a read right after the answer finds it.",
    )
    learnosity_consumers: SecretStr | None = Field(
        None,
        description="Consumers of the Learnosity-style Data API, as JSON: "
        '{"<consumer_key>": {"secret": "…", "channel": "…"}}. Set: every Data API call must be '
        "signed (the SDK's security packet) and acts for its consumer's channel. Unset: the "
        "X-Channel-ID header of a trusted gateway names the channel, as for the other profiles.",
    )
    learnosity_upload_expiry_seconds: int = Field(
        3600,
        ge=1,
        le=7 * 86400,
        description="Lifetime of the presigned PUT links of a dataset's input files; a dataset "
        "not commenced by then fails with INPUT_EXPIRED.",
    )
    learnosity_signature_skew_seconds: int = Field(
        900,
        ge=60,
        description="How far a signed request's timestamp may be from the server's clock.",
    )
    learnosity_signature_max_seconds: int = Field(
        3600,
        ge=60,
        le=7 * 86400,
        description="Longest a signed Learnosity-style packet may stay valid: its expires may lie "
        "at most this long after its timestamp.",
    )
    usaspending_rows_per_file: int = Field(
        1_000_000,
        ge=1,
        le=100_000_000,
        description="Rows per CSV file inside a USAspending download's zip.",
    )
    sunbird_list_limit: int = Field(
        100,
        ge=1,
        le=1000,
        description="Jobs in GET /dataset/v1/request/list without ?limit= (100, as Sunbird's "
        "data_exhaust.list.limit).",
    )
    sunbird_public_max_days: int = Field(
        30,
        ge=1,
        le=366,
        description="Longest date range of GET /public/dataset/get, in days (Sunbird's "
        "public.data_exhaust.max.interval.days).",
    )
    sunbird_public_window_months: int = Field(
        2,
        ge=1,
        le=120,
        description="GET /public/dataset/get refuses a range starting more than this many months "
        "ago (Sunbird's public.data_exhaust.expiryMonths).",
    )
    sunbird_request_day_timezone: str = Field(
        "UTC",
        description="Time zone of the day hashed into a Sunbird request id (Sunbird hashes the "
        "server's local day): set the one the replaced service ran in, so a client that "
        "computes ids itself finds its job.",
    )
    sunbird_unknown_job: Literal["404", "200"] = Field(
        "404",
        description="GET /dataset/v1/request/read of an unknown job: 404 RESOURCE_NOT_FOUND, or, "
        "as Sunbird answers it, 200 with params.status failed and responseCode OK.",
    )
    sunbird_config_conflict: Literal["409", "existing"] = Field(
        "409",
        description="A Sunbird submit whose request id names a live job with another "
        "datasetConfig: 409, or, as Sunbird answers it, 200 with the existing job.",
    )

    # --- Worker ---------------------------------------------------------------------------
    state_dir: Path = Field(
        Path(".state"), description="Local state of a worker (job table store, read model)."
    )
    table_store: str = Field(
        "rocksdb://",
        description="Faust store of the job table: rocksdb:// (on disk, bounded memory) or "
        "memory:// (everything in RAM; small deployments and experiments).",
    )
    table_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        description="RocksDB block cache of the job table, in all: each partition's database "
        "gets its share (Faust gives every database a cache of its own).",
    )
    table_write_buffer_bytes: int = Field(
        4 * 1024 * 1024,
        ge=256 * 1024,
        description="RocksDB write buffer (memtable) of each table partition; at most two are "
        "held per partition before a flush (Faust's default, 64 MiB x 3 per partition, let the "
        "tables of one worker reach gigabytes).",
    )
    spool_dir: Path | None = Field(None, description="Temp files of generators (default: TMPDIR).")

    watchdog_interval_seconds: float = Field(
        5.0, gt=0, description="How often the watchdog compares consumer progress with lag."
    )
    watchdog_stall_seconds: float = Field(
        60.0,
        ge=2 * WRITER_COMMIT_SECONDS,
        description="A partition with lag whose consumer made no progress this long is "
        "stalled: reported, /readyz false, resumed and re-sought; still stalled as long again "
        "after that: the worker exits (CONSUMER_STALLED) for its supervisor to restart. At "
        "least twice the writer's commit interval (2.8 s): the writer's progress is its "
        "committed offset, which moves only at a commit.",
    )

    # --- Local stack (deploy/local) ------------------------------------------------------
    stack_dir: Path = Field(Path(".stack"), description="Data, logs and pid files of the stack.")
    cache_dir: Path = Field(Path(".cache"), description="Fetched jars (Kafka, S3Proxy).")
    stack_kafka_port: int = Field(19092, description="Broker port of the local Kafka.")
    stack_controller_port: int = Field(19093, description="KRaft controller port.")
    stack_s3_port: int = Field(19000, description="Port of the local S3 server.")
    stack_kafka_security: Literal["plaintext", "sasl_ssl"] = Field(
        "plaintext",
        description="sasl_ssl: the local Kafka listens with SASL_SSL (SCRAM-SHA-512) on its "
        "broker port and mutual TLS on the TLS port, with a certificate authority of its own, "
        "one user per role and ACLs (docs/security.md); credentials under the stack directory.",
    )
    stack_kafka_tls_port: int = Field(
        19094, description="Mutual-TLS listener of the secured local Kafka."
    )
    kafka_version: str = Field("4.1.1", description="Apache Kafka version fetched from Maven.")
    s3proxy_version: str = Field("2.6.0", description="S3Proxy version fetched from Maven.")
    stack_start_timeout: float = Field(90.0, gt=0, description="Seconds to wait for readiness.")

    @field_validator("learnosity_consumers")
    @classmethod
    def _consumers_are_json(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_consumers(value.get_secret_value())
        return value

    @field_validator("sunbird_request_day_timezone")
    @classmethod
    def _timezone_is_known(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. Asia/Kolkata)") \
                from exc  # fmt: skip
        return value

    @field_validator("anonymous_channels")
    @classmethod
    def _anonymous_channels_are_known(cls, value: dict[str, str]) -> dict[str, str]:
        from app.domain import identifiers

        unknown = sorted(set(value) - set(ANONYMOUS_PROFILES))
        if unknown:
            raise ValueError(f"unknown profiles {unknown}; known: {list(ANONYMOUS_PROFILES)}")
        for profile, channel in value.items():
            identifiers.check(f"anonymous_channels.{profile}", channel)
        return value

    @model_validator(mode="after")
    def _kafka_credentials_complete(self) -> Settings:
        """A SASL protocol without a user or password, or half a client certificate, is a
        mistake to name at start, not an authentication error from the broker later."""
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"kafka_security_protocol={self.kafka_security_protocol} needs "
                "EXHAUST_KAFKA_SASL_USERNAME and EXHAUST_KAFKA_SASL_PASSWORD"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "mutual TLS needs both EXHAUST_KAFKA_SSL_CERTFILE and EXHAUST_KAFKA_SSL_KEYFILE"
            )
        return self

    @field_validator("api_keys")
    @classmethod
    def _api_keys_are_json(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_keys(value.get_secret_value())
        return value

    @cached_property
    def api_key_channels(self) -> dict[str, ApiKey]:
        """``key -> (channel, roles)`` of the HTTP API (empty: the gateway's headers)."""
        raw = self.api_keys
        return parse_api_keys(raw.get_secret_value()) if raw is not None else {}

    def secret_values(self) -> list[str]:
        """Every configured secret, as text: the logs redact them wherever they appear."""
        values = [
            secret.get_secret_value()
            for secret in (
                self.kafka_sasl_password,
                self.kafka_ssl_key_password,
                self.s3_secret_key,
                self.secrets_key,
                self.api_keys,
                self.learnosity_consumers,
            )
            if secret is not None
        ]
        values += list(self.api_key_channels)
        values += [secret for _, secret in self.consumers.values()]
        return [v for v in values if v]

    @cached_property
    def consumers(self) -> dict[str, tuple[str, str]]:
        """``consumer_key -> (channel, secret)`` of the Learnosity-style Data API."""
        raw = self.learnosity_consumers
        return parse_consumers(raw.get_secret_value()) if raw is not None else {}

    def as_env(self) -> dict[str, str]:
        """These settings as ``EXHAUST_*`` environment variables, for a worker subprocess."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                plain = value.get_secret_value() if isinstance(value, SecretStr) else value
                # Complex values as JSON, which is how pydantic-settings reads them back.
                text = json.dumps(plain, default=str) if isinstance(plain, dict | list | tuple) \
                    else str(plain)  # fmt: skip
                env[f"EXHAUST_{name.upper()}"] = text
        return env

    def topic(self, name: str) -> str:
        """Full name of one of the service's topics (``requests`` -> ``exhaust.requests``)."""
        return f"{self.topic_prefix}.{name}"

    def job_policy(self) -> JobPolicy:
        """The rules of the job state machine that these settings choose."""
        return JobPolicy(
            max_attempts=self.max_attempts,
            lease_ms=int(self.lease_seconds * 1000),
            dispatch_timeout_ms=int(self.dispatch_timeout_seconds * 1000),
            retention_ms=self.retention_seconds * 1000,
            dedup_window_seconds=self.dedup_window_seconds,
            max_inputs=self.max_inputs,
        )

    def dataset_policy(self) -> DatasetPolicy:
        """The rules of managed datasets that these settings choose."""
        return DatasetPolicy(
            history=self.fill_history,
            max_segments=self.dataset_max_segments,
            max_columns=self.dataset_max_columns,
            grace_ms=int(self.dataset_grace_seconds * 1000),
        )

    def boto_config(self) -> BotoConfig:
        """botocore options that S3-compatible stores accept.

        botocore >= 1.36 adds CRC checksums to every request by default, which many
        S3-compatible servers reject; only send or check them when an operation needs them.
        """
        return BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 5, "mode": "standard"},
        )

    def s3_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``session.create_client("s3", ...)``."""
        return {
            "endpoint_url": self.s3_endpoint,
            "region_name": self.s3_region,
            "aws_access_key_id": self.s3_access_key,
            "aws_secret_access_key": self.s3_secret_key.get_secret_value(),
            "config": self.boto_config(),
        }


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) can only be reached from this machine."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unsafe_combinations(settings: Settings, serves_api: bool = True) -> list[str]:
    """What a worker refuses to start with: settings that would expose tenants to each other
    or use the local stack's secrets on a real network. Empty when the settings are safe.
    A worker without the API (``serves_api=False``) serves only health and metrics, which
    name no channel, so it may bind any address without authentication."""
    problems = []
    if (
        serves_api
        and not is_loopback(settings.http_host)
        and not settings.api_key_channels
        and not settings.gateway_authenticates
    ):
        problems.append(
            f"the HTTP API binds to {settings.http_host}, not loopback, without authentication: "
            "anyone who reaches it could name any channel. Set EXHAUST_API_KEYS, or "
            "EXHAUST_GATEWAY_AUTHENTICATES=true if a gateway in front authenticates callers"
        )
    host = urlsplit(settings.s3_endpoint).hostname or ""
    default_keys = (
        settings.s3_access_key == LOCAL_S3_ACCESS_KEY
        or settings.s3_secret_key.get_secret_value() == LOCAL_S3_SECRET_KEY
    )
    brokers = [b.strip().rsplit(":", 1)[0] for b in settings.kafka_bootstrap.split(",")]
    remote = [b for b in brokers if b and not is_loopback(b)]
    protocol = settings.kafka_security_protocol
    plaintext = protocol in ("PLAINTEXT", "SASL_PLAINTEXT")
    if remote and plaintext and not settings.kafka_allow_plaintext:
        problems.append(
            f"Kafka at {', '.join(remote)} is not on this machine, but "
            f"EXHAUST_KAFKA_SECURITY_PROTOCOL={protocol} sends every request, job and key "
            "unencrypted; use SASL_SSL or SSL, or set EXHAUST_KAFKA_ALLOW_PLAINTEXT=true for a "
            "private network you trust"
        )
    if default_keys and not is_loopback(host):
        problems.append(
            f"the S3 endpoint {settings.s3_endpoint} is not on this machine, but the S3 "
            "credentials are the local stack's built-in ones; set EXHAUST_S3_ACCESS_KEY and "
            "EXHAUST_S3_SECRET_KEY"
        )
    return problems


def parse_consumers(text: str) -> dict[str, tuple[str, str]]:
    """``{"key": {"secret": s, "channel": c}}`` as ``{key: (channel, secret)}``; a ValueError
    (reported by pydantic with the setting's name) for anything else."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise ValueError('must be a JSON object {"<consumer_key>": {"secret", "channel"}}')
    consumers = {}
    for key, entry in raw.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("secret"), str)
            or not entry["secret"]
            or not identifiers.is_valid(entry.get("channel"))
        ):
            raise ValueError(
                f"consumer {key!r} needs a non-empty secret and a channel in the identifier rule"
            )
        consumers[key] = (entry["channel"], entry["secret"])
    return consumers


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Who an API key authenticates: its channel and its roles (which gate dataset types)."""

    channel: str
    roles: frozenset[str] = frozenset()


ANONYMOUS_PROFILES = ("usaspending", "sunbird-public")


def parse_api_keys(text: str) -> dict[str, ApiKey]:
    """``{"key": "channel"}`` or ``{"key": {"channel": c, "roles": [r, …]}}``; a ValueError for
    anything else (keys of 16+ characters; channel and roles in the identifier rule)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from exc
    shape = 'must be a JSON object {"<key of 16+ characters>": "<channel>" | {"channel", "roles"}}'
    if not isinstance(raw, dict):
        raise ValueError(shape)
    keys = {}
    for key, entry in raw.items():
        if not isinstance(key, str) or len(key) < 16:
            raise ValueError(shape)
        channel: Any = entry
        roles: Any = []
        if isinstance(entry, dict):
            channel, roles = entry.get("channel"), entry.get("roles", [])
        if not identifiers.is_valid(channel) or not isinstance(roles, list):
            raise ValueError(f"{shape}; the channel of key {key[:4]}… is not a valid identifier")
        if not all(identifiers.is_valid(r) and "," not in r for r in roles):
            raise ValueError(f"the roles of key {key[:4]}… must be identifiers")
        keys[key] = ApiKey(str(channel), frozenset(roles))
    return keys
