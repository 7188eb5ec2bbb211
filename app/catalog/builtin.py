"""The built-in dataset types, written in Python: ``demo-export`` (a deterministic CSV at a
steady, known CPU cost, so the core's tests and benchmarks have a workload that needs no data)
and ``noop`` (no files, for measuring the pipeline without the cost of generation)."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from app.catalog.types import DatasetType, GeneratedFile, GenerationContext, Param


@dataclass(frozen=True)
class BuiltinType(DatasetType):
    """A type whose generation is a Python function."""

    run: Callable[[GenerationContext], list[GeneratedFile]] | None = None

    def generate(self, ctx: GenerationContext) -> list[GeneratedFile]:
        assert self.run is not None, f"built-in type {self.name} has no generator"
        return self.run(ctx)


# --- demo-export ------------------------------------------------------------------------------

DEMO_COLUMNS = ("id", "day", "category", "value")


def generate_demo(ctx: GenerationContext) -> list[GeneratedFile]:
    rows: int = ctx.config["rows"]
    rng = random.Random(ctx.config["seed"])
    columns = list(ctx.columns or DEMO_COLUMNS)
    table = ctx.spool / "data.csv"
    total = 0.0
    step = max(1, min(rows // 20, 50_000))  # a cancel is seen within ~0.1 s of writing
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


DEMO_EXPORT = BuiltinType(
    name="demo-export",
    description="Deterministic demo table (CSV) and a JSON summary derived from the config.",
    params={
        "rows": Param(int, default=100, minimum=0, maximum=50_000_000, doc="rows to generate"),
        "seed": Param(int, default=0, doc="random seed; same seed, same data"),
        "title": Param(str, default="demo", doc="title written into the summary"),
    },
    run=generate_demo,
    default_columns=DEMO_COLUMNS,
)


def generate_nothing(ctx: GenerationContext) -> list[GeneratedFile]:
    ctx.progress(1.0)
    return []


NOOP = BuiltinType(
    name="noop",
    description="Generates no files (the job still gets its manifest): for smoke tests and "
    "for measuring the pipeline without the cost of generation.",
    params={},
    run=generate_nothing,
)
