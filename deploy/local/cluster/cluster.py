"""A production-shaped Exhaust cluster on one machine, one network namespace per host.

* ``k1``, ``k2``, ``k3``: Apache Kafka brokers in KRaft mode, each also a controller voter
  (a static quorum of three), every topic with replication factor 3 and
  ``min.insync.replicas=2``, unclean leader election off;
* ``s3``: S3Proxy with its own credentials (not the local stack's built-in ones);
* ``w1``, ``w2``, ``w3``: a processor and a generator process each (the shape of the
  Kubernetes deployment: the processor a StatefulSet member, the generator a Deployment pod);
* ``api``: the HTTP API, behind API keys, as it must be off loopback.

The jars and the venv are the ones the local stack already uses; nothing else is fetched.
Each process's log is ``{dir}/{host}-{role}.log``. :meth:`Cluster.down` kills every process
and removes every namespace, and runs even when :meth:`Cluster.up` failed half way.

The brokers use two settings tighter than Kafka's defaults so that a scenario shows recovery
within a test's time: ``replica.lag.time.max.ms=10000`` (a cut-off follower leaves the ISR
after 10 s rather than 30 s) and the controller's broker session of 6 s (rather than 9 s).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.errors import StackError
from app.settings import Settings
from deploy.local.cluster.net import Host, Network
from deploy.local.stack import (
    HERE,
    fetch,
    java_command,
    log_tail,
    require_tools,
    s3_answers,
    servers,
)

log = logging.getLogger("exhaust.cluster")

ROOT = HERE.parents[1]
BROKERS = ("k1", "k2", "k3")
WORKERS = ("w1", "w2", "w3")
HOSTS = (*BROKERS, "s3", *WORKERS, "api")
KAFKA_PORT, CONTROLLER_PORT, S3_PORT, HTTP_PORT = 9092, 9093, 9000, 8080
ROLE_PORTS = {"processor": 8080, "generator": 8081, "api": 8080}
API_KEY = "cluster-key-acme"
CHANNEL = "acme"


@dataclass
class Proc:
    """One process on one host: started, signalled and restarted by the cluster."""

    name: str  # "k1", "w2-generator", …
    host: Host
    command: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    wanted: bool = True  # False once stopped or killed on purpose: not the supervisor's to start

    def start(self) -> Proc:
        self.wanted = True
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [*self.host.exec_prefix(), *self.command],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, no commit."""
        self.wanted = False
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> int | None:
        """A clean stop (SIGTERM, as Kubernetes sends), SIGKILL after ``timeout``."""
        if self.popen is None:
            return None
        self.wanted = False
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode

    def restart(self) -> Proc:
        self.restarts += 1
        return self.start()

    def tail(self, lines: int = 30) -> str:
        return log_tail(self.log, lines)

    def rss_bytes(self) -> int:
        """Resident memory of the process (``VmRSS``), 0 when it is not running."""
        if not self.alive() or self.pid is None:
            return 0
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
        return 0


