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
    ├── FillRefused                 a dataset fill that cannot be applied (nothing of it is)
    │   ├── InvalidColumns          a column declaration that is not valid
    │   ├── InvalidInsertData       insert-data that is not base64 / gzip / JSON rows
    │   ├── InvalidRow              a row that does not fit the columns (names row and column)
    │   └── ColumnsMismatch         an append whose columns differ from the dataset's
    ├── LimitExceeded               a configured limit (HTTP 413); each has its own code
    │   ├── BodyTooLarge, DecompressedTooLarge, TooManyRows, TooManyColumns,
    │   ├── ValueTooLarge, TooManySegments, TooManyInputs, InputsTooLarge
    │   └── ExportMemoryExceeded    an export that DuckDB cannot run within its memory limit
    ├── RequestRejected             a decodable request that cannot run (-> FAILED job)
    │   ├── UnknownDataset
    │   ├── InvalidConfig
    │   ├── InvalidIdentifier       a channel, tag, dataset or id outside the one pattern
    │   ├── InvalidObjectKey        an object key that is not canonical or not the caller's
    │   ├── InvalidEncryptionKey    an encryption key that is empty or too short
    │   ├── RequestConflict         a client id reused with different parameters
    │   ├── UnknownColumn           a column (in columns, filters, sort, metrics) not in the source
    │   ├── InvalidFilter           a filter that is not the documented structure
    │   ├── TypeMismatch            a filter value or metric that does not fit the column's type
    │   ├── InvalidOutput           output options that cannot be combined or are unknown
    │   ├── EncryptionKeyRequired   the type requires an encryption key and none was given
    │   ├── SourceNotFound          a source dataset or input file that does not exist
    │   ├── QueryFailed             the engine refused the query on this data (deterministic)
    │   └── TooManyFiles            a split that would write more files than allowed
    ├── NotFound                    no such job / dataset / file (HTTP 404)
    ├── AlreadyFinished             a cancel of a job that has ended (HTTP 409, with its status)
    ├── NotReady                    (client) a download of a job that has not succeeded
    ├── AccessDenied                missing or wrong channel (HTTP 403/400)
    ├── StorageError                object storage refused an operation; retrying cannot help
    │   └── DownloadCorrupt         (client) a file whose bytes differ from the job's digest
    └── TransientError              retryable I/O failure (broker, object store)
        ├── Busy                    the worker is at a configured limit now (HTTP 503 +
        │                           Retry-After): the same call later will be admitted
        └── WaitTimedOut            (client) a job not terminal within the time waited
