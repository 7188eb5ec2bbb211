"""A processor's local copy of its tables is rebuilt from the changelog at every start.

Faust keeps each table partition in a local RocksDB database and, when a partition is
assigned, trusts that copy up to the last changelog offset it recorded, reading only the
changelog records after it. But a table write reaches RocksDB at once and the changelog only
when the producer delivers it: a worker stopped or killed between the two keeps, on disk, a
write that no one else ever saw. Started again and handed the same partition, it read the
request again (its offset was never committed), found the write already there and decided
nothing: the cluster's checker saw a duplicate left uncounted in about one rolling restart in
two. Within one process the two cannot part (the commit guard of :mod:`app.stream.effects`
holds every commit, and every revocation, until each table write is delivered), so the
local copy is discarded only at start-up.

The claim is a lock on the state directory's Faust folder, held for the life of the process:
two workers on one state directory would share (and the second would discard) one RocksDB.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

from app.domain.errors import ConfigurationError

LOCK_NAME = ".worker.lock"


def claim(directory: Path) -> IO[str]:
    """Lock ``directory`` for this process (keep the returned file open), or refuse to start
    naming the process that holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = (directory / LOCK_NAME).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise ConfigurationError(
            f"the state directory {directory.parent} is in use by a running worker "
            f"(pid {holder}); give each processor its own EXHAUST_STATE_DIR"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def discard_tables(tabledir: Path) -> None:
    """Remove the local table databases (rebuilt from the changelog when partitions are
    assigned)."""
    shutil.rmtree(tabledir, ignore_errors=True)


__all__ = ["LOCK_NAME", "claim", "discard_tables"]
