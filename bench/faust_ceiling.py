"""The framework's ceiling: a bare Faust agent that writes a table and forwards each event.

Run as a worker process by :mod:`bench.pipeline` (``python -m bench.faust_ceiling``), with the
same Faust settings as Exhaust's writer (idempotent producer, acks=all, RocksDB table with a
raw changelog, same partitions) but no domain logic: per event, one table write and one send
that is not awaited (Faust flushes before it commits). Exhaust's writer does this plus decoding,
deduplication, the state machine and Avro encoding, so this is the bound it is measured against.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import faust

from app.stream.faust_compat import broker_url


def main() -> int:
    env = os.environ
    partitions = int(env["BENCH_PARTITIONS"])
    app = faust.App(
        env["BENCH_APP_ID"],
        broker=broker_url(env["BENCH_BOOTSTRAP"], scheme="kafka"),  # Faust's own transport
        store="rocksdb://",
        web_enabled=False,
        topic_partitions=partitions,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_enable_idempotence=True,
        producer_linger_ms=1,
        consumer_auto_offset_reset="earliest",
        datadir=env["BENCH_STATE_DIR"],
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(env["BENCH_IN"], partitions=partitions, **raw)
    sink = app.topic(env["BENCH_OUT"], partitions=partitions, **raw)
    table: Any = app.Table("ceiling", partitions=partitions, options={"driver": "rocksdict"})
    table.key_serializer = "raw"
    table.value_serializer = "raw"

    @app.agent(source)
    async def forward(stream: Any) -> None:
        async for event in stream.events():
            table[event.key] = event.value
            await sink.send(key=event.key, value=event.value)

    logging.basicConfig(level="WARNING")
    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as Exhaust's worker: no terminal spinner (it turns DEBUG on)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
