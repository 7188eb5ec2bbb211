"""Dataset types declared as data: one YAML file per type, run by the DuckDB engine.

A file (``app/catalog/builtin/*.yaml`` ships with Exhaust; ``settings.catalog_dir`` adds more)::

    name: table-export
    description: Rows of one dataset or input file, filtered, with chosen columns, sorted.
    kind: table-export            # table-export | summary-report | sql
    config_schema: {...}          # JSON Schema of the request's config (checked at submit)
    sources:                      # the views the query reads, and where their rows come from
      source: {config: source}    #   config.source: a managed dataset code or an input key
      sessions: {dataset: sessions}  #  a managed dataset of the job's channel
      users: {inputs: ndjson}     #   every input file of the job, read as this format
    query: null                   # kind sql: DuckDB SQL over the views; $name binds config.name
    output: {format: CSV, compression: NONE, name: data}   # defaults under the request's output
    encryption: optional          # or required: a password-protected zip, key mandatory
    access: {channels: null, roles: null}   # who may request it (null = everyone)
    public: false                 # true: plain links under settings.public_base_url

The request's ``filters`` and ``columns`` apply to the query's result (for ``table-export`` and
``summary-report``, to the source's rows, before sorting or grouping): see
:mod:`app.engine.query`. The file itself is checked against :data:`FILE_SCHEMA` when the
catalog loads, so a mistake stops the service at start, naming the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from app.catalog.types import DatasetType, GeneratedFile, GenerationContext, SourceRef
from app.domain.errors import ConfigurationError, ExhaustError, InvalidConfig
from app.engine.export import ExportPlan, run_export
from app.engine.formats import OutputSpec
from app.engine.query import check_filter_shape, parse_filters

BUILTIN_DIR = Path(__file__).parent / "builtin"

_VIEW = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}
FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "description", "kind", "config_schema", "sources"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,63}$"},
        "description": {"type": "string", "minLength": 1},
        "kind": {"enum": ["table-export", "summary-report", "sql"]},
        "config_schema": {"type": "object"},
        "sources": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _VIEW,
            "additionalProperties": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": False,
                "properties": {
                    "config": {"type": "string"},
                    "dataset": {"type": "string"},
                    "inputs": {"enum": ["csv", "json", "ndjson", "parquet"]},
                },
            },
        },
        "query": {"type": ["string", "null"]},
        "output": {"type": "object"},
        "encryption": {"enum": ["optional", "required"]},
        "access": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "channels": {"type": ["array", "null"], "items": {"type": "string"}},
                "roles": {"type": ["array", "null"], "items": {"type": "string"}},
            },
        },
        "public": {"type": "boolean"},
        "schedule": {"enum": ["daily", None]},
    },
}
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json",
            ".ndjson": "ndjson", ".jsonl": "ndjson", ".gz": "csv"}  # fmt: skip


@dataclass(frozen=True)
class DeclaredType(DatasetType):
    kind: str = "table-export"
    config_schema: dict[str, Any] = field(default_factory=dict)
    source_specs: dict[str, dict[str, str]] = field(default_factory=dict)
    query: str | None = None
    output_defaults: dict[str, Any] = field(default_factory=dict)
    origin: str = ""

    @property
    def query_params(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_PARAM.findall(self.query or "")))

    def parameters_schema(self) -> dict[str, Any]:
        return self.config_schema

    def validate(self, config: Any, columns: list[str] | None = None) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise InvalidConfig(f"config of {self.name} must be a JSON object")
        validator = jsonschema.Draft202012Validator(self.config_schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(config))
        if error is not None:
            where = "config" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
            )
            raise InvalidConfig(f"{where}: {error.message}")
        defaults = {
            name: spec["default"]
            for name, spec in self.config_schema.get("properties", {}).items()
            if isinstance(spec, dict) and "default" in spec
        }
        return {**defaults, **config}

    def check(
        self,
        config: Any,
        columns: list[str] | None,
        filters: str | None = None,
        output: dict[str, Any] | None = None,
        encrypted: bool = False,
    ) -> dict[str, Any]:
        self.require_key(encrypted)
        normalised = self.validate(config, columns)
        parsed = parse_filters(filters)
        if parsed is not None:
            check_filter_shape(parsed)
        OutputSpec.parse(output, self.output_defaults, encrypted)
        if columns is not None and any(not isinstance(c, str) or not c for c in columns):
            raise InvalidConfig("columns must be column names")
        if columns and self.kind == "summary-report":
            raise InvalidConfig(
                f"{self.name} chooses its columns with config.group_by and config.metrics; "
                "columns must be empty"
            )
        return normalised

    def sources(self, config: dict[str, Any], inputs: list[str]) -> list[SourceRef]:
        refs = []
        for view, spec in self.source_specs.items():
            if "config" in spec:
                name = config.get(spec["config"])
                if not isinstance(name, str) or not name:
                    raise InvalidConfig(f"config.{spec['config']} must name a dataset or input")
                refs.append(SourceRef(view, name, name in inputs, optional_input=True))
            elif "dataset" in spec:
                refs.append(SourceRef(view, spec["dataset"], False))
            else:
                refs.extend(SourceRef(view, key, True, format=spec["inputs"]) for key in inputs)
                if not inputs:
                    refs.append(SourceRef(view, "", True))  # no files: a clear error later
        return refs

    def generate(self, ctx: GenerationContext) -> list[GeneratedFile]:
        spec = OutputSpec.parse(ctx.output, self.output_defaults, ctx.encryption_key is not None)
        if isinstance(ctx.config.get("file_format"), str):  # a type that offers text layouts
            spec = spec.with_layout(ctx.config["file_format"])
        plan = ExportPlan(
            kind=self.kind,  # type: ignore[arg-type]
            config=ctx.config,
            columns=ctx.columns,
            filters=ctx.filters,
            output=spec,
            password=ctx.encryption_key,
            query=self.query,
            query_params=self.query_params,
        )
        result = run_export(
            plan, ctx.sources, ctx.spool / "out", ctx.limits, ctx.report, ctx.should_stop
        )
        ctx.manifest.update(
            {
                "format": spec.format,
                "compression": spec.compression,
                # What was done: only a zip with a non-empty password is encrypted.
                "encrypted": bool(ctx.encryption_key) and spec.compression == "ZIP",
                "columns": [
                    {"name": c.name, "label": c.label, "type": c.type} for c in result.columns
                ],
                "total_rows": result.rows,
            }
        )
        if result.entries:
            ctx.manifest["archive_entries"] = result.entries
        width = len(result.columns)
        return [
            GeneratedFile(f.path, f.name, f.rows, width, f.content_type, f.period, f.group)
            for f in result.files
        ]


def source_format(key: str, declared: str | None = None) -> str:
    """How an input file is read: the source's declared format, else its extension."""
    if declared:
        return declared
    suffixes = Path(key).suffixes
    for suffix in reversed(suffixes):
        if suffix.lower() in _FORMATS and suffix.lower() != ".gz":
            return _FORMATS[suffix.lower()]
    raise InvalidConfig(
        f"input {key!r}: cannot tell its format (name it .csv, .tsv, .json, .ndjson, .jsonl or "
        ".parquet)"
    )


