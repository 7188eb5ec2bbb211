"""DuckDB connections that can reach nothing but their spool directory.

Every query the service runs is built from a declared type, but its values come from clients
and its sources from object storage, so the engine is confined as if the SQL were hostile:

* ``allowed_directories`` is the spool alone and ``enable_external_access`` is off, so no
  query can read or write another file (``/etc/passwd``, another job's spool), reach a URL,
  or ``ATTACH`` a database;
* extensions are neither installed nor auto-loaded;
* ``lock_configuration`` is on, so no statement can undo any of this (or raise the memory
  limit).

DuckDB refuses ``allowed_directories`` before the database starts and after external access
is off, hence the order below (measured on DuckDB 2.0: each refusal is a ``PermissionException``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(directory: Path, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """A connection confined to ``directory`` (its temp directory inside it), in UTC, with
    ``config``."""
    temp = directory / "duckdb-temp"
    temp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={
            **config,
            "temp_directory": str(temp),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    try:
        # The path as queries name it, and resolved (a spool under a symlink).
        forms = dict.fromkeys(str(p).rstrip("/") + "/" for p in (directory, directory.resolve()))
        con.execute(f"SET allowed_directories = [{', '.join(_literal(f) for f in forms)}]")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con
