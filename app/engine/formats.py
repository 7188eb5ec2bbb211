"""Output options of a request (format, compression, splits) and how each is written. No I/O
beyond the zip writer.

DuckDB's own writers produce every format (``COPY ... TO`` with fixed option text chosen here
from the enum values, never from request text); gzip is DuckDB's ``COMPRESSION gzip`` for text
formats and the Parquet codec for Parquet. A zip (and an AES-256 password-protected zip, through
pyzipper) bundles all of a job's files into one archive, written from the spooled files in
chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pyzipper

from app.domain.errors import InvalidOutput

Format = Literal["CSV", "TSV", "JSON", "JSONL", "PARQUET"]
Compression = Literal["NONE", "GZIP", "ZIP"]
FORMATS: tuple[Format, ...] = ("CSV", "TSV", "JSON", "JSONL", "PARQUET")
COMPRESSIONS: tuple[Compression, ...] = ("NONE", "GZIP", "ZIP")

_EXTENSION: dict[Format, str] = {
    "CSV": ".csv",
    "TSV": ".tsv",
    "JSON": ".json",
    "JSONL": ".jsonl",
    "PARQUET": ".parquet",
}
_CONTENT_TYPE: dict[Format, str] = {
    "CSV": "text/csv",
    "TSV": "text/tab-separated-values",
    "JSON": "application/json",
    "JSONL": "application/x-ndjson",
    "PARQUET": "application/vnd.apache.parquet",
}
MAX_ROWS_PER_FILE = 1_000_000_000
# Delimited-text layouts a type's ``config.file_format`` may pick (usaspending-api's
# FILE_FORMATS): the CSV writer with another delimiter (as DuckDB's DELIMITER option text) and
# file extension.
TEXT_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "csv": (",", ".csv", "text/csv"),
    "tsv": ("\\t", ".tsv", "text/tab-separated-values"),
    "pstxt": ("|", ".txt", "text/plain"),
}


@dataclass(frozen=True, slots=True)
class OutputSpec:
    format: Format = "CSV"
    compression: Compression = "NONE"
    rows_per_file: int | None = None
    partition_by: str | None = None
    name: str = "data"  # base name of unsplit and numbered files (from the type)
    layout: str | None = None  # a TEXT_LAYOUTS key: delimited text of that layout

    @classmethod
    def parse(
        cls, requested: dict[str, Any] | None, defaults: dict[str, Any], encrypted: bool
    ) -> OutputSpec:
        """The request's ``output`` over the type's defaults; a key forces a zip."""
        merged = {**defaults, **{k: v for k, v in (requested or {}).items() if v is not None}}
        fmt = str(merged.get("format", "CSV")).upper()
        compression = str(merged.get("compression", "NONE")).upper()
        if fmt not in FORMATS:
            raise InvalidOutput(f"output.format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        if compression not in COMPRESSIONS:
            raise InvalidOutput(
                f"output.compression must be one of {', '.join(COMPRESSIONS)}; got {compression!r}"
            )
        if encrypted:
            if compression == "GZIP":
                raise InvalidOutput(
                    "an encryption key needs output.compression ZIP (a password-protected zip); "
                    "gzip cannot be encrypted"
                )
            compression = "ZIP"
        rows = merged.get("rows_per_file")
        if rows is not None and (
            isinstance(rows, bool) or not isinstance(rows, int) or not 0 < rows <= MAX_ROWS_PER_FILE
        ):
            raise InvalidOutput(f"output.rows_per_file must be 1..{MAX_ROWS_PER_FILE}")
        partition = merged.get("partition_by")
        if partition is not None and (not isinstance(partition, str) or not partition):
            raise InvalidOutput("output.partition_by must be a column name")
        name = str(merged.get("name", "data"))
        return cls(fmt, compression, rows, partition, name)  # type: ignore[arg-type]

    def with_layout(self, layout: str) -> OutputSpec:
        """Delimited text in one of :data:`TEXT_LAYOUTS`, whatever the format was."""
        if layout not in TEXT_LAYOUTS:
            raise InvalidOutput(f"file_format must be one of {', '.join(TEXT_LAYOUTS)}")
        return replace(self, format="CSV", layout=layout)

    @property
    def extension(self) -> str:
        """Extension of each data file (before any zip)."""
        ext = TEXT_LAYOUTS[self.layout][1] if self.layout else _EXTENSION[self.format]
        return ext + ".gz" if self.compression == "GZIP" and self.format != "PARQUET" else ext

    @property
    def content_type(self) -> str:
        if self.compression == "GZIP" and self.format != "PARQUET":
            return "application/gzip"
        return TEXT_LAYOUTS[self.layout][2] if self.layout else _CONTENT_TYPE[self.format]

    def copy_options(self) -> str:
        """The option list of DuckDB's ``COPY ... TO`` for this output (fixed texts only)."""
        gzip = self.compression == "GZIP"
        if self.format == "PARQUET":
            return f"FORMAT parquet, COMPRESSION {'gzip' if gzip else 'zstd'}"
        codec = ", COMPRESSION gzip" if gzip else ""
        if self.layout:  # the delimiter comes from the fixed table, never from the request
            delimiter = TEXT_LAYOUTS[self.layout][0]
            return f"FORMAT csv, HEADER true, DELIMITER '{delimiter}'{codec}"
        if self.format == "CSV":
            return f"FORMAT csv, HEADER true{codec}"
        if self.format == "TSV":
            return f"FORMAT csv, HEADER true, DELIMITER '\\t'{codec}"
        if self.format == "JSON":
            return f"FORMAT json, ARRAY true{codec}"
        return f"FORMAT json{codec}"


def write_zip(target: Path, members: list[tuple[Path, str]], password: str | None) -> None:
    """Bundle ``members`` (path, name in the archive) into one zip; AES-256 with a password.

    ZIP64 is forced so members past 4 GiB work; pyzipper streams each file in chunks."""
    encryption = pyzipper.WZ_AES if password else None
    with pyzipper.AESZipFile(
        target, "w", compression=pyzipper.ZIP_DEFLATED, encryption=encryption, allowZip64=True
    ) as archive:
        if password:
            archive.setpassword(password.encode())
            archive.setencryption(pyzipper.WZ_AES, nbits=256)
        for path, name in members:
            archive.write(path, name, compresslevel=1)
