"""JSON from outside, parsed once and bounded: depth, and numbers every layer can hold.

``json.loads`` recurses once per nesting level: a body of 100,000 ``[`` raises RecursionError
(a 500, or a crashed agent on the Kafka path). It also reads ``1e400`` as ``inf``, accepts
``NaN`` and ``Infinity``, and makes integers of any size, none of which DuckDB, Avro or
JSON Schema hold. Every JSON text a client or producer sends goes through :func:`loads`, which
refuses all of these with the caller's error class (a 400 at the door, a FAILED job from a topic):

* nesting deeper than :data:`MAX_DEPTH` (arrays and objects);
* integers outside a signed 64-bit range, floats that overflow a double, ``NaN``/``Infinity``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from app.domain.errors import ExhaustError

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Refused(ValueError):
    pass


def _int(text: str) -> int:
    value = int(text)  # ValueError past Python's 4,300 digits
    if not INT64_MIN <= value <= INT64_MAX:
        raise _Refused(f"the number {text[:40]} is outside the signed 64-bit range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large for a double")
    return value


def _constant(text: str) -> Any:
    raise _Refused(f"{text} is not JSON")


def depth(value: Any) -> int:
    """How deeply ``value`` nests arrays and objects (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(text: str | bytes, what: str, error: type[ExhaustError]) -> Any:
    """``text`` parsed, or ``error`` naming ``what`` and the reason."""
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _Refused as exc:
        raise error(f"{what}: {exc}") from None
    except RecursionError:
        raise error(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"{what} is not valid JSON: {str(exc)[:120]}") from None
    if depth(value) > MAX_DEPTH:
        raise error(f"{what} nests deeper than {MAX_DEPTH} levels")
    return value


def check_value(value: Any, what: str, error: type[ExhaustError]) -> None:
    """The same rules for a value already parsed (by aiohttp's form parser, say)."""
    if depth(value) > MAX_DEPTH:
        raise error(f"{what} nests deeper than {MAX_DEPTH} levels")
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and not isinstance(node, bool):
            if not INT64_MIN <= node <= INT64_MAX:
                raise error(f"{what}: a number is outside the signed 64-bit range")
        elif isinstance(node, float) and not math.isfinite(node):
            raise error(f"{what}: a number is too large for a double")