def load_declared(directories: list[Path]) -> Iterator[DeclaredType]:
    """Every ``*.yaml`` of ``directories``, checked; a bad file is a ConfigurationError."""
    for directory in directories:
        if not directory.is_dir():
            raise ConfigurationError(f"catalog directory {directory} does not exist")
        for path in sorted(directory.glob("*.yaml")):
            yield _load(path)


def _load(path: Path) -> DeclaredType:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"catalog file {path}: not YAML ({exc})") from exc
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(FILE_SCHEMA).iter_errors(raw)
    )
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top)"
        raise ConfigurationError(f"catalog file {path}: {where}: {error.message}")
    try:
        jsonschema.Draft202012Validator.check_schema(raw["config_schema"])
    except jsonschema.exceptions.SchemaError as exc:
        raise ConfigurationError(f"catalog file {path}: config_schema: {exc.message}") from exc
    if (raw["kind"] == "sql") != bool(raw.get("query")):
        raise ConfigurationError(f"catalog file {path}: a query is required by kind sql only")
    if raw["kind"] != "sql" and len(raw["sources"]) != 1:
        raise ConfigurationError(f"catalog file {path}: kind {raw['kind']} reads one source")
    try:
        OutputSpec.parse(None, raw.get("output") or {}, False)
    except ExhaustError as exc:
        raise ConfigurationError(f"catalog file {path}: output: {exc.message}") from exc
    if raw.get("schedule") and "date" not in raw["config_schema"].get("properties", {}):
        raise ConfigurationError(
            f"catalog file {path}: a scheduled type takes config.date (the day it covers)"
        )
    access = raw.get("access") or {}
    return DeclaredType(
        name=raw["name"],
        description=raw["description"].strip(),
        params={},
        channels=frozenset(access["channels"]) if access.get("channels") else None,
        roles=frozenset(access["roles"]) if access.get("roles") else None,
        encryption=raw.get("encryption", "optional"),
        public=bool(raw.get("public", False)),
        schedule=raw.get("schedule"),
        kind=raw["kind"],
        config_schema=raw["config_schema"],
        source_specs=raw["sources"],
        query=raw.get("query"),
        output_defaults=raw.get("output") or {},
        origin=str(path),
    )
