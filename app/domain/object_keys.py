"""Object keys that come from outside: canonical, and under the caller's own prefix.

A request names objects (``inputs``, and ``config.source`` when it names an input); a topic
names them too (a job's outputs, a dataset's segments). Object stores take keys literally, but
the HTTP path to them does not: clients and servers normalise ``..`` and ``.`` segments, decode
``%2F``, and some treat ``\\`` as a separator. So a key is accepted only in one canonical form,
which no layer can read differently:

    segments separated by single ``/`` (no leading or trailing ``/``, no ``//``), each of
    1-128 characters of ``A-Z a-z 0-9 . _ -`` starting with a letter or digit, never ``.`` or
    ``..``; at most 16 segments and 512 characters.

That excludes ``..``, ``\\``, ``%``, control characters, whitespace and every non-ASCII
character (whose normalisation differs between layers), and the key must then lie under the
prefix the caller owns. Checked at submit (HTTP 400), in the state machine (a FAILED job) and
again by the generator before any download. No I/O here.
"""

from __future__ import annotations

import re

from app.domain import identifiers
from app.domain.errors import InvalidObjectKey, TooManyInputs
from app.domain.model import PUBLIC_PREFIX, attempt_prefix

SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_SEGMENTS = 16
MAX_LENGTH = 512
RULE = (
    "segments of 1-128 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit, never "
    f"'..') joined by single '/', at most {MAX_SEGMENTS} segments and {MAX_LENGTH} characters"
)


def is_canonical(key: object) -> bool:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_LENGTH:
        return False
    segments = key.split("/")
    return len(segments) <= MAX_SEGMENTS and all(
        SEGMENT.fullmatch(s) is not None and ".." not in s for s in segments
    )


def input_prefix(channel: str) -> str:
    """Where a channel's uploaded inputs live; a request may read only keys under it."""
    return f"{channel}/inputs/"


def check_under(what: str, key: object, prefix: str) -> str:
    """``key`` if it is canonical and under ``prefix``, else :class:`InvalidObjectKey`."""
    shown = repr(key)[:120]
    if not is_canonical(key):
        raise InvalidObjectKey(f"{what} {shown} is not a canonical object key ({RULE})")
    assert isinstance(key, str)
    if not key.startswith(prefix) or len(key) == len(prefix):
        raise InvalidObjectKey(f"{what} {shown} is not under {prefix!r}")
    return key


# The name of an output file under its attempt's prefix (the engine's key-safe names).
OUTPUT_NAME = re.compile(r"[A-Za-z0-9._~-]{1,255}")


def attempt_prefixes(channel: str, dataset: str, request_id: str, attempt: int) -> tuple[str, ...]:
    """Where an attempt's files may lie: its own prefix and the same under ``public/``. None
    when the job's names are not identifiers (then no key of it is linked or accepted)."""
    if not all(identifiers.is_valid(v) for v in (channel, dataset, request_id)):
        return ()
    own = attempt_prefix(channel, dataset, request_id, attempt)
    return own, PUBLIC_PREFIX + own


def is_output_of(key: object, prefix: str) -> bool:
    """Whether ``key`` names one file directly under ``prefix`` (one of
    :func:`attempt_prefixes`): what a job record read from a topic may link to, nothing else."""
    if not isinstance(key, str) or not key.startswith(prefix):
        return False
    name = key[len(prefix) :]
    return OUTPUT_NAME.fullmatch(name) is not None and name not in (".", "..")


def check_inputs(channel: str, inputs: list[str], max_inputs: int) -> list[str]:
    """A request's input keys: each canonical and under the channel's input prefix, duplicates
    dropped (first occurrence kept), at most ``max_inputs`` of them."""
    unique = list(dict.fromkeys(inputs))
    if len(unique) > max_inputs:
        raise TooManyInputs(f"a request may name at most {max_inputs} inputs; got {len(unique)}")
    prefix = input_prefix(channel)
    return [check_under(f"inputs[{n}]", key, prefix) for n, key in enumerate(unique)]
