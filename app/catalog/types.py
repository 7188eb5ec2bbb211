"""The catalog of dataset types: declared, validated before a job starts, generated off the loop.

A type declares its config parameters (name, type, bounds, default); :meth:`DatasetType.validate`
checks a request's config against them and returns the normalised config, or raises
:class:`~app.domain.errors.InvalidConfig` naming the parameter. ``generate`` runs in a worker
thread,
writes files into a spool directory and reports progress through ``ctx.progress``.

Built in for now: ``demo-export``, a small deterministic table (CSV) plus a JSON summary derived
from its config, so the whole path runs end to end. The generation issue replaces it with the
DuckDB-backed catalog.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.errors import InvalidConfig, UnknownDataset


class Cancelled(Exception):
    """Raised inside a generator when its attempt should stop (shutdown or cancel)."""


@dataclass
class GenerationContext:
    """What a generator gets: its validated config and a place to write files."""

    config: dict[str, Any]
    columns: list[str] | None
    spool: Path
    report: Callable[[float], None]
    should_stop: Callable[[], bool] = lambda: False

    def progress(self, fraction: float) -> None:
        if self.should_stop():
            raise Cancelled("generation stopped")
        self.report(max(0.0, min(1.0, fraction)))


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    path: Path
    name: str  # relative name under the attempt's key prefix
    rows: int
    columns: int | None
    content_type: str
    period: str | None = None


@dataclass(frozen=True, slots=True)
class Param:
    type: type
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class DatasetType:
    name: str
    description: str
    params: Mapping[str, Param]
    generate: Callable[[GenerationContext], list[GeneratedFile]]
    default_columns: tuple[str, ...] = ()
    channels: frozenset[str] | None = None  # None = every channel may request it

    def validate(self, config: Any, columns: list[str] | None = None) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise InvalidConfig(f"config of {self.name} must be a JSON object")
        unknown = sorted(set(config) - set(self.params))
        if unknown:
            raise InvalidConfig(f"{self.name} has no parameter {', '.join(unknown)}")
        out: dict[str, Any] = {}
        for name, param in self.params.items():
            if name not in config:
                if param.required:
                    raise InvalidConfig(f"{self.name} needs parameter {name}")
                out[name] = param.default
                continue
            value = config[name]
            if param.type is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidConfig(f"{name} must be an integer")
            if param.type is str and not isinstance(value, str):
                raise InvalidConfig(f"{name} must be a string")
            if param.minimum is not None and value < param.minimum:
                raise InvalidConfig(f"{name} must be >= {param.minimum}")
            if param.maximum is not None and value > param.maximum:
                raise InvalidConfig(f"{name} must be <= {param.maximum}")
            out[name] = value
        if columns is not None and self.default_columns:
            bad = [c for c in columns if c not in self.default_columns]
            if bad or not columns:
                raise InvalidConfig(
                    f"unknown columns {bad}; {self.name} has {list(self.default_columns)}"
                )
        return out


# --- demo-export ------------------------------------------------------------------------------

DEMO_COLUMNS = ("id", "day", "category", "value")


def generate_demo(ctx: GenerationContext) -> list[GeneratedFile]:
    rows: int = ctx.config["rows"]
    rng = random.Random(ctx.config["seed"])
    columns = list(ctx.columns or DEMO_COLUMNS)
    table = ctx.spool / "data.csv"
    total = 0.0
    step = max(1, rows // 20)
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i in range(rows):
            value = round(rng.random() * 1000, 3)
            record: dict[str, object] = {
                "id": i + 1,
                "day": f"2026-01-{(i % 28) + 1:02d}",
                "category": rng.choice("ABCDE"),
                "value": value,
            }
            total += value
            writer.writerow([record[c] for c in columns])
            if i % step == 0:
                ctx.progress(i / rows)
    summary = ctx.spool / "summary.json"
    digest = hashlib.sha256(json.dumps(ctx.config, sort_keys=True).encode()).hexdigest()
    summary.write_text(
        json.dumps(
            {
                "title": ctx.config["title"],
                "rows": rows,
                "columns": columns,
                "value_sum": round(total, 3),
                "config_sha256": digest,
            },
            indent=2,
        )
    )
    ctx.progress(1.0)
    return [
        GeneratedFile(table, "data.csv", rows, len(columns), "text/csv"),
        GeneratedFile(summary, "summary.json", 1, None, "application/json"),
    ]


DEMO_EXPORT = DatasetType(
    name="demo-export",
    description="Deterministic demo table (CSV) and a JSON summary derived from the config.",
    params={
        "rows": Param(int, default=100, minimum=0, maximum=50_000_000, doc="rows to generate"),
        "seed": Param(int, default=0, doc="random seed; same seed, same data"),
        "title": Param(str, default="demo", doc="title written into the summary"),
    },
    generate=generate_demo,
    default_columns=DEMO_COLUMNS,
)


def generate_nothing(ctx: GenerationContext) -> list[GeneratedFile]:
    ctx.progress(1.0)
    return []


NOOP = DatasetType(
    name="noop",
    description="Generates no files (the job still gets its manifest): for smoke tests and "
    "for measuring the pipeline without the cost of generation.",
    params={},
    generate=generate_nothing,
)


@dataclass
class Catalog:
    types: dict[str, DatasetType] = field(default_factory=dict)

    def register(self, dataset_type: DatasetType) -> None:
        self.types[dataset_type.name] = dataset_type

    def get(self, name: str, channel: str | None = None) -> DatasetType:
        found = self.types.get(name)
        if found is None or (
            channel is not None and found.channels is not None and channel not in found.channels
        ):
            known = ", ".join(sorted(self.types))
            raise UnknownDataset(f"unknown dataset {name!r} (available: {known})")
        return found


def default_catalog() -> Catalog:
    catalog = Catalog()
    catalog.register(DEMO_EXPORT)
    catalog.register(NOOP)
    return catalog
