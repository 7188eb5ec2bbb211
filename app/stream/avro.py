"""Avro single-object encoding over the ``.avsc`` files in ``schemas/``: the wire format.

Every Kafka value the service reads or writes is ``C3 01`` + the writer schema's 8-byte
little-endian CRC-64-AVRO fingerprint + the Avro binary body, so any producer that holds the
``.avsc`` files and an Avro library can publish without a registry.

The registry knows the current schemas (``schemas/*.avsc``, used as reader schemas) and older
compatible versions (``schemas/history/*.avsc``, writer schemas only). A value written with any
known version is resolved to the current one; an unknown fingerprint, a wrong record type, or a
truncated or over-long body raises :class:`~app.domain.errors.PoisonMessage` (dead-letter material).

Schemas are parsed once, when the registry is built. Timestamps are plain epoch milliseconds
inside the service: the ``timestamp-millis`` logical type is dropped before parsing, which does
not change a schema's canonical form or fingerprint.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from app.domain.errors import PoisonMessage, UnknownSchema

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
# The .avsc files: the top-level schemas/ of a checkout (and of an editable install), else the
# copy a built image ships inside the package (the Dockerfile copies it to app/schemas).
_CHECKOUT_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_DIR = (
    _CHECKOUT_SCHEMAS
    if _CHECKOUT_SCHEMAS.is_dir()
    else Path(__file__).resolve().parents[1] / "schemas"
)


def fingerprint(schema: dict[str, Any]) -> bytes:
    """8-byte CRC-64-AVRO fingerprint of a schema's Parsing Canonical Form (fastavro computes it;
    its hex string is already the little-endian byte order single-object encoding uses)."""
    canonical = to_parsing_canonical_form(schema)
    return bytes.fromhex(avro_fingerprint(canonical, "CRC-64-AVRO"))


def _strip_timestamp_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strip_timestamp_logical_types(v) for k, v in node.items()}
        if out.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
            out.pop("logicalType")
        return out
    if isinstance(node, list):
        return [_strip_timestamp_logical_types(v) for v in node]
    return node


@dataclass(frozen=True, slots=True)
class Schema:
    name: str  # full name, e.g. dev.exhaust.v1.JobStatus
    source: Path
    parsed: Any
    fingerprint: bytes


def load_schema(path: Path) -> Schema:
    raw = json.loads(path.read_text())
    parsed = fastavro.parse_schema(_strip_timestamp_logical_types(raw))
    return Schema(
        name=f"{raw['namespace']}.{raw['name']}",
        source=path,
        parsed=parsed,
        fingerprint=fingerprint(raw),
    )


class SchemaRegistry:
    """Current and historical schemas by name and by fingerprint."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        self._projections: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.current: dict[str, Schema] = {}
        self.by_fingerprint: dict[bytes, Schema] = {}
        for path in sorted(directory.glob("*.avsc")):
            schema = load_schema(path)
            self.current[schema.name] = schema
            self.by_fingerprint[schema.fingerprint] = schema
        for path in sorted((directory / "history").glob("*.avsc")):
            schema = load_schema(path)
            self.by_fingerprint.setdefault(schema.fingerprint, schema)

    def schema(self, name: str) -> Schema:
        short = name if "." in name else f"dev.exhaust.v1.{name}"
        return self.current[short]

    def encode(self, name: str, record: dict[str, Any], writer: Schema | None = None) -> bytes:
        """Single-object encoding of ``record`` with the current (or the given) schema."""
        schema = writer or self.schema(name)
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(schema.fingerprint)
        fastavro.schemaless_writer(buffer, schema.parsed, record)
        return buffer.getvalue()

    def projection(self, name: str, fields: tuple[str, ...]) -> Any:
        """A reader schema of ``name`` with only ``fields``: decoding skips the rest in C."""
        key = (name, fields)
        parsed = self._projections.get(key)
        if parsed is None:
            raw = json.loads(self.schema(name).source.read_text())
            raw["fields"] = [f for f in raw["fields"] if f["name"] in fields]
            parsed = self._projections[key] = fastavro.parse_schema(
                _strip_timestamp_logical_types(raw)
            )
        return parsed

    def decode(
        self, name: str, data: bytes, fields: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Decode a single-object encoded value into the current schema of ``name``."""
        reader = self.schema(name)
        reader_schema = reader.parsed if fields is None else self.projection(name, fields)
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise PoisonMessage(
                f"not Avro single-object encoding (expected marker C3 01, got {data[:2].hex()})"
            )
        writer = self.by_fingerprint.get(data[2:HEADER_LEN])
        if writer is None:
            raise UnknownSchema(f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}")
        if writer.name != reader.name:
            raise PoisonMessage(f"expected a {reader.name}, got a {writer.name}")
        body = io.BytesIO(data[HEADER_LEN:])
        try:
            record = cast(
                dict[str, Any], fastavro.schemaless_reader(body, writer.parsed, reader_schema)
            )
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError...
            raise PoisonMessage(f"undecodable {reader.name}: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data) - HEADER_LEN:
            raise PoisonMessage(
                f"undecodable {reader.name}: {len(data) - HEADER_LEN - body.tell()} trailing bytes"
            )
        return record


@cache
def registry() -> SchemaRegistry:
    """The process-wide registry, parsed once."""
    return SchemaRegistry()