"""

from __future__ import annotations

from typing import ClassVar


class Cancelled(Exception):
    """An attempt that must stop (worker shutdown or cancel), raised inside generation. Not an
    :class:`ExhaustError`: nothing is wrong with the request; the job is dispatched again."""


class ExhaustError(Exception):
    """Base of all Exhaust errors; ``code`` is part of the public contract."""

    code: ClassVar[str] = "EXHAUST_ERROR"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: str | int) -> None:
        super().__init__(message)
        self.message = message
        self.details = details  # machine-readable context, e.g. row and column of a bad value

    def to_dict(self) -> dict[str, str | int]:
        return {"code": self.code, "message": self.message, **self.details}


class ConfigurationError(ExhaustError):
    code = "CONFIGURATION_ERROR"


class TopicLayoutError(ConfigurationError):
    code = "TOPIC_LAYOUT_ERROR"


class TopicsMissing(TopicLayoutError):
    """Topics this worker may not create are not there yet (retried until the start-up
    deadline: the processor, or the cluster's operator, creates them)."""

    code = "TOPICS_MISSING"
    retryable = True


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


class FillRefused(ExhaustError):
    code = "FILL_REFUSED"
    http_status = 400


class InvalidColumns(FillRefused):
    code = "INVALID_COLUMNS"


class InvalidInsertData(FillRefused):
    code = "INVALID_INSERT_DATA"


class InvalidRow(FillRefused):
    code = "INVALID_ROW"


class ColumnsMismatch(FillRefused):
    code = "COLUMNS_MISMATCH"
    http_status = 409


class LimitExceeded(ExhaustError):
    code = "LIMIT_EXCEEDED"
    http_status = 413


class BodyTooLarge(LimitExceeded):
    code = "BODY_TOO_LARGE"


class DecompressedTooLarge(LimitExceeded):
    code = "DECOMPRESSED_TOO_LARGE"


class TooManyRows(LimitExceeded):
    code = "TOO_MANY_ROWS"


class TooManyColumns(LimitExceeded):
    code = "TOO_MANY_COLUMNS"


class ValueTooLarge(LimitExceeded):
    code = "VALUE_TOO_LARGE"


class TooManySegments(LimitExceeded):
    code = "TOO_MANY_SEGMENTS"


class ExportMemoryExceeded(LimitExceeded):
    code = "EXPORT_MEMORY_EXCEEDED"


class TooManyInputs(LimitExceeded):
    code = "TOO_MANY_INPUTS"


class InputsTooLarge(LimitExceeded):
    code = "INPUTS_TOO_LARGE"


class RequestRejected(ExhaustError):
    code = "REQUEST_REJECTED"
    http_status = 400


class UnknownDataset(RequestRejected):
    code = "UNKNOWN_DATASET"


class InvalidConfig(RequestRejected):
    code = "INVALID_CONFIG"


class InvalidIdentifier(RequestRejected):
    code = "INVALID_IDENTIFIER"


class InvalidObjectKey(RequestRejected):
    code = "INVALID_OBJECT_KEY"


class InvalidEncryptionKey(RequestRejected):
    code = "INVALID_ENCRYPTION_KEY"


class RequestConflict(RequestRejected):
    code = "REQUEST_CONFLICT"
    http_status = 409


class UnknownColumn(RequestRejected):
    code = "UNKNOWN_COLUMN"


class InvalidFilter(RequestRejected):
    code = "INVALID_FILTER"


class OutOfRange(RequestRejected):
    """A well-formed value outside the range the API takes (a date before the data begins, a
    limit above the cap, a search word too short): 422, as usaspending-api answers it."""

    code = "OUT_OF_RANGE"
    http_status = 422


class TypeMismatch(RequestRejected):
    code = "TYPE_MISMATCH"


class InvalidOutput(RequestRejected):
    code = "INVALID_OUTPUT"


class EncryptionKeyRequired(RequestRejected):
    code = "ENCRYPTION_KEY_REQUIRED"


class SourceNotFound(RequestRejected):
    code = "SOURCE_NOT_FOUND"


class QueryFailed(RequestRejected):
    code = "QUERY_FAILED"


class InputMissing(RequestRejected):
    code = "INPUT_MISSING"


class TooManyFiles(RequestRejected):
    code = "TOO_MANY_FILES"


class NotFound(ExhaustError):
    code = "NOT_FOUND"
    http_status = 404


class AlreadyFinished(ExhaustError):
    """An operation on a job that only a running job allows (a cancel of a job that already
    ended): HTTP 409 with the job's status."""

    code = "ALREADY_FINISHED"
    http_status = 409


class NotRetryable(ExhaustError):
    """A retry of a job that a new attempt would not change (running, succeeded, out of
    attempts, or waiting for a new upload): HTTP 409 with the job's status."""

    code = "NOT_RETRYABLE"
    http_status = 409


class NotReady(ExhaustError):
    """The client was asked for the files of a job that has not succeeded (with its status)."""

    code = "NOT_READY"
    http_status = 409


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


class DownloadCorrupt(StorageError):
    """The client downloaded a file whose size or SHA-256 differs from the job's, again."""

    code = "DOWNLOAD_CORRUPT"


class WaitTimedOut(TransientError):
    """The client waited for a job longer than it was told to (with the job's status)."""

    code = "WAIT_TIMEOUT"
    http_status = 504


def error_for(code: str, message: str, **details: str | int) -> ExhaustError:
    """The error of the tree whose code is ``code`` (a recorded outcome or an HTTP answer read
    back), else a plain :class:`ExhaustError` carrying that code."""
    stack: list[type[ExhaustError]] = [ExhaustError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls(message, **details)
        stack.extend(cls.__subclasses__())
    return ExhaustError(message, **details, code=code)


class Busy(TransientError):
    """Refused for now, nothing read: a configured budget is in use (HTTP 503, Retry-After)."""

    code = "BUSY"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
