"""The export runner in-process over local files (DuckDB is a library; S3 is not involved)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from app.domain.errors import (
    Cancelled,
    InvalidConfig,
    QueryFailed,
    SourceNotFound,
    TooManyFiles,
    UnknownColumn,
)
from app.domain.managed_datasets import Column
from app.engine.export import ExportPlan, Limits, LocalSource, connect, run_export
from app.engine.formats import OutputSpec

SESSIONS_SQL = """
SELECT 'u' || (i % 50)::VARCHAR AS user_id, (i % 7) * 10.0 AS score, i AS session_id
FROM range(1000) t(i)
"""
QUERY = """
SELECT u."group" AS grp, count(*) AS sessions, avg(s.score) AS mean, median(s.score) AS median
FROM sessions s JOIN users u ON u.user_id = s.user_id
WHERE s.score >= $min_score
GROUP BY u."group" ORDER BY u."group"
"""


@pytest.fixture
def sources(tmp_path: Path) -> list[LocalSource]:
    sessions = tmp_path / "sessions.parquet"
    duckdb.sql(f"COPY ({SESSIONS_SQL}) TO '{sessions}' (FORMAT parquet)")
    users = [tmp_path / "users-1.ndjson", tmp_path / "users-2.ndjson"]
    for n, path in enumerate(users):
        path.write_text("\n".join(
            json.dumps({"user_id": f"u{i}", "group": f"g{i % 3}"}) for i in range(n * 25, n * 25 + 25)
        ))  # fmt: skip
    return [LocalSource("sessions", "parquet", [sessions]), LocalSource("users", "ndjson", users)]


def run(plan: ExportPlan, sources: list[LocalSource], tmp_path: Path, **kw: Any) -> Any:
    """``tmp_path`` is the spool: the sources lie in it, as the generator downloads them."""
    return run_export(plan, sources, tmp_path / "out", kw.pop("limits", Limits()),
                      lambda f: None, kw.pop("should_stop", lambda: False))  # fmt: skip


def test_a_declared_sql_type_joins_inputs_with_a_dataset_and_binds_config(
    sources: list[LocalSource], tmp_path: Path
) -> None:
    plan = ExportPlan(
        "sql", {"min_score": 20}, ["grp", "sessions", "median"],
        {"column": "sessions", "op": ">", "value": 0}, OutputSpec("JSON"), None,
        query=QUERY, query_params=("min_score",),
    )  # fmt: skip
    result = run(plan, sources, tmp_path)
    rows = json.loads(result.files[0].path.read_text())
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW sessions AS {SESSIONS_SQL}")
        con.execute(
            "CREATE VIEW users AS SELECT 'u' || i::VARCHAR AS user_id, 'g' || (i % 3)::VARCHAR "
            'AS "group" FROM range(50) t(i)'
        )
        expected = con.execute(QUERY.replace("$min_score", "20")).fetchall()
    assert rows == [{"grp": g, "sessions": n, "median": m} for g, n, _, m in expected]
    assert [c.label for c in result.columns] == ["grp", "sessions", "median"]


def test_an_empty_managed_dataset_exports_its_header(tmp_path: Path) -> None:
    empty = LocalSource("source", "parquet", [], (Column("id", "ID", "INTEGER"),
                                                  Column("day", "Day", "DATE")))  # fmt: skip
    plan = ExportPlan("table-export", {}, None, None, OutputSpec("CSV"), None)
    result = run(plan, [empty], tmp_path)
    assert result.rows == 0 and result.files[0].path.read_text() == "ID,Day\n"


def test_a_source_without_files_or_columns_is_not_found(tmp_path: Path) -> None:
    plan = ExportPlan("table-export", {}, None, None, OutputSpec("CSV"), None)
    with pytest.raises(SourceNotFound):
        run(plan, [LocalSource("source", "ndjson", [])], tmp_path)


def test_too_many_files_fails_before_writing_any(
    sources: list[LocalSource], tmp_path: Path
) -> None:
    plan = ExportPlan("table-export", {}, None, None, OutputSpec("CSV", rows_per_file=10), None)
    with pytest.raises(TooManyFiles, match="100 files"):
        run(plan, sources[:1], tmp_path, limits=Limits(max_files=50))
    assert not list((tmp_path / "out").iterdir())


def test_a_stopping_attempt_interrupts_the_query(tmp_path: Path) -> None:
    big = tmp_path / "big.parquet"
    duckdb.sql(f"COPY (SELECT range AS id, range % 1000 AS k FROM range(30000000)) TO '{big}'")
    plan = ExportPlan("summary-report", {"group_by": ["id"], "metrics": [{"op": "count"}]}, None,
                      None, OutputSpec("CSV"), None)  # fmt: skip
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(Cancelled):
        run(plan, [LocalSource("source", "parquet", [big])], tmp_path, should_stop=stop.is_set)


def test_an_unknown_column_in_sql_output_is_named(
    sources: list[LocalSource], tmp_path: Path
) -> None:
    plan = ExportPlan("sql", {"min_score": 0}, ["nope"], None, OutputSpec("CSV"), None,
                      query=QUERY, query_params=("min_score",))  # fmt: skip
    with pytest.raises(UnknownColumn, match="columns: grp, sessions, mean, median"):
        run(plan, sources, tmp_path)


def test_period_files_keep_the_sort_order_inside_each_file(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    duckdb.sql(
        f"COPY (SELECT range AS id, DATE '2026-01-01' + (range % 3)::INTEGER AS day, "
        f"(range * 7919) % 1000 AS v FROM range(30000)) TO '{data}'"
    )
    plan = ExportPlan("table-export", {"sort": [{"column": "v", "desc": True}, {"column": "id"}]},
                      None, None, OutputSpec("CSV", partition_by="day", rows_per_file=4000),
                      None)  # fmt: skip
    result = run(plan, [LocalSource("source", "parquet", [data])], tmp_path)
    assert [f.name for f in result.files][:4] == [
        "2026-01-01-00001.csv", "2026-01-01-00002.csv", "2026-01-01-00003.csv",
        "2026-01-02-00001.csv",
    ]  # fmt: skip
    assert [f.rows for f in result.files] == [4000, 4000, 2000] * 3
    for f in result.files:
        rows = [
            tuple(map(int, line.split(",")[::2])) for line in f.path.read_text().splitlines()[1:]
        ]
        assert rows == sorted(rows, key=lambda r: (-r[1], r[0])), f.name


def test_sessions_summary_by_group_writes_one_file_per_group_with_its_statistics(
    tmp_path: Path,
) -> None:
    """The catalog's Learnosity-style type: users by group (uploaded NDJSON) joined with the
    sessions dataset; each group's file holds its users and its statistics, checked here
    against Python's statistics module."""
    import datetime as dt
    import statistics

    from app.catalog.declared import DeclaredType
    from app.catalog.loader import default_catalog

    dataset_type = default_catalog().types["sessions-summary-by-group"]
    assert isinstance(dataset_type, DeclaredType)
    sessions = tmp_path / "sessions.parquet"
    duckdb.sql(f"""COPY (SELECT 's' || i::VARCHAR AS session_id, 'u' || (i % 40)::VARCHAR AS user_id,
        CASE WHEN i % 2 = 0 THEN 'act-a' ELSE 'act-b' END AS activity_id,
        ((i * 7) % 11)::DOUBLE AS score, 10.0 AS max_score,
        TIMESTAMP '2026-01-01' + INTERVAL (i) HOUR AS dt_completed
        FROM range(400) t(i)) TO '{sessions}' (FORMAT parquet)""")  # fmt: skip
    users = tmp_path / "users.ndjson"
    users.write_text("\n".join(json.dumps({"user_id": f"u{i}", "group": f"School {i % 3}"})
                               for i in range(45)))  # fmt: skip
    config = dataset_type.validate({"mintime": "2026-01-02T00:00:00", "activity_id": ["act-a"]})
    plan = ExportPlan("sql", config, None, None, OutputSpec("JSON"), None,
                      query=dataset_type.query, query_params=dataset_type.query_params)  # fmt: skip
    result = run(plan, [LocalSource("sessions", "parquet", [sessions]),
                        LocalSource("users", "ndjson", [users])], tmp_path)  # fmt: skip
    assert sorted(f.group for f in result.files) == ["School 0", "School 1", "School 2"]
    start = dt.datetime(2026, 1, 1)
    picked = [(f"u{i % 40}", float((i * 7) % 11)) for i in range(400)
              if i % 2 == 0 and start + dt.timedelta(hours=i) >= dt.datetime(2026, 1, 2)]  # fmt: skip
    for file in result.files:
        rows = json.loads(file.path.read_text())
        members = sorted(f"u{i}" for i in range(45) if f"School {i % 3}" == file.group)
        assert [r["user_id"] for r in rows] == members
        scores = {u: sum(s for who, s in picked if who == u) for u in members
                  if any(who == u for who, _ in picked)}  # fmt: skip
        totals = list(scores.values())
        first = rows[0]
        assert first["population"] == len(members)
        assert first["mean_score"] == pytest.approx(statistics.mean(totals), abs=1e-3)
        assert first["median_score"] == pytest.approx(statistics.median(totals))
        assert first["stddev_score"] == pytest.approx(statistics.stdev(totals), abs=1e-3)
        assert first["lowest_score"] == min(totals) and first["highest_score"] == max(totals)
        assert all(r["group"] == file.group for r in rows)
        nobody = [r for r in rows if r["user_id"] not in scores]  # u40..u44: no sessions
        assert all(r["sessions"] == 0 and r["score"] is None for r in nobody)


