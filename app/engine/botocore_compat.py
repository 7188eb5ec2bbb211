"""Every use of botocore's internals, in one place, checked before the service uses them.

A streamed PUT is sent with ``UNSIGNED-PAYLOAD`` (see :mod:`app.engine.storage` for why). botocore
decides whether to hash a body in ``S3SigV4Auth._should_sha256_sign_payload`` (private) and has
no per-request switch (``payload_signing_enabled`` is per client), and it finds signers by name in
the module-level ``AUTH_TYPE_MAPS``. So this module holds a signer that overrides that private
method and registers it under its own name, and :func:`install` proves, by signing a request, that
the signer still leaves the body out: after a botocore upgrade that moved either, the service
refuses to start (:class:`~app.domain.errors.ConfigurationError`) instead of silently hashing
every upload on the event loop again.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from botocore.auth import AUTH_TYPE_MAPS, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from app.domain.errors import ConfigurationError

UNSIGNED_BODY_SIGNER = "exhaust-s3v4-unsigned-body"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# Set while the current task sends a streamed PUT (see :func:`unsigned_body`).
UNSIGNED_BODY: ContextVar[bool] = ContextVar("exhaust_unsigned_body", default=False)


class UnsignedBodyS3SigV4Auth(S3SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """botocore's S3 SigV4 signer, with the body left out of the signature (``UNSIGNED-PAYLOAD``)
    even over plain HTTP, where botocore would otherwise always hash it."""

    def _should_sha256_sign_payload(self, request: AWSRequest) -> bool:
        return False


def choose_signer(signature_version: str, **_: Any) -> str | None:
    """``choose-signer.s3.PutObject`` hook (botocore's public event system): the unsigned-body
    signer while the current task sends a streamed PutObject."""
    if signature_version == "s3v4" and UNSIGNED_BODY.get():
        return UNSIGNED_BODY_SIGNER
    return None


_installed = False


def install() -> None:
    """Register the signer and check that it behaves; once per process, before the first upload.

    Raises :class:`ConfigurationError` when botocore no longer calls the overridden method (the
    signed request then carries a body hash instead of ``UNSIGNED-PAYLOAD``)."""
    global _installed
    if _installed:
        return
    if not callable(getattr(S3SigV4Auth, "_should_sha256_sign_payload", None)):
        raise ConfigurationError(
            "botocore's S3SigV4Auth has no _should_sha256_sign_payload: this botocore is not "
            "supported (streamed uploads would be hashed on the event loop)"
        )
    AUTH_TYPE_MAPS[UNSIGNED_BODY_SIGNER] = UnsignedBodyS3SigV4Auth
    request = AWSRequest(method="PUT", url="http://127.0.0.1:9/bucket/key", data=b"body")
    signer = AUTH_TYPE_MAPS[UNSIGNED_BODY_SIGNER](Credentials("a", "b"), "s3", "us-east-1")
    signer.add_auth(request)
    sent = request.headers.get("X-Amz-Content-SHA256")
    if sent != UNSIGNED_PAYLOAD:
        raise ConfigurationError(
            f"botocore signed a streamed PUT's body ({sent!r}, expected {UNSIGNED_PAYLOAD}): "
            "this botocore is not supported"
        )
    _installed = True


__all__ = ["UNSIGNED_BODY", "UnsignedBodyS3SigV4Auth", "choose_signer", "install"]