@dataclass
class Cluster:
    """The hosts, the servers and the workers of one cluster, under ``directory``."""

    directory: Path
    cluster_id: str = field(default_factory=lambda: secrets.token_hex(2))
    partitions: int = 6
    tuning: dict[str, Any] = field(default_factory=dict)  # worker settings for a scenario
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.network = Network(self.cluster_id, HOSTS)
        self.secrets_path = self.directory / "secrets.json"

    # --- settings ---------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.network[b].address}:{KAFKA_PORT}" for b in BROKERS)

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.network['s3'].address}:{S3_PORT}"

    @property
    def api_url(self) -> str:
        return f"http://{self.network['api'].address}:{HTTP_PORT}"

    def url(self, proc: str) -> str:
        host, _, role = proc.partition("-")
        return f"http://{self.network[host].address}:{ROLE_PORTS[role or 'api']}"

    def _secrets(self) -> dict[str, str]:
        if self.secrets_path.exists():
            loaded: dict[str, str] = json.loads(self.secrets_path.read_text())
            return loaded
        self.directory.mkdir(parents=True, exist_ok=True)
        made = {
            "s3_access_key": f"cluster-{secrets.token_hex(4)}",
            "s3_secret_key": secrets.token_urlsafe(24),
            "secrets_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        }
        self.secrets_path.write_text(json.dumps(made))
        return made

    def settings(self, **overrides: Any) -> Settings:
        """The settings every process of the cluster shares (and the test process uses)."""
        keys = self._secrets()
        values: dict[str, Any] = {
            "kafka_bootstrap": self.bootstrap,
            "kafka_allow_plaintext": True,  # a private bridge of the project's own
            "s3_endpoint": self.s3_endpoint,
            "s3_access_key": keys["s3_access_key"],
            "s3_secret_key": keys["s3_secret_key"],
            "secrets_key": keys["secrets_key"],
            "topic_prefix": "exhaust",
            "consumer_group": "exhaust",
            "s3_bucket": "exhaust",
            "topic_partitions": self.partitions,
            "topic_replication": 3,
            "topic_min_insync_replicas": 2,
            "api_keys": json.dumps({API_KEY: CHANNEL}),
            "state_dir": self.directory / "state",
            "stack_dir": self.directory,
            "cache_dir": ROOT / ".cache",
            **self.tuning,
        }
        values.update(overrides)
        return Settings(**values)

    # --- servers ----------------------------------------------------------------------------

    def _kafka_properties(self, node: int, host: Host, data: Path) -> str:
        voters = ",".join(
            f"{i}@{self.network[b].address}:{CONTROLLER_PORT}" for i, b in enumerate(BROKERS, 1)
        )
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={node}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://{host.address}:{KAFKA_PORT},"
                f"CONTROLLER://{host.address}:{CONTROLLER_PORT}",
                f"advertised.listeners=PLAINTEXT://{host.address}:{KAFKA_PORT}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={data.resolve()}",
                "auto.create.topics.enable=false",
                "default.replication.factor=3",
                "min.insync.replicas=2",
                "unclean.leader.election.enable=false",
                "offsets.topic.replication.factor=3",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=3",
                "transaction.state.log.min.isr=2",
                "share.coordinator.state.topic.replication.factor=3",
                "group.initial.rebalance.delay.ms=0",
                "replica.lag.time.max.ms=10000",
                "broker.session.timeout.ms=6000",
                "broker.heartbeat.interval.ms=1000",
                "log.cleaner.backoff.ms=1000",
                "",
            ]
        )

    def _java(self, server_name: str, heap: str) -> list[str]:
        settings = self.settings()
        server = next(s for s in servers(settings) if s.name == server_name)
        fetch(server, settings)
        # C1 only: these servers carry test traffic, and C2's compilations cost a core each at
        # start-up on a machine that also runs seven workers.
        return [*java_command(server, settings, heap), "-XX:TieredStopAtLevel=1"]

    def _prepare_brokers(self) -> None:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        java = self._java("kafka", "-Xmx512m")
        log4j = f"-Dlog4j2.configurationFile={(HERE / 'kafka' / 'log4j2.properties').resolve()}"
        java.insert(1, log4j)
        formats = []
        for node, name in enumerate(BROKERS, 1):
            host, home = self.network[name], self.directory / name
            (home / "data").mkdir(parents=True, exist_ok=True)
            props = home / "server.properties"
            props.write_text(self._kafka_properties(node, host, home / "data"))
            formats.append(
                subprocess.Popen(
                    [
                        *java,
                        "kafka.tools.StorageTool",
                        "format",
                        f"--cluster-id={cluster}",
                        "-c",
                        str(props),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
            self.procs[name] = Proc(
                name,
                host,
                [*java, "kafka.Kafka", str(props)],
                dict(os.environ),
                home / "server.log",
            )
        for proc in formats:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise StackError(f"could not format Kafka storage: {out.decode(errors='replace')}")

    def _prepare_s3(self) -> None:
        host, home = self.network["s3"], self.directory / "s3"
        (home / "data").mkdir(parents=True, exist_ok=True)
        settings = self.settings()
        conf = home / "s3proxy.conf"
        conf.write_text(
            "\n".join(
                [
                    f"s3proxy.endpoint=http://{host.address}:{S3_PORT}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={settings.s3_access_key}",
                    f"s3proxy.credential={settings.s3_secret_key.get_secret_value()}",
                    "jclouds.provider=filesystem",
                    f"jclouds.filesystem.basedir={(home / 'data').resolve()}",
                    "",
                ]
            )
        )
        java = self._java("s3proxy", "-Xmx256m")
        logback = f"-Dlogback.configurationFile={(HERE / 's3proxy' / 'logback.xml').resolve()}"
        java.insert(1, logback)
        command = [*java, "org.gaul.s3proxy.Main", "--properties", str(conf)]
        self.procs["s3"] = Proc("s3", host, command, dict(os.environ), home / "server.log")

    def _prepare_workers(self) -> None:
        for name in WORKERS:
            for role in ("processor", "generator"):
                self.procs[f"{name}-{role}"] = self._worker(name, role)
        self.procs["api"] = self._worker("api", "api")

    def _worker(self, host_name: str, role: str) -> Proc:
        host = self.network[host_name]
        settings = self.settings(
            http_host=host.address,
            http_port=ROLE_PORTS[role],
            state_dir=self.directory / "state" / f"{host_name}-{role}",
            spool_dir=self.directory / "spool" / f"{host_name}-{role}",
        )
        env = {**os.environ, **settings.as_env()}
        command = [sys.executable, "-m", "app", "worker", "--role", role]
        name = host_name if role == "api" else f"{host_name}-{role}"
        return Proc(name, host, command, env, self.directory / f"{name}.log")

    # --- lifecycle --------------------------------------------------------------------------

    def up(self, timeout: float = 240.0) -> None:
        """Create the hosts, start every server and worker, wait until all are ready."""
        require_tools()
        if os.geteuid() != 0:
            raise StackError("the cluster creates network namespaces: run it as root")
        if shutil.which("ip") is None:
            raise StackError("`ip` (iproute2) is not on PATH: install iproute2")
        for stale in (*HOSTS, "state", "spool"):  # a cluster starts empty; logs of the last
            shutil.rmtree(self.directory / stale, ignore_errors=True)  # run go with it
        for log in self.directory.glob("*.log"):
            log.unlink()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "id").write_text(self.cluster_id)
        deadline = time.monotonic() + timeout
        try:
            self.network.create()
            self._prepare_brokers()
            self._prepare_s3()
            for name in (*BROKERS, "s3"):
                self.procs[name].start()
            self.wait_servers(deadline)
            self._prepare_workers()
            for name in WORKERS:  # processors first: they create the topics
                self.procs[f"{name}-processor"].start()
            self.wait_ready([f"{w}-processor" for w in WORKERS], deadline)
            for name in WORKERS:
                self.procs[f"{name}-generator"].start()
            self.procs["api"].start()
            self.wait_ready([*(f"{w}-generator" for w in WORKERS), "api"], deadline)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop everything (SIGKILL: the data goes too) and remove the hosts."""
        for proc in self.procs.values():
            proc.signal(signal.SIGKILL)
        for proc in self.procs.values():
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=30)
        self.network.destroy()
        (self.directory / "id").unlink(missing_ok=True)

    def keep_logs(self, destination: Path) -> Path:
        """Copy every process's log (workers, API, brokers, object store) to ``destination``:
        the next :meth:`up` empties the cluster's directory, and a failed scenario's logs are
        what tells its cause."""
        destination.mkdir(parents=True, exist_ok=True)
        for log_file in self.directory.glob("*.log"):
            shutil.copy2(log_file, destination / log_file.name)
        for server in (*BROKERS, "s3"):
            source = self.directory / server / "server.log"
            if source.exists():
                shutil.copy2(source, destination / f"{server}-server.log")
        return destination

    def __enter__(self) -> Cluster:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- readiness --------------------------------------------------------------------------

    def wait_servers(self, deadline: float) -> None:
        while True:
            for name in (*BROKERS, "s3"):
                proc = self.procs[name]
                if not proc.alive():
                    raise StackError(f"{name} exited while starting:\n{proc.tail()}")
            if self.kafka_brokers() == len(BROKERS) and self.s3_ready():
                return
            if time.monotonic() > deadline:
                raise StackError("the cluster's servers were not ready in time")
            time.sleep(0.5)

    def kafka_brokers(self) -> int:
        """How many brokers the cluster's metadata lists (0 when none answers)."""
        return asyncio.run(self.broker_count())

    async def broker_count(self) -> int:
        """:meth:`kafka_brokers`, from a running event loop."""
        from aiokafka.admin import AIOKafkaAdminClient

        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

        async def probe() -> int:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                return len(cluster.get("brokers", []))
            finally:
                await admin.close()

        try:
            return await asyncio.wait_for(probe(), timeout=6)
        except Exception:
            return 0

    def s3_ready(self) -> bool:
        return s3_answers(self.settings().s3_client_kwargs())

    def ready(self, name: str) -> bool:
        """The worker answers ``/readyz`` with 200."""
        try:
            with urllib.request.urlopen(self.url(name) + "/readyz", timeout=3) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, names: list[str], deadline: float) -> None:
        pending = list(names)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if not proc.alive():
                    raise StackError(f"{name} exited while starting:\n{proc.tail()}")
                if self.ready(name):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise StackError(f"not ready in time: {', '.join(pending)}")
            if pending:
                time.sleep(0.5)

    def workers(self) -> Iterator[Proc]:
        return (p for n, p in self.procs.items() if n.startswith("w"))

    async def supervise(self, restarted: Callable[[str], None], delay: float = 1.0) -> None:
        """Start again, after ``delay``, every worker process that exited on its own (as
        Kubernetes' ``restartPolicy: Always`` does; a processor exits on purpose when it can
        no longer vouch for its writes), reporting each to ``restarted``. Runs until
        cancelled."""
        while True:
            for proc in list(self.workers()):
                if proc.wanted and proc.popen is not None and not proc.alive():
                    code = proc.popen.returncode
                    await asyncio.sleep(delay)
                    if proc.wanted and not proc.alive():
                        log.info("supervisor: %s exited (%s); starting it again", proc.name, code)
                        proc.restart()
                        restarted(f"supervisor restarted {proc.name} (exit {code})")
            await asyncio.sleep(0.2)


def current(directory: Path) -> Cluster | None:
    """The cluster ``cluster-up`` left running under ``directory``, if any."""
    path = directory / "id"
    if not path.exists():
        return None
    return Cluster(directory, path.read_text().strip())