def test_a_query_can_reach_no_file_outside_its_spool_nor_change_its_settings(
    tmp_path: Path,
) -> None:
    """The engine is confined as if its SQL were hostile: a source outside the spool is
    unreadable, as is every file a query might name, and the configuration is locked."""
    spool, outside = tmp_path / "spool", tmp_path / "elsewhere.csv"
    spool.mkdir()
    outside.write_text("secret\n1\n")
    plan = ExportPlan(kind="table-export", config={"source": "source"}, columns=None,
                      filters=None, output=OutputSpec.parse(None, {}, False), password=None)  # fmt: skip
    with pytest.raises(InvalidConfig, match="cannot be read") as refused:
        run_export(plan, [LocalSource("source", "csv", [outside])], spool / "out", Limits(),
                   lambda f: None, lambda: False)  # fmt: skip
    assert str(tmp_path) not in refused.value.message  # no path of the worker in a job error
    with connect(spool, Limits()) as con:
        for statement in ("SELECT * FROM read_csv('/etc/passwd')",
                          f"SELECT * FROM read_csv('{spool}/../elsewhere.csv')",
                          f"COPY (SELECT 1) TO '{tmp_path}/out.csv'", "ATTACH '/tmp/x.db'",
                          "INSTALL httpfs", "SET enable_external_access = true",
                          "SET memory_limit = '64GB'", "SET lock_configuration = false"):  # fmt: skip
            with pytest.raises(duckdb.Error):
                con.execute(statement)
    assert not (tmp_path / "out.csv").exists()


def test_data_the_engine_refuses_fails_for_good_without_the_workers_paths(
    sources: list[LocalSource], tmp_path: Path
) -> None:
    """A conversion the data breaks fails the same way on every attempt: QUERY_FAILED, not a
    retryable crash, and the message names no file of the worker."""
    plan = ExportPlan(kind="sql", config={}, columns=None, filters=None,
                      output=OutputSpec.parse(None, {}, False), password=None,
                      query="SELECT CAST(user_id AS INTEGER) AS n FROM users")  # fmt: skip
    with pytest.raises(QueryFailed) as failed:
        run(plan, sources, tmp_path)
    assert not failed.value.retryable and failed.value.code == "QUERY_FAILED"
    assert str(tmp_path) not in failed.value.message and "Could not convert" in failed.value.message
