"""One processor per state directory, and its local tables discarded at start-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.domain.errors import ConfigurationError
from app.stream import local_state


def test_a_second_worker_on_a_state_directory_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    first = local_state.claim(tmp_path / "faust")
    with pytest.raises(
        ConfigurationError, match=f"in use by a running worker \\(pid {os.getpid()}"
    ):
        local_state.claim(tmp_path / "faust")
    first.close()  # the first worker exits
    local_state.claim(tmp_path / "faust").close()


def test_the_local_tables_are_discarded_and_a_missing_folder_is_fine(tmp_path: Path) -> None:
    tables = tmp_path / "v1" / "tables"
    (tables / "jobs-0.db").mkdir(parents=True)
    (tables / "jobs-0.db" / "000001.sst").write_bytes(b"x")
    local_state.discard_tables(tables)
    assert not tables.exists()
    local_state.discard_tables(tables)
