"""Object-storage failures are classified once: no retry of what cannot succeed, no raw text.
And which requests leave their body out of the signature."""

from __future__ import annotations

import hashlib

import pytest
from botocore.auth import AUTH_TYPE_MAPS
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EndpointConnectionError

from app.domain.errors import ConfigurationError, StorageError, TransientError
from app.engine import botocore_compat
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


def _signed(unsigned_body: bool) -> dict[str, str]:
    request = AWSRequest(method="PUT", url="http://s3.local/b/k", data=b"body bytes")
    request.context["client_config"] = BotoConfig(s3={"addressing_style": "path"})
    botocore_compat.install()
    token = botocore_compat.UNSIGNED_BODY.set(unsigned_body)
    try:
        version = botocore_compat.choose_signer(signature_version="s3v4") or "s3v4"
    finally:
        botocore_compat.UNSIGNED_BODY.reset(token)
    credentials = Credentials("key", "secret")
    AUTH_TYPE_MAPS[version](credentials, "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_only_a_streamed_put_leaves_its_body_out_of_the_signature() -> None:
    streamed, usual = _signed(True), _signed(False)
    assert streamed["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert usual["X-Amz-Content-SHA256"] == hashlib.sha256(b"body bytes").hexdigest()
    assert streamed["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=key/")
    assert botocore_compat.choose_signer(signature_version="s3v4") is None  # outside a PUT


def test_a_botocore_that_hashes_the_streamed_body_anyway_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if an upgrade renamed the private method: the override is then never called.
    monkeypatch.setattr(botocore_compat, "_installed", False)
    monkeypatch.delattr(botocore_compat.UnsignedBodyS3SigV4Auth, "_should_sha256_sign_payload")
    with pytest.raises(ConfigurationError, match="not supported"):
        botocore_compat.install()
