"""The read model's columns of a ``JobStatus`` record, read from the record's first bytes.

A rebuild of the read model reads every record of the jobs topic, and decoding each one with
fastavro was most of its cost (49 % of a rebuild's samples; a projected reader schema saves
little, since fastavro still walks every field before the last one it keeps). The columns the
read model queries are the record's first seven fields (``request_id``, ``tag``, ``dataset``,
``channel``, ``requested_by``, ``status``, ``last_updated``) and ``submitted_at``, the 28th,
behind variable-length fields. The writer puts that one in a header of every record it writes
(:data:`SUBMITTED_AT_HEADER`, epoch milliseconds in decimal), so the columns come from five
strings, an enum and a long at the front of the body plus one header: about a tenth of the
projected decode, measured on the benchmark's records.

Hand-written because no Avro library reads a prefix of a record without the rest. It is used
only for writer schemas whose first seven fields are exactly these (checked by name and type
when the reader is built) and whose status symbols the current schema knows. Anything else
(another schema, a record without the header, a prefix that does not parse) answers None and
the caller decodes the record with fastavro, which judges a malformed record as it always has.
The jobs topic is written by the writers only (its ACLs), and the rest of a record read this
way is decoded in full when it is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.stream.avro import HEADER_LEN, MAGIC, SchemaRegistry

SUBMITTED_AT_HEADER = "exhaust-submitted-at"
PREFIX = ("request_id", "tag", "dataset", "channel", "requested_by", "status", "last_updated")
COLUMNS = ("request_id", "tag", "dataset", "channel", "status", "last_updated", "submitted_at")


def _prefix_symbols(parsed: dict[str, Any]) -> tuple[str, ...] | None:
    """The status symbols of a JobStatus writer schema whose first fields are :data:`PREFIX`
    with the expected types; None for any other layout."""
    fields = parsed.get("fields", [])
    if [f["name"] for f in fields[: len(PREFIX)]] != list(PREFIX):
        return None
    # A primitive is "string" or {"type": "string"} (the parsed form of one whose logical type
    # was dropped: timestamps are plain milliseconds here).
    types = [t["type"] if isinstance(t, dict) and len(t) == 1 else t for t in
             (f["type"] for f in fields[: len(PREFIX)])]  # fmt: skip
    if types[:5] != ["string"] * 5 or types[6] != "long":
        return None
    status = types[5]
    if not isinstance(status, dict) or status.get("type") != "enum":
        return None
    return tuple(status["symbols"])


class JobColumns:
    """Reads :data:`COLUMNS` of a single-object encoded ``JobStatus`` without decoding it."""

    def __init__(self, schemas: SchemaRegistry) -> None:
        current = schemas.schema("JobStatus")
        known = set(_prefix_symbols(current.parsed) or ())
        self._symbols: dict[bytes, tuple[str, ...]] = {}
        for fingerprint, schema in schemas.by_fingerprint.items():
            if schema.name != current.name:
                continue
            symbols = _prefix_symbols(schema.parsed)
            if symbols is not None and known.issuperset(symbols):
                self._symbols[fingerprint] = symbols

    def read(
        self,
        value: bytes,
        headers: Iterable[tuple[str, bytes]] | None,
        with_submitted_at: bool = True,
    ) -> dict[str, Any] | None:
        """The columns of ``value``, or None when they cannot be read this way (decode it).
        Without ``with_submitted_at`` the header is not needed (``submitted_at`` is None)."""
        symbols = self._symbols.get(value[2:HEADER_LEN])
        if symbols is None or value[:2] != MAGIC:
            return None
        submitted_at = None
        if with_submitted_at:
            for name, header in headers or ():
                if name == SUBMITTED_AT_HEADER:
                    if header.isdigit() and len(header) <= 18:  # an epoch in milliseconds
                        submitted_at = int(header)
                    break
            if submitted_at is None:
                return None
        try:
            return _read_prefix(value, symbols, submitted_at)
        except (IndexError, UnicodeDecodeError, ValueError):
            return None


def _read_prefix(data: bytes, symbols: tuple[str, ...], submitted_at: int | None) -> dict[str, Any]:
    """Five strings, an enum and a long from ``HEADER_LEN`` on (Avro binary: zig-zag varints,
    strings as a length and UTF-8 bytes). Raises IndexError, UnicodeDecodeError or ValueError
    on a prefix that does not parse."""
    end = len(data)
    pos = HEADER_LEN
    values: list[Any] = []
    for field in range(7):
        byte = data[pos]
        pos += 1
        number = byte & 0x7F
        shift = 7
        while byte & 0x80:
            if shift > 63:
                raise ValueError("varint too long")
            byte = data[pos]
            pos += 1
            number |= (byte & 0x7F) << shift
            shift += 7
        number = (number >> 1) ^ -(number & 1)
        if field < 5:  # a string: its length, then its bytes
            if number < 0 or pos + number > end:
                raise ValueError("string beyond the record")
            values.append(data[pos : pos + number].decode())
            pos += number
        elif field == 5:  # the status: an index into the writer's symbols
            if not 0 <= number < len(symbols):
                raise ValueError("status out of range")
            values.append(symbols[number])
        else:
            values.append(number)
    request_id, tag, dataset, channel, _, status, last_updated = values
    return {
        "request_id": request_id, "tag": tag, "dataset": dataset, "channel": channel,
        "status": status, "last_updated": last_updated, "submitted_at": submitted_at,
    }  # fmt: skip


__all__ = ["COLUMNS", "SUBMITTED_AT_HEADER", "JobColumns"]
