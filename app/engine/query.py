"""A request's filters, columns, sort and summary compiled to parameterised SQL. No I/O.

Nothing a request carries is ever pasted into SQL text:

* **Columns** are looked up in the source's :class:`Schema` (by name, then by label, ignoring
  case) and replaced by the name the engine gave them: the source view renames column *i* to
  ``c{i}`` positionally (``#i AS c{i}``), so the SQL holds only names we generated. Labels
  (aliases, which may hold any text) are applied through DuckDB's relational API, never in SQL.
* **Values** become named parameters (``$f1``, ``$f2``, ...) collected in :class:`Params`.
* **Structure** (operators, metric names) comes from fixed tables here; anything else is an
  :class:`~app.domain.errors.InvalidFilter` or :class:`~app.domain.errors.InvalidConfig`.

The filter language (``docs/events.md`` is the user's version)::

    node   := {"and": [node, ...]} | {"or": [node, ...]} | {"not": node} | leaf
    leaf   := {"column": name, "op": op, "value": value}
    op     := = != < <= > >= in not_in between like ilike is_null not_null

Values are checked against the column's type (numbers for numeric columns, strings for text,
booleans, ISO strings for dates and datetimes); a mismatch is a
:class:`~app.domain.errors.TypeMismatch`. Limits keep a compiled filter small: at most
:data:`MAX_NODES` nodes, :data:`MAX_DEPTH` levels and :data:`MAX_IN_VALUES` values in a list.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from app.domain import json_values
from app.domain.errors import InvalidConfig, InvalidFilter, TypeMismatch, UnknownColumn

MAX_NODES = 256
MAX_DEPTH = 16
MAX_IN_VALUES = 10_000

Family = Literal["number", "string", "boolean", "date", "datetime", "other"]

_NUMERIC = re.compile(
    r"(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL|DECIMAL(\(\d+,\s*\d+\))?)$"
)


def family(duckdb_type: str) -> Family:
    """The value family of a DuckDB type name, which decides what a filter value must be."""
    t = duckdb_type.upper()
    if _NUMERIC.match(t):
        return "number"
    if t == "VARCHAR" or t.startswith("VARCHAR("):
        return "string"
    if t == "BOOLEAN":
        return "boolean"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "datetime"
    return "other"


@dataclass(frozen=True, slots=True)
class SourceColumn:
    ref: str  # the engine's name for it in SQL: c1, c2, ...
    name: str  # the source's own name
    label: str  # heading in exports (a managed dataset's alias, else the name)
    type: str  # DuckDB type

    @property
    def family(self) -> Family:
        return family(self.type)


@dataclass(frozen=True)
class Schema:
    """The columns of a query's input, in order."""

    columns: tuple[SourceColumn, ...]

    @classmethod
    def of(cls, described: list[tuple[str, str]], labels: dict[str, str] | None = None) -> Schema:
        """From ``(name, type)`` pairs as DuckDB describes them; ``labels`` maps names to labels."""
        labels = labels or {}
        return cls(
            tuple(
                SourceColumn(f"c{i}", name, labels.get(name, name), kind)
                for i, (name, kind) in enumerate(described, start=1)
            )
        )

    def find(self, name: object, where: str) -> SourceColumn:
        """The column a request names (by name, else by label; case-insensitive)."""
        if not isinstance(name, str) or not name:
            raise InvalidFilter(f"{where} must be a column name")
        folded = name.lower()
        for exact in (
            [c for c in self.columns if c.name == name],
            [c for c in self.columns if c.label == name],
            [c for c in self.columns if c.name.lower() == folded],
            [c for c in self.columns if c.label.lower() == folded],
        ):
            if exact:
                return exact[0]
        known = ", ".join(c.name for c in self.columns)
        raise UnknownColumn(f"{where}: no column {name!r} (columns: {known})")


@dataclass
class Params:
    """Named parameters of one statement."""

    values: dict[str, Any] = field(default_factory=dict)
    prefix: str = "f"

    def add(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.values) + 1}"
        self.values[name] = value
        return f"${name}"


# --- filters ------------------------------------------------------------------------------------

_COMPARISONS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ORDERED: frozenset[Family] = frozenset({"number", "string", "date", "datetime"})
OPS = (*_COMPARISONS, "in", "not_in", "between", "like", "ilike", "is_null", "not_null")


def parse_filters(text: str | None) -> Any:
    """The request's ``filters`` (JSON text) as a value; ``None``/empty means no filter."""
    if text is None or text.strip() in ("", "null", "{}"):
        return None
    return json_values.loads(text, "filters", InvalidFilter)


def check_filter_shape(node: Any) -> None:
    """Check a filter's structure without a schema (at submit time, before the source is read)."""
    _walk(node, None, Params(), [0], 0, "filters")


