"""``make reset``: the local stack's servers stopped and their data deleted, fetched jars kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.settings import Settings
from deploy.local.stack import LocalStack


def test_reset_stops_the_servers_and_deletes_their_data_but_not_the_jars(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path / "stack", cache_dir=tmp_path / "cache")
    stack = LocalStack(settings)
    kafka, s3 = stack.servers
    jar = kafka.lib_dir(settings) / "kafka.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"jar")
    (s3.home(settings) / "data" / "bucket").mkdir(parents=True)
    (s3.home(settings) / "data" / "bucket" / "object").write_bytes(b"left by a test run")
    (kafka.home(settings) / "data").mkdir(parents=True)
    # a stand-in for a running server: its own process group, its pid in the server's pid file
    running = subprocess.Popen(["sleep", "60"], start_new_session=True)
    kafka.pid_file(settings).write_text(str(running.pid))
    try:
        stack.reset()
        assert not Path(f"/proc/{running.pid}").exists()  # stopped (and reaped by the stack)
    finally:
        running.kill()
    assert not kafka.home(settings).exists() and not s3.home(settings).exists()
    assert jar.read_bytes() == b"jar"
