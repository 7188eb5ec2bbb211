"""The one pattern every identifier must match: channel, tag, dataset and request ids.

Identifiers end up in object keys (``{channel}/{dataset}/{request_id}/{attempt}/…``), Kafka keys
and URLs, so they are checked at every entry (HTTP, CLI, and the Kafka path, where a bad one
makes a FAILED job with ``INVALID_IDENTIFIER``) against one rule:

    1 to 128 characters of ``A-Z a-z 0-9 . _ : @ -``, starting with a letter or digit,
    and never ``..``

That admits UUIDs, Sunbird tags and request ids (``channel:user``, 32 hex digits) and dotted
dataset codes, and excludes what could escape a key prefix or collide with another channel's
(``/``, spaces, ``..``, control characters).
"""

from __future__ import annotations

import re

from app.domain.errors import InvalidIdentifier

MAX_LENGTH = 128
PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
RULE = (
    f"1-{MAX_LENGTH} characters of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit, no '..'"
)


def is_valid(value: object) -> bool:
    return isinstance(value, str) and PATTERN.fullmatch(value) is not None and ".." not in value


# Shapes of ids the service derives itself (Sunbird's and the standard datasets' MD5 request ids,
# the v1 API's derived ids, USAspending's file names). A client may not choose one, so a
# client-chosen id can never claim, block or shadow a job the service names for that channel.
RESERVED = (
    re.compile(r"[0-9A-F]{32}"),
    re.compile(r"[0-9]+_[0-9a-f]{8}_[a-z]+\.zip"),
)


def is_reserved(value: str) -> bool:
    return any(shape.fullmatch(value) for shape in RESERVED)


def check_client_id(what: str, value: object) -> str:
    """A client-chosen job id: a valid identifier outside the shapes of derived ids."""
    checked = check(what, value)
    if is_reserved(checked):
        raise InvalidIdentifier(
            f"{what} {checked!r} has the form of an id this service derives (32 upper-case hex "
            "digits, or a download file name); choose another (a UUID, say)"
        )
    return checked


def check(what: str, value: object) -> str:
    """``value`` if it is a valid identifier, else :class:`InvalidIdentifier` naming ``what``."""
    if not is_valid(value):
        shown = repr(value)[:80]
        raise InvalidIdentifier(f"{what} {shown} is not a valid identifier ({RULE})")
    return str(value)
