"""The filter language and the column, sort and summary compilers: SQL holds no request text."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import (
    ExhaustError,
    InvalidConfig,
    InvalidFilter,
    TypeMismatch,
    UnknownColumn,
)
from app.engine.query import (
    MAX_DEPTH,
    MAX_NODES,
    Params,
    Schema,
    check_filter_shape,
    compile_filter,
    family,
    order_by,
    parse_filters,
    select_columns,
    summary,
)

SCHEMA = Schema.of(
    [("carrier", "VARCHAR"), ("month", "INTEGER"), ("dep_delay", "DOUBLE"),
     ("day", "DATE"), ("ts", "TIMESTAMP"), ("ok", "BOOLEAN"), ("amount", "DECIMAL(12,2)"),
     ("tags", "VARCHAR[]")],
    labels={"carrier": "Carrier code"},
)  # fmt: skip


def compile_(node: Any) -> tuple[str | None, dict[str, Any]]:
    params = Params()
    return compile_filter(node, SCHEMA, params), params.values


def test_the_issue_example_compiles_to_refs_and_parameters() -> None:
    sql, values = compile_({"and": [
        {"column": "carrier", "op": "in", "value": ["UA", "AA"]},
        {"column": "month", "op": "between", "value": [1, 3]},
        {"or": [{"column": "dep_delay", "op": ">", "value": 60}, {"column": "day", "op": "is_null"}]},
    ]})  # fmt: skip
    assert sql == (
        "((list_contains($f1, c1)) AND (c2 BETWEEN $f2 AND $f3) AND ((c3 > $f4) OR (c4 IS NULL)))"
    )
    assert values == {"f1": ["UA", "AA"], "f2": 1, "f3": 3, "f4": 60}


@pytest.mark.parametrize(
    ("leaf", "sql", "bound"),
    [
        ({"column": "month", "op": "=", "value": 1}, "(c2 = $f1)", 1),
        ({"column": "month", "op": "!=", "value": 1}, "(c2 <> $f1)", 1),
        ({"column": "dep_delay", "op": "<=", "value": 2.5}, "(c3 <= $f1)", 2.5),
        ({"column": "day", "op": ">=", "value": "2026-01-05"}, "(c4 >= $f1)", dt.date(2026, 1, 5)),
        ({"column": "ts", "op": "<", "value": "2026-01-05T10:00:00"}, "(c5 < $f1)",
         dt.datetime(2026, 1, 5, 10)),
        ({"column": "ok", "op": "=", "value": True}, "(c6 = $f1)", True),
        ({"column": "Carrier code", "op": "like", "value": "U%"}, "(c1 LIKE $f1)", "U%"),
        ({"column": "carrier", "op": "ilike", "value": "u%"}, "(c1 ILIKE $f1)", "u%"),
        ({"column": "carrier", "op": "not_in", "value": ["UA"]}, "(NOT list_contains($f1, c1))",
         ["UA"]),
        ({"column": "amount", "op": ">", "value": 10}, "(c7 > $f1)", 10),
        ({"column": "tags", "op": "not_null"}, "(c8 IS NOT NULL)", None),
    ],
)  # fmt: skip
def test_every_operator(leaf: dict[str, Any], sql: str, bound: Any) -> None:
    compiled, values = compile_(leaf)
    assert compiled == sql
    assert values == ({} if bound is None else {"f1": bound})


def test_not_wraps_its_node() -> None:
    assert compile_({"not": {"column": "ok", "op": "=", "value": False}})[0] == "(NOT (c6 = $f1))"


@pytest.mark.parametrize(
    ("node", "error", "names"),
    [
        ({"column": "nope", "op": "=", "value": 1}, UnknownColumn, "filters.column"),
        ({"column": "month", "op": "~", "value": 1}, InvalidFilter, "filters.op"),
        ({"column": "month", "op": "=", "value": "1"}, TypeMismatch, "must be a number"),
        ({"column": "month", "op": "=", "value": True}, TypeMismatch, "must be a number"),
        ({"column": "carrier", "op": "=", "value": 5}, TypeMismatch, "must be a string"),
        ({"column": "day", "op": "=", "value": "05/01/2026"}, TypeMismatch, "ISO date"),
        ({"column": "ts", "op": "=", "value": "noon"}, TypeMismatch, "ISO datetime"),
        ({"column": "month", "op": "like", "value": "1%"}, TypeMismatch, "like needs a text"),
        ({"column": "tags", "op": "<", "value": "a"}, TypeMismatch, "does not apply"),
        ({"column": "month", "op": "between", "value": [1]}, InvalidFilter, "[low, high]"),
        ({"column": "month", "op": "in", "value": []}, InvalidFilter, "1..10000"),
        ({"column": "month", "op": "in", "value": 3}, InvalidFilter, "must be a list"),
        ({"column": "month", "op": "is_null", "value": 3}, InvalidFilter, "takes no value"),
        ({"column": "month", "op": "=", "value": [1]}, InvalidFilter, "single value"),
        ({"column": "month", "op": "=", "value": 1, "sql": "1=1"}, InvalidFilter, "unknown keys"),
        ({"and": []}, InvalidFilter, "non-empty list"),
        ({"and": [{"column": "month", "op": "=", "value": 1}], "or": []}, InvalidFilter,
         "only key"),
        ({"or": [{"column": "month", "op": "=", "value": 1}, 7]}, InvalidFilter, "filters.or[1]"),
        ([1, 2], InvalidFilter, "JSON object"),
    ],
)  # fmt: skip
def test_wrong_filters_are_refused_naming_the_node(
    node: Any, error: type[ExhaustError], names: str
) -> None:
    with pytest.raises(error) as caught:
        compile_(node)
    assert names in caught.value.message


def test_size_and_depth_are_limited() -> None:
    leaf = {"column": "month", "op": "=", "value": 1}
    with pytest.raises(InvalidFilter, match=f"more than {MAX_NODES}"):
        check_filter_shape({"or": [leaf] * MAX_NODES})
    deep: dict[str, Any] = leaf
    for _ in range(MAX_DEPTH):
        deep = {"not": deep}
    with pytest.raises(InvalidFilter, match="deeper"):
        check_filter_shape(deep)


def test_filters_text() -> None:
    assert parse_filters(None) is None and parse_filters("{}") is None
    assert parse_filters('{"column": "a", "op": "is_null"}') == {"column": "a", "op": "is_null"}
    with pytest.raises(InvalidFilter):
        parse_filters("{not json")


TEXT = st.text(min_size=1, max_size=40)


@given(column=TEXT, value=TEXT)
def test_no_request_text_ever_reaches_the_sql(column: str, value: str) -> None:
    """Whatever a client sends as a column or a value, the SQL holds only our refs and markers."""
    node = {"or": [{"column": "carrier", "op": "=", "value": value},
                   {"column": column, "op": "like", "value": value}]}  # fmt: skip
    try:
        sql, values = compile_(node)
    except (UnknownColumn, TypeMismatch):  # a name that finds a column like cannot take
        return
    assert sql is not None
    residue = sql
    for token in ("c1", "$f1", "$f2", "LIKE", "OR", "=", "(", ")", " "):
        residue = residue.replace(token, "")
    assert residue == ""
    assert set(values.values()) == {value}


def test_columns_in_request_order_by_name_or_label() -> None:
    chosen = select_columns(["month", "carrier code"], SCHEMA)
    assert [(c.ref, c.label) for c in chosen] == [("c2", "month"), ("c1", "Carrier code")]
    assert [c.name for c in select_columns(None, SCHEMA)] == [c.name for c in SCHEMA.columns]
    with pytest.raises(UnknownColumn, match=r"columns\[1\]"):
        select_columns(["month", "month; DROP TABLE x"], SCHEMA)
    with pytest.raises(InvalidConfig, match="twice"):
        select_columns(["month", "MONTH"], SCHEMA)


def test_sort_terms() -> None:
    sort: list[dict[str, Any]] = [{"column": "day", "desc": True}, {"column": "carrier"}]
    assert order_by(sort, SCHEMA) == " ORDER BY c4 DESC NULLS LAST, c1 ASC NULLS LAST"
    with pytest.raises(UnknownColumn, match=r"config.sort\[0\].column"):
        order_by([{"column": "x"}], SCHEMA)


def test_summary_of_groups_and_metrics() -> None:
    report = summary(
        ["carrier", "day"],
        [{"op": "count"}, {"op": "p90", "column": "dep_delay", "as": "p90 delay"},
         {"op": "count_distinct", "column": "month"}],
        "carrier",
        SCHEMA,
    )  # fmt: skip
    assert report.select == (
        "c1 AS g1, c4 AS g2, count(*) AS m1, quantile_cont(c3, 0.9) AS m2, count(DISTINCT c2) AS m3"
    )
    assert report.group_by == " GROUP BY c1, c4"
    assert [c.label for c in report.columns] == [
        "Carrier code", "day", "count", "p90 delay", "count_distinct_month"
    ]  # fmt: skip
    assert report.split is not None and report.split.ref == "g1"


@pytest.mark.parametrize(
    ("groups", "metrics", "split", "error"),
    [
        ([], [{"op": "sum", "column": "carrier"}], None, TypeMismatch),
        ([], [{"op": "sum"}], None, InvalidConfig),
        (["carrier"], [{"op": "count"}], "day", InvalidConfig),
        ([], [{"op": "count"}, {"op": "count"}], None, InvalidConfig),
        ([], [], None, InvalidConfig),
        (["nope"], [], None, UnknownColumn),
    ],
)
def test_wrong_summaries_are_refused(
    groups: list[str], metrics: list[dict[str, Any]], split: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        summary(groups, metrics, split, SCHEMA)


@pytest.mark.parametrize(
    ("duckdb_type", "expected"),
    [("BIGINT", "number"), ("UINTEGER", "number"), ("DECIMAL(18,3)", "number"),
     ("VARCHAR", "string"), ("DATE", "date"), ("TIMESTAMP WITH TIME ZONE", "datetime"),
     ("BOOLEAN", "boolean"), ("STRUCT(a INTEGER)", "other"), ("INTEGER[]", "other")],
)  # fmt: skip
def test_type_families(duckdb_type: str, expected: str) -> None:
    assert family(duckdb_type) == expected


def test_filters_survive_the_json_round_trip_of_the_request() -> None:
    node = {"column": "day", "op": "between", "value": ["2026-01-01", "2026-01-31"]}
    parsed = parse_filters(json.dumps(node))
    assert compile_(parsed)[1] == {"f1": dt.date(2026, 1, 1), "f2": dt.date(2026, 1, 31)}
