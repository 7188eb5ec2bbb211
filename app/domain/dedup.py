"""Job identity: which requests are the same job.

* A client-chosen ``request_id`` is the job id (like Learnosity's ``dataset_id`` or an
  idempotency key).
* Otherwise the id is a deterministic hash of the canonical request (channel, tag, dataset,
  requested_by, canonical config, columns, filters, output, inputs) and the dedup window the
  request was submitted in (a day by default): the same request within a window is one job.
* The *fingerprint* is the same canonical hash without the window. A client id arriving with
  another fingerprint is a conflict.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.domain import identifiers, json_values
from app.domain.errors import InvalidConfig
from app.domain.model import DatasetRequest


def canonical_json(text: str | None, what: str) -> Any:
    """Parse a JSON text field; the parsed value is compared canonically (sorted keys)."""
    if text is None or text == "":
        return None
    return json_values.loads(text, what, InvalidConfig)


def _parsed_or_raw(text: str | None) -> Any:
    """For hashing only: invalid JSON still gets a stable identity (and fails validation)."""
    try:
        return canonical_json(text, "value")
    except InvalidConfig:
        return {"unparsable": text}


def canonical_parameters(request: DatasetRequest) -> dict[str, Any]:
    return {
        "channel": request.channel,
        "tag": request.tag,
        "dataset": request.dataset,
        "requested_by": request.requested_by,
        "config": _parsed_or_raw(request.config),
        "columns": request.columns,
        "filters": _parsed_or_raw(request.filters),
        "output": request.output,
        "inputs": sorted(request.inputs),
        # The encryption key changes the bytes of the outputs but must not appear in any hash
        # input a client could read back; whether one was given is enough to tell jobs apart.
        "encrypted": request.encryption_key is not None,
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(request: DatasetRequest) -> str:
    return _digest(canonical_parameters(request))


def dedup_window(submitted_at_ms: int, window_seconds: int) -> int:
    return submitted_at_ms // (window_seconds * 1000)


def derive_request_id(request: DatasetRequest, window_seconds: int) -> str:
    """32 upper-case hex characters, like the Sunbird request ids."""
    window = dedup_window(request.submitted_at, window_seconds)
    return _digest({"params": canonical_parameters(request), "window": window})[:32].upper()


def request_id_for(request: DatasetRequest, window_seconds: int) -> tuple[str, bool]:
    """The job id of ``request`` and whether the client chose it.

    Raises :class:`~app.domain.errors.InvalidIdentifier` for a client id outside the one pattern.
    """
    if request.request_id is not None:
        return identifiers.check("request_id", request.request_id), True
    return derive_request_id(request, window_seconds), False


def sunbird_request_id(
    dataset: str, tag: str, requested_by: str, channel: str, day: str, job_type: str | None = None
) -> str:
    """The Sunbird exhaust API's request id: the MD5 of ``dataset|tag|requestedBy|channel|day``
    (and ``|type`` when the datasetConfig has a ``type``) in upper-case hex (32 characters), so
    the same request on the same day is one job.

    That is the derivation of Sunbird's ``JobAPIService`` (whose parameters are named the other
    way round, ``_getRequestId(jobId, tag, …)``, but called with the tag first: the digest
    starts with the dataset). MD5 here is an identifier, not a security measure.
    """
    parts = (dataset, tag, requested_by, channel, day)
    key = "|".join((*parts, job_type) if job_type is not None else parts)
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest().upper()
