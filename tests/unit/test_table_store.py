"""The writer's table store: a partition handed back recovers from its changelog's start, and a
late write's offset is not recorded for a partition this process no longer holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from app.stream import faust_compat


async def store_of(tmp_path: Path) -> tuple[Any, Any, TP]:
    app = faust.App(
        "store-test", broker="kafka://127.0.0.1:1", store=faust_compat.store_url("rocksdb://"),
        datadir=str(tmp_path),
    )  # fmt: skip
    table = app.Table("jobs", partitions=2)
    store = table.data
    assert isinstance(store, faust_compat.Store)
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    await store.assign_partitions(table, {tp})
    return store, table, tp


async def test_a_partition_handed_back_recovers_from_the_changelogs_start(
    tmp_path: Path,
) -> None:
    store, table, tp = await store_of(tmp_path)
    store.set_persisted_offset(tp, 41)  # a record this process wrote, acknowledged
    assert store.persisted_offset(tp) == 41
    store.revoke_partitions(table, {tp})
    store.set_persisted_offset(tp, 57)  # a write in flight at the hand-over, landing late
    await store.assign_partitions(table, {tp})
    # Faust would resume after 57, past the other owner's records in between.
    assert store.persisted_offset(tp) is None
    store.set_persisted_offset(tp, 90)
    assert store.persisted_offset(tp) == 90


def test_rocksdb_urls_get_the_writers_store_and_others_are_kept() -> None:
    assert faust_compat.store_url("rocksdb://") == "exhaust-rocksdb://"
    assert faust_compat.store_url("memory://") == "memory://"
