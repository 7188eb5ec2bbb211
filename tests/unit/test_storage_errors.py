"""Object-storage failures are classified once: no retry of what cannot succeed, no raw text."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from app.domain.errors import StorageError, TransientError
from app.engine.storage import storage_errors


def client_error(status: int, code: str) -> ClientError:
    response = {"Error": {"Code": code, "Message": "raw library text"},
                "ResponseMetadata": {"HTTPStatusCode": status}}  # fmt: skip
    return ClientError(response, "PutObject")


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_4xx_answer_is_a_storage_error_that_is_not_retried(status: int) -> None:
    with pytest.raises(StorageError) as raised, storage_errors("PutObject", "a/b"):
        raise client_error(status, "BadRequest")
    assert not raised.value.retryable
    assert raised.value.message == (
        f"object storage refused PutObject of 'a/b' (HTTP {status}, BadRequest)"
    )
    assert "raw library text" not in raised.value.message


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retried(status: int) -> None:
    with pytest.raises(TransientError) as raised, storage_errors("UploadPart", "k"):
        raise client_error(status, "SlowDown")
    assert raised.value.retryable


def test_an_unreachable_store_is_transient_without_the_library_text() -> None:
    with pytest.raises(TransientError) as raised, storage_errors("PutObject", "k"):
        raise EndpointConnectionError(endpoint_url="http://nowhere:1")
    assert raised.value.message == "object storage unreachable during PutObject"
