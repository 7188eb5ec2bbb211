"""The examples in the docs work."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.stream.avro import registry

ROOT = Path(__file__).resolve().parents[2]


def test_the_fastavro_producer_example_in_events_md_makes_bytes_the_service_reads() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match is not None
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/events.md", "exec"), namespace)
    record = registry().decode("DatasetRequest", namespace["value"])
    assert record["tag"] == "batch-42" and record["config"] == '{"rows": 1000}'


def test_every_error_code_is_documented() -> None:
    from app.domain import errors

    documented = (ROOT / "docs" / "events.md").read_text()
    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ExhaustError)
    }
    generic = {
        "EXHAUST_ERROR",
        "CONFIGURATION_ERROR",
        "STACK_ERROR",
        "REQUEST_REJECTED",
        "TRANSIENT_ERROR",
    }
    missing = sorted(c for c in codes - generic if f"`{c}`" not in documented)
    assert missing == []
