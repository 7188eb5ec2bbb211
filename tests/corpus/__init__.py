"""The hostile corpus: inputs an attacker would send, shared by the unit and integration tests.

Each JSON file is a list of ``{"value": ..., "why": ...}``; :func:`load` returns the values.
Generated cases (deep nesting, huge bodies, 10,000 columns) are functions here, so the files
stay small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load(name: str) -> list[Any]:
    """The values of ``{name}.json``."""
    return [case["value"] for case in json.loads((HERE / f"{name}.json").read_text())]


def nested_json(depth: int = 100_000) -> bytes:
    """A JSON text nested ``depth`` arrays deep (a RecursionError for a recursive parser)."""
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int = 50_000) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def many_columns(n: int = 10_000) -> list[str]:
    return [f"c{i}" for i in range(n)]
