"""The one error tree of Exhaust.

Every error carries a stable machine-readable ``code`` that events (``JobStatus.error.code``),
HTTP responses (``{"error": {"code", "message"}}``), CLI exit messages and logs all reuse, and says
whether retrying can help::

    ExhaustError                    code, message, retryable
    ├── ConfigurationError          bad settings or environment; fix and restart
    │   └── TopicLayoutError        an existing topic breaks co-partitioning or compaction
    ├── StackError                  the local Kafka/S3 stack could not be fetched or started
    ├── PoisonMessage               undecodable input: goes to the dead-letter topic
    │   └── UnknownSchema           single-object encoding with a fingerprint we do not know
    ├── MalformedRequest            an HTTP body that is not the expected JSON shape
    ├── RequestRejected             a decodable request that cannot run (-> FAILED job)
    │   ├── UnknownDataset
    │   ├── InvalidConfig
    │   ├── InvalidIdentifier       a channel, tag, dataset or id outside the one pattern
    │   └── RequestConflict         a client id reused with different parameters
    ├── NotFound                    no such job / dataset / file (HTTP 404)
    ├── AccessDenied                missing or wrong channel (HTTP 403/400)
    ├── StorageError                object storage refused an operation; retrying cannot help
    └── TransientError              retryable I/O failure (broker, object store)
"""

from __future__ import annotations

from typing import ClassVar


class ExhaustError(Exception):
    """Base of all Exhaust errors; ``code`` is part of the public contract."""

    code: ClassVar[str] = "EXHAUST_ERROR"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigurationError(ExhaustError):
    code = "CONFIGURATION_ERROR"


class TopicLayoutError(ConfigurationError):
    code = "TOPIC_LAYOUT_ERROR"


class StackError(ExhaustError):
    code = "STACK_ERROR"


class PoisonMessage(ExhaustError):
    code = "UNDECODABLE_MESSAGE"
    http_status = 400


class UnknownSchema(PoisonMessage):
    code = "UNKNOWN_SCHEMA"


class MalformedRequest(ExhaustError):
    code = "MALFORMED_REQUEST"
    http_status = 400


class RequestRejected(ExhaustError):
    code = "REQUEST_REJECTED"
    http_status = 400


class UnknownDataset(RequestRejected):
    code = "UNKNOWN_DATASET"


class InvalidConfig(RequestRejected):
    code = "INVALID_CONFIG"


class InvalidIdentifier(RequestRejected):
    code = "INVALID_IDENTIFIER"


class RequestConflict(RequestRejected):
    code = "REQUEST_CONFLICT"
    http_status = 409


class NotFound(ExhaustError):
    code = "NOT_FOUND"
    http_status = 404


class AccessDenied(ExhaustError):
    code = "ACCESS_DENIED"
    http_status = 403


class StorageError(ExhaustError):
    code = "STORAGE_ERROR"
    http_status = 502


class TransientError(ExhaustError):
    code = "TRANSIENT_ERROR"
    http_status = 503
    retryable = True
