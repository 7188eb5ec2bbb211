"""``make reset``: the local stack's servers stopped and their data deleted, fetched jars kept."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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


class _Stack:
    """Stands in for LocalStack in ``run_with_stack``: prints what is asked of it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def up(self) -> None:
        print("up", flush=True)

    def down(self, only_started: bool = False) -> None:
        print(f"down only_started={only_started}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


RUNNER = """
import sys
from app.settings import Settings
from deploy.local.stack import run_with_stack
from tests.unit.test_stack import _Stack
child = [sys.executable, "-c", '''
import os, signal, sys
def stop(signum, frame):
    print("worker stopped by", signal.Signals(signum).name, flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("worker ready", os.getpid(), flush=True)
signal.pause()
''']
settings = Settings(state_dir=sys.argv[1], http_port=int(sys.argv[2]))
sys.exit(run_with_stack(_Stack(settings), child))
"""


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGINT, False)],
    ids=["ctrl-c-to-the-terminal-group", "kill-of-the-runner", "kill-int-of-the-runner"],
)
def test_make_run_hands_a_stop_signal_to_the_worker_once_then_stops_the_stack(
    tmp_path: Path, signum: signal.Signals, whole_group: bool
) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(tmp_path / "state"), str(_free_port())],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal gives a foreground job
    )
    worker = ""
    try:
        assert runner.stdout is not None
        assert runner.stdout.readline() == "up\n"
        ready, worker = runner.stdout.readline().rsplit(" ", 1)
        assert ready == "worker ready"
        if whole_group:
            os.killpg(runner.pid, signum)
        else:
            os.kill(runner.pid, signum)
        output, _ = runner.communicate(timeout=30)
    finally:  # nothing left behind, whatever happened (the worker has its own group)
        for group in [runner.pid] + ([int(worker)] if worker else []):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
    # exactly one signal reached the worker, and the stack was stopped after it ended
    assert output == f"worker stopped by {signum.name}\ndown only_started=True\n"
    assert runner.returncode == 0
