"""The catalog of dataset types: who may request each, how a request is checked before its job
starts, and how it generates (in a worker thread, off the event loop).

Two families share :class:`DatasetType`:

* **declared types** (:mod:`app.catalog.declared`): YAML files, one per type, run by the DuckDB
  engine; ``table-export``, ``summary-report`` and the profiles' types are declared this way,
  and an operator adds more from ``settings.catalog_dir`` without writing Python;
* **built-in types** (:mod:`app.catalog.builtin`): ``demo-export`` and ``noop``, written in
  Python; their config parameters are declared as :class:`Param`.

Access is per type: channels and roles (the request's ``labels.role``); a type a caller may not
request is reported as unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.domain.errors import (
    Cancelled,
    EncryptionKeyRequired,
    InvalidConfig,
    InvalidFilter,
    UnknownDataset,
)
from app.engine.export import Limits, LocalSource
from app.engine.query import parse_filters


@dataclass
class GenerationContext:
    """What a generator gets: its validated request, its sources and a place to write files."""

    config: dict[str, Any]
    columns: list[str] | None
    spool: Path
    report: Callable[[float], None]
    should_stop: Callable[[], bool] = lambda: False
    filters: Any = None
    output: dict[str, Any] | None = None
    encryption_key: str | None = None
    sources: list[LocalSource] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    manifest: dict[str, Any] = field(default_factory=dict)  # extra manifest fields of the type

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
    group: str | None = None


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where one source of a declared type comes from, once its config is known."""

    view: str  # the name the type's query reads it by
    name: str  # a managed dataset code of the job's channel, or an input key
    input: bool  # True: ``name`` is one of the job's input keys; False: a dataset code
    optional_input: bool = False  # named by the config: a dataset code or an input key
    format: str | None = None  # how an input is read (None: from its extension)


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
    """A dataset type: what it is called, who may request it, how its config is checked and how
    it generates. Built-in types (:mod:`app.catalog.builtin`) are Python; declared types
    (:mod:`app.catalog.declared`) come from YAML files."""

    name: str
    description: str
    params: Mapping[str, Param]
    default_columns: tuple[str, ...] = ()
    channels: frozenset[str] | None = None  # None = every channel may request it
    roles: frozenset[str] | None = None  # None = every role (the request's labels.role)
    encryption: Literal["optional", "required"] = "optional"
    public: bool = False  # outputs get plain links under settings.public_base_url
    schedule: Literal["daily"] | None = None  # a standard dataset: one job per channel and day

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON Schema of this type's ``config`` (what :meth:`validate` accepts)."""
        kinds = {int: "integer", str: "string", float: "number", bool: "boolean"}
        properties: dict[str, Any] = {}
        for name, param in self.params.items():
            schema: dict[str, Any] = {"type": kinds.get(param.type, "string")}
            if param.doc:
                schema["description"] = param.doc
            if param.default is not None:
                schema["default"] = param.default
            if param.minimum is not None:
                schema["minimum"] = param.minimum
            if param.maximum is not None:
                schema["maximum"] = param.maximum
            properties[name] = schema
        required = [name for name, param in self.params.items() if param.required]
        return {"type": "object", "properties": properties, "required": required,
                "additionalProperties": False}  # fmt: skip

    def admits(self, channel: str | None, role: str | None) -> bool:
        """Whether ``channel`` with ``role`` (the caller's roles, comma-separated, as the API
        writes them into the request's ``labels.role`` from the authenticated identity) may
        request this type."""
        if channel is not None and self.channels is not None and channel not in self.channels:
            return False
        held = frozenset(role.split(",")) if role else frozenset()
        return self.roles is None or bool(held & self.roles)

    def generate(self, ctx: GenerationContext) -> list[GeneratedFile]:
        """Write the type's files under ``ctx.spool`` (in a worker thread, off the event loop)."""
        raise NotImplementedError(f"{type(self).__name__} does not generate")

    def sources(self, config: dict[str, Any], inputs: list[str]) -> list[SourceRef]:
        """The sources to download before :attr:`generate` runs (none for built-in types)."""
        return []

    def require_key(self, encrypted: bool) -> None:
        if self.encryption == "required" and not encrypted:
            raise EncryptionKeyRequired(
                f"{self.name} writes a password-protected zip: encryption_key is required"
            )

    def check(
        self,
        config: Any,
        columns: list[str] | None,
        filters: str | None = None,
        output: dict[str, Any] | None = None,
        encrypted: bool = False,
    ) -> dict[str, Any]:
        """Everything about a request that can be checked before its sources are read; returns
        the normalised config. Errors name the field."""
        self.require_key(encrypted)
        if filters is not None and parse_filters(filters) is not None:
            raise InvalidFilter(f"{self.name} takes no filters")
        return self.validate(config, columns)

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


@dataclass
class Catalog:
    types: dict[str, DatasetType] = field(default_factory=dict)

    def register(self, dataset_type: DatasetType) -> None:
        self.types[dataset_type.name] = dataset_type

    def get(self, name: str, channel: str | None = None, role: str | None = None) -> DatasetType:
        """The type ``name`` if ``channel`` (and ``role``) may request it. A type they may not
        request is reported as unknown, so the catalog of another channel does not leak."""
        found = self.types.get(name)
        if found is None or not found.admits(channel, role):
            known = ", ".join(sorted(n for n, t in self.types.items() if t.admits(channel, role)))
            raise UnknownDataset(f"unknown dataset {name!r} (available: {known})")
        return found

    def check(
        self,
        name: str,
        channel: str,
        labels: Mapping[str, str],
        config: Any,
        columns: list[str] | None,
        filters: str | None,
        output: dict[str, Any] | None,
        encrypted: bool,
    ) -> DatasetType:
        """The type of a request, its access and everything checkable before generation."""
        dataset_type = self.get(name, channel, labels.get("role"))
        dataset_type.check(config, columns, filters, output, encrypted)
        return dataset_type