def compile_filter(node: Any, schema: Schema, params: Params) -> str | None:
    """SQL boolean expression of ``node`` over ``schema``'s refs, values added to ``params``."""
    if node is None:
        return None
    return _walk(node, schema, params, [0], 0, "filters")


def _walk(
    node: Any, schema: Schema | None, params: Params, count: list[int], depth: int, where: str
) -> str:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise InvalidFilter(f"filters has more than {MAX_NODES} nodes")
    if depth >= MAX_DEPTH:
        raise InvalidFilter(f"filters nests deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise InvalidFilter(f"{where} must be a JSON object")
    for junction in ("and", "or"):
        if junction in node:
            if set(node) != {junction}:
                raise InvalidFilter(f"{where}: '{junction}' must be the object's only key")
            parts = node[junction]
            if not isinstance(parts, list) or not parts:
                raise InvalidFilter(f"{where}.{junction} must be a non-empty list")
            sql = [
                _walk(p, schema, params, count, depth + 1, f"{where}.{junction}[{i}]")
                for i, p in enumerate(parts)
            ]
            return "(" + f" {junction.upper()} ".join(sql) + ")"
    if "not" in node:
        if set(node) != {"not"}:
            raise InvalidFilter(f"{where}: 'not' must be the object's only key")
        return f"(NOT {_walk(node['not'], schema, params, count, depth + 1, where + '.not')})"
    return _leaf(node, schema, params, where)


def _leaf(node: dict[str, Any], schema: Schema | None, params: Params, where: str) -> str:
    unknown = sorted(set(node) - {"column", "op", "value"})
    if unknown:
        raise InvalidFilter(f"{where} has unknown keys {unknown} (a leaf is column, op, value)")
    op = node.get("op")
    if op not in OPS:
        raise InvalidFilter(f"{where}.op must be one of {', '.join(OPS)}; got {op!r}")
    if not isinstance(node.get("column"), str):
        raise InvalidFilter(f"{where}.column must be a column name")
    value: Any = node.get("value")
    if op in ("is_null", "not_null"):
        if value is not None:
            raise InvalidFilter(f"{where}: {op} takes no value")
    elif op in ("in", "not_in", "between"):
        if not isinstance(value, list):
            raise InvalidFilter(f"{where}.value of {op} must be a list")
        if op == "between" and len(value) != 2:
            raise InvalidFilter(f"{where}.value of between must be [low, high]")
        if not value or len(value) > MAX_IN_VALUES:
            raise InvalidFilter(f"{where}.value of {op} must hold 1..{MAX_IN_VALUES} values")
    elif value is None or isinstance(value, (list, dict)):
        raise InvalidFilter(f"{where}.value of {op} must be a single value")
    if schema is None:
        return ""
    column = schema.find(node["column"], f"{where}.column")
    ref = column.ref
    if op == "is_null":
        return f"({ref} IS NULL)"
    if op == "not_null":
        return f"({ref} IS NOT NULL)"
    if op in ("like", "ilike"):
        if column.family != "string":
            raise TypeMismatch(f"{where}: {op} needs a text column; {column.name} is {column.type}")
        return f"({ref} {op.upper()} {params.add(_typed(value, column, where))})"
    if op in ("in", "not_in"):
        values = [_typed(v, column, f"{where}.value[{i}]") for i, v in enumerate(value)]
        test = f"list_contains({params.add(values)}, {ref})"
        return f"({test})" if op == "in" else f"(NOT {test})"
    if column.family not in _ORDERED and op not in ("=", "!="):
        raise TypeMismatch(f"{where}: {op} does not apply to {column.name} ({column.type})")
    if op == "between":
        low, high = (_typed(v, column, f"{where}.value[{i}]") for i, v in enumerate(value))
        return f"({ref} BETWEEN {params.add(low)} AND {params.add(high)})"
    return f"({ref} {_COMPARISONS[op]} {params.add(_typed(value, column, where))})"


def _typed(value: Any, column: SourceColumn, where: str) -> Any:
    """``value`` as the Python value bound for ``column``, or a TypeMismatch naming both."""
    kind = column.family
    ok: Any = None
    if (
        (kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (kind == "string" and isinstance(value, str))
        or (kind == "boolean" and isinstance(value, bool))
    ):
        ok = value
    elif kind == "date" and isinstance(value, str):
        try:
            ok = dt.date.fromisoformat(value)
        except ValueError:
            ok = None
    elif kind == "datetime" and isinstance(value, str):
        try:
            ok = dt.datetime.fromisoformat(value)
        except ValueError:
            ok = None
    if ok is None:
        wanted = {
            "number": "a number",
            "string": "a string",
            "boolean": "true or false",
            "date": "an ISO date (2026-01-31)",
            "datetime": "an ISO datetime (2026-01-31T12:00:00)",
            "other": "nothing: filters do not apply to this type",
        }[kind]
        raise TypeMismatch(
            f"{where}: {column.name} is {column.type}, so the value must be {wanted}; "
            f"got {json.dumps(value)[:80]}"
        )
    return ok


# --- columns, sort, summaries -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """One column of an export: the SQL that computes it, its heading and its type."""

    ref: str  # name in the query's result (c3, g1, m2)
    label: str  # heading
    type: str  # DuckDB type (filled from the result when the query is described)
    name: str  # the source column it comes from, or the metric's name


def select_columns(requested: list[str] | None, schema: Schema) -> list[SourceColumn]:
    """The request's ``columns`` in its order (null or empty: all), each checked once."""
    if not requested:
        return list(schema.columns)
    chosen: list[SourceColumn] = []
    for i, name in enumerate(requested):
        column = schema.find(name, f"columns[{i}]")
        if column in chosen:
            raise InvalidConfig(f"columns[{i}]: {name!r} is listed twice")
        chosen.append(column)
    return chosen


def order_by(sort: list[dict[str, Any]] | None, schema: Schema) -> str:
    """``ORDER BY`` text of a validated ``config.sort`` (empty when there is none)."""
    if not sort:
        return ""
    terms = []
    for i, term in enumerate(sort):
        column = schema.find(term.get("column"), f"config.sort[{i}].column")
        terms.append(f"{column.ref} {'DESC' if term.get('desc') else 'ASC'} NULLS LAST")
    return " ORDER BY " + ", ".join(terms)


METRICS: dict[str, str] = {
    "count": "count({x})",
    "sum": "sum({x})",
    "avg": "avg({x})",
    "min": "min({x})",
    "max": "max({x})",
    "count_distinct": "count(DISTINCT {x})",
    "median": "median({x})",
    "p50": "quantile_cont({x}, 0.5)",
    "p90": "quantile_cont({x}, 0.9)",
    "p99": "quantile_cont({x}, 0.99)",
    "stddev": "stddev_samp({x})",
}
"""Metric ops of summaries and the SQL template of each (``{x}`` is a column ref)."""
NUMERIC_ONLY = frozenset({"sum", "avg", "median", "p50", "p90", "p99", "stddev"})


@dataclass(frozen=True)
class Summary:
    select: str  # the SELECT list
    group_by: str  # GROUP BY text (empty without groups)
    columns: list[OutputColumn]
    split: OutputColumn | None  # the group column that splits files, if any


def summary(
    group_by: list[str], metrics: list[dict[str, Any]], split_by: str | None, schema: Schema
) -> Summary:
    """SELECT and GROUP BY of a summary report over ``schema``."""
    out: list[OutputColumn] = []
    select: list[str] = []
    groups: list[SourceColumn] = []
    for i, name in enumerate(group_by):
        column = schema.find(name, f"config.group_by[{i}]")
        groups.append(column)
        select.append(f"{column.ref} AS g{i + 1}")
        out.append(OutputColumn(f"g{i + 1}", column.label, column.type, column.name))
    split: OutputColumn | None = None
    if split_by is not None:
        column = schema.find(split_by, "config.split_by")
        if column not in groups:
            raise InvalidConfig(f"config.split_by: {split_by!r} must be one of config.group_by")
        split = out[groups.index(column)]
    labels = {c.label for c in out}
    for i, metric in enumerate(metrics):
        op = metric["op"]
        where = f"config.metrics[{i}]"
        if op not in METRICS:
            raise InvalidConfig(f"{where}.op must be one of {', '.join(METRICS)}")
        if metric.get("column") is None:
            if op != "count":
                raise InvalidConfig(f"{where}.column is required for {op}")
            expr, source_name, label = "count(*)", "*", metric.get("as") or "count"
        else:
            column = schema.find(metric["column"], f"{where}.column")
            if op in NUMERIC_ONLY and column.family != "number":
                raise TypeMismatch(f"{where}: {op} needs a numeric column; {column.name} is "
                                   f"{column.type}")  # fmt: skip
            expr = METRICS[op].format(x=column.ref)
            source_name = column.name
            label = metric.get("as") or f"{op}_{column.name}"
        if label in labels:
            raise InvalidConfig(f"{where}: the output column {label!r} appears twice (use 'as')")
        labels.add(label)
        select.append(f"{expr} AS m{i + 1}")
        out.append(OutputColumn(f"m{i + 1}", label, "", source_name))
    if not out:
        raise InvalidConfig("a summary needs at least one of config.group_by or config.metrics")
    group_sql = ", ".join(c.ref for c in groups)
    return Summary(", ".join(select), f" GROUP BY {group_sql}" if groups else "", out, split)
