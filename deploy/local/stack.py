"""The local stack: a real Apache Kafka (KRaft) and a real S3 server, started by the project.

Both come from Maven Central and run on the machine's Java 17; nothing depends on what happens
to be installed or running. Jars are fetched once into ``settings.cache_dir`` (Maven's
``dependency:copy-dependencies`` on the poms beside this file) so a second start is fast; data,
logs and pid files live under ``settings.stack_dir``.

* Kafka: ``kafka_2.13`` with a log4j2 binding, one combined broker+controller node on loopback,
  storage formatted once (``StorageTool format --standalone``). Ready = a metadata call answers.
* S3: S3Proxy with the jclouds filesystem backend. It verifies SigV4 signatures and presigned-URL
  expiry and keeps objects on disk. Ready = ``ListBuckets`` answers with our credentials.

Usage: ``python -m deploy.local.stack up|down|reset|status|run -- CMD...`` (``reset`` stops the
servers and deletes their data). Every failure is one clear
line (missing Java or Maven, a port taken, a server that died, with its log's tail) and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain.errors import StackError
from app.settings import Settings
from app.stream.access import PRINCIPAL_ROLES
from app.stream.local_state import LOCK_NAME
from deploy.local.certs import BROKER_CN, Authority
from deploy.local.secure_kafka import ADMIN, SCRAM, SecureKafka

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Server:
    """One server of the stack: what to fetch, how to start it, how to know it is ready."""

    name: str
    port: int
    pom: Path
    version_property: str
    version: str
    main_class: str
    heap: str

    def lib_dir(self, settings: Settings) -> Path:
        """Where the jars are cached: per version and per pom, so a changed pom fetches again."""
        digest = hashlib.sha256(self.pom.read_bytes()).hexdigest()[:8]
        return settings.cache_dir / f"{self.name}-{self.version}-{digest}" / "lib"

    def home(self, settings: Settings) -> Path:
        return settings.stack_dir / self.name

    def pid_file(self, settings: Settings) -> Path:
        return self.home(settings) / "server.pid"

    def log_file(self, settings: Settings) -> Path:
        return self.home(settings) / "server.log"


def servers(settings: Settings) -> tuple[Server, Server]:
    kafka = Server(
        name="kafka",
        port=settings.stack_kafka_port,
        pom=HERE / "kafka" / "pom.xml",
        version_property="kafka.version",
        version=settings.kafka_version,
        main_class="kafka.Kafka",
        heap="-Xmx768m",
    )
    s3 = Server(
        name="s3proxy",
        port=settings.stack_s3_port,
        pom=HERE / "s3proxy" / "pom.xml",
        version_property="s3proxy.version",
        version=settings.s3proxy_version,
        main_class="org.gaul.s3proxy.Main",
        heap="-Xmx256m",
    )
    return kafka, s3


# --- checks ---------------------------------------------------------------------------------


def require_tools() -> None:
    """Fail with one clear line when Java or Maven is missing."""
    for tool, hint in (("java", "install a Java 17+ JDK"), ("mvn", "install Apache Maven")):
        if shutil.which(tool) is None:
            raise StackError(f"`{tool}` is not on PATH: {hint} to run the local stack")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# --- fetch ----------------------------------------------------------------------------------


def fetch(server: Server, settings: Settings) -> float:
    """Copy the server's jars into the cache unless they are there; return seconds spent."""
    lib = server.lib_dir(settings)
    marker = lib / ".complete"
    if marker.exists():
        return 0.0
    lib.mkdir(parents=True, exist_ok=True)
    # Stacks started at once (one per test process under pytest-xdist) share the cache: the
    # first fetches while the others wait on the lock, then find the marker.
    with (lib / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return 0.0
        return _fetch_into(server, lib, marker)


def _fetch_into(server: Server, lib: Path, marker: Path) -> float:
    started = time.monotonic()
    cmd = [
        "mvn", "-q", "-B", "-f", str(server.pom),
        f"-D{server.version_property}={server.version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib.resolve()}",
    ]  # fmt: skip
    print(f"fetching {server.name} {server.version} from Maven Central ...", flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise StackError(f"could not fetch {server.name}: {' | '.join(detail)}")
    marker.write_text(server.version)
    return time.monotonic() - started


# --- configuration --------------------------------------------------------------------------


def kafka_properties(settings: Settings, data_dir: Path) -> str:
    port, ctl = settings.stack_kafka_port, settings.stack_controller_port
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{ctl}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            *storage_properties(data_dir),
        ]
    )


def storage_properties(data_dir: Path) -> list[str]:
    """The part of the broker's configuration that does not depend on its security."""
    return [
        f"log.dirs={data_dir.resolve()}",
        # Topics are created explicitly, with their layout checked; never by accident.
        "auto.create.topics.enable=false",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "group.initial.rebalance.delay.ms=0",
        "log.cleaner.backoff.ms=1000",
        "",
    ]


def secure_kafka_properties(settings: Settings, data_dir: Path, tls: Authority) -> str:
    """The secured broker (``EXHAUST_STACK_KAFKA_SECURITY=sasl_ssl``): clients authenticate
    with SCRAM-SHA-512 over TLS on the broker port or with a client certificate on the TLS
    port; the broker itself uses its certificate (mutual TLS) between its listeners and towards
    the controller, so it needs no password before the SCRAM users exist. The
    StandardAuthorizer denies whatever no ACL allows (:mod:`deploy.local.secure_kafka`)."""
    port, ctl, mtls = (
        settings.stack_kafka_port,
        settings.stack_controller_port,
        settings.stack_kafka_tls_port,
    )
    password = tls.keystore_password
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{ctl}",
            f"listeners=SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls},"
            f"CONTROLLER://127.0.0.1:{ctl}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=MTLS",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:SSL",
            f"sasl.enabled.mechanisms={SCRAM}",
            f"listener.name.sasl_ssl.{SCRAM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.mtls.ssl.client.auth=required",
            "listener.name.controller.ssl.client.auth=required",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={tls.keystore.resolve()}",
            f"ssl.keystore.password={password}",
            f"ssl.key.password={password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca.resolve()}",
            # A certificate's principal is its CN (User:exhaust-generator), as Strimzi's are.
            "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{ADMIN};User:{BROKER_CN}",
            "allow.everyone.if.no.acl.found=false",
            *storage_properties(data_dir),
        ]
    )


def s3proxy_properties(settings: Settings, data_dir: Path) -> str:
    return "\n".join(
        [
            f"s3proxy.endpoint=http://127.0.0.1:{settings.stack_s3_port}",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={settings.s3_access_key}",
            f"s3proxy.credential={settings.s3_secret_key.get_secret_value()}",
            "s3proxy.cors-allow-all=true",
            "jclouds.provider=filesystem",
            f"jclouds.filesystem.basedir={data_dir.resolve()}",
            "",
        ]
    )


def java_command(server: Server, settings: Settings, heap: str) -> list[str]:
    """``java`` with the server's jars on the class path."""
    classpath = f"{server.lib_dir(settings).resolve()}/*"
    return ["java", heap, "-XX:+UseSerialGC", "-Djava.awt.headless=true", "-cp", classpath]


def prepare(server: Server, settings: Settings) -> list[str]:
    """Write the server's config (formatting Kafka storage once); return its command line."""
    home = server.home(settings)
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    java = java_command(server, settings, server.heap)
    if server.name == "kafka":
        props = home / "server.properties"
        scram: list[str] = []
        if settings.stack_kafka_security == "sasl_ssl":
            secure = SecureKafka(settings)
            tls = secure.authority()
            props.write_text(secure_kafka_properties(settings, data, tls))
            scram = [
                f"--add-scram={SCRAM}=[name={name},password={password}]"
                for name, password in secure.passwords().items()
            ]
        else:
            props.write_text(kafka_properties(settings, data))
        log4j = f"-Dlog4j2.configurationFile={(HERE / 'kafka' / 'log4j2.properties').resolve()}"
        java.insert(1, log4j)
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            # "=" form: a base64url id may start with "-" and must not parse as an option.
            fmt = [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}"]
            result = subprocess.run(
                [*fmt, "-c", str(props), "--standalone", *scram],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(f"could not format Kafka storage: {result.stdout}{result.stderr}")
        return [*java, server.main_class, str(props)]
    props = home / "s3proxy.conf"
    props.write_text(s3proxy_properties(settings, data))
    logback = f"-Dlogback.configurationFile={(HERE / 's3proxy' / 'logback.xml').resolve()}"
    java.insert(1, logback)
    return [*java, server.main_class, "--properties", str(props)]


# --- readiness ------------------------------------------------------------------------------


def kafka_ready(settings: Settings) -> bool:
    """True when the broker answers a metadata request on its port."""
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    from app.stream.connection import client_options

    if port_is_free(settings.stack_kafka_port):
        return False  # nothing listens yet; skip the client and its connection-refused noise
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def probe() -> bool:
        options: dict[str, object] = {"bootstrap_servers": f"127.0.0.1:{settings.stack_kafka_port}"}
        if settings.stack_kafka_security == "sasl_ssl":
            options = client_options(SecureKafka(settings).client_settings(None))
        admin = AIOKafkaAdminClient(**options, request_timeout_ms=3000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        finally:
            await admin.close()

    try:
        return asyncio.run(asyncio.wait_for(probe(), timeout=5))
    except Exception:
        return False


def s3_ready(settings: Settings) -> bool:
    """True when the S3 server answers a signed ListBuckets with our credentials."""
    return s3_answers({**settings.s3_client_kwargs(), "endpoint_url": local_s3_url(settings)})


def s3_answers(client_kwargs: dict[str, Any]) -> bool:
    """True when the S3 server of ``client_kwargs`` (botocore's) answers a signed
    ListBuckets."""
    import botocore.session

    client = botocore.session.get_session().create_client("s3", **client_kwargs)
    try:
        client.list_buckets()
        return True
    except Exception:
        return False
    finally:
        client.close()


def local_s3_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.stack_s3_port}"


def is_ready(server: Server, settings: Settings) -> bool:
    return kafka_ready(settings) if server.name == "kafka" else s3_ready(settings)


def wait_ready(
    server: Server, settings: Settings, proc: subprocess.Popen[bytes] | None, deadline: float
) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"{server.name} exited with code {proc.returncode} while starting; "
                f"log {server.log_file(settings)}:\n{log_tail(server.log_file(settings))}"
            )
        if is_ready(server, settings):
            return
        time.sleep(0.3)
    raise StackError(
        f"{server.name} not ready on port {server.port} after {settings.stack_start_timeout:.0f}s; "
        f"log {server.log_file(settings)}:\n{log_tail(server.log_file(settings))}"
    )


# --- lifecycle ------------------------------------------------------------------------------


def start(server: Server, settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start one server unless it already runs; return its process when this call started it."""
    if read_pid(server.pid_file(settings)) is not None and is_ready(server, settings):
        print(f"{server.name}: already running on 127.0.0.1:{server.port}", flush=True)
        return None
    ports = [server.port]
    if server.name == "kafka":
        ports.append(settings.stack_controller_port)
        if settings.stack_kafka_security == "sasl_ssl":
            ports.append(settings.stack_kafka_tls_port)
    for port in ports:
        if not port_is_free(port):
            raise StackError(
                f"port {port} for {server.name} is taken by another process; "
                "stop it or choose another port (EXHAUST_STACK_*_PORT)"
            )
    fetched = fetch(server, settings)
    started = time.monotonic()
    cmd = prepare(server, settings)
    log = server.log_file(settings).open("ab")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    server.pid_file(settings).write_text(str(proc.pid))
    try:
        wait_ready(server, settings, proc, started + settings.stack_start_timeout)
        if server.name == "kafka" and settings.stack_kafka_security == "sasl_ssl":
            count = SecureKafka(settings).apply_acls()
            print(f"kafka: SASL_SSL and mutual TLS, {count} ACLs", flush=True)
    except BaseException:  # not left running when it could not be made ready
        stop(server, settings)
        proc.wait(timeout=5)
        raise
    fetch_note = f", fetched in {fetched:.1f}s" if fetched else ", jars cached"
    print(
        f"{server.name}: ready on 127.0.0.1:{server.port} in {time.monotonic() - started:.1f}s"
        f"{fetch_note}",
        flush=True,
    )
    return proc


def stop(server: Server, settings: Settings, timeout: float = 20.0) -> bool:
    """Stop one server (SIGTERM, then SIGKILL after ``timeout``); True if one was running."""
    pid_file = server.pid_file(settings)
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    print(f"{server.name}: stopped", flush=True)
    return True


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class LocalStack:
    """Starts and stops the whole stack; remembers which servers it started itself."""

    def __init__(self, settings: Settings, only: Sequence[str] = ()) -> None:
        self.settings = settings
        self.servers = tuple(s for s in servers(settings) if not only or s.name in only)
        self.started: list[Server] = []
        self._procs: list[subprocess.Popen[bytes]] = []  # kept so they are reaped, not leaked

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.stack_kafka_port}"

    @property
    def s3_endpoint(self) -> str:
        return local_s3_url(self.settings)

    def up(self) -> None:
        require_tools()
        self.settings.stack_dir.mkdir(parents=True, exist_ok=True)
        for server in self.servers:
            proc = start(server, self.settings)
            if proc is not None:
                self.started.append(server)
                self._procs.append(proc)

    def down(self, only_started: bool = False) -> None:
        targets = self.started if only_started else list(self.servers)
        for server in reversed(targets):
            stop(server, self.settings)
        for proc in self._procs:
            proc.wait(timeout=5)  # already stopped above; this only reaps it
        self._procs.clear()
        self.started.clear()

    def reset(self) -> None:
        """Stop every server and delete its data and logs (topics, buckets); jars stay cached.
        Test runs pointed at this stack (``EXHAUST_TEST_*``) leave their topics and buckets."""
        self.down()
        for server in self.servers:
            home = server.home(self.settings)
            if home.exists():
                shutil.rmtree(home)
                print(f"{server.name}: data and logs deleted ({home})", flush=True)

    def status(self) -> dict[str, str]:
        report = {}
        for server in self.servers:
            pid = read_pid(server.pid_file(self.settings))
            ready = is_ready(server, self.settings)
            where = f"127.0.0.1:{server.port}"
            if ready:
                report[server.name] = f"ready on {where}" + (f" (pid {pid})" if pid else "")
            elif pid:
                report[server.name] = f"running (pid {pid}) but not ready on {where}"
            else:
                report[server.name] = "stopped"
        return report


def run_with_stack(stack: LocalStack, command: Sequence[str]) -> int:
    """Start the stack, run ``command`` in the foreground, stop what was started on exit.

    The command runs in its own process group and this process hands it each SIGINT or
    SIGTERM it gets, once: a terminal's Ctrl-C (sent to the whole foreground group) and a
    ``kill`` of this pid alone (a supervisor, a script) both stop the worker cleanly, and the
    servers, which run in their own sessions, are stopped here afterwards, so nothing is left
    behind either way. (Sharing our group, the worker saw a Ctrl-C but not a ``kill``, and a
    SIGTERM ended this process without stopping the servers.)
    """
    worker = worker_status(stack.settings)
    if worker != "stopped":
        raise StackError(
            f"a worker is already {worker} (make status); stop it first, or give this one "
            "its own EXHAUST_HTTP_PORT and EXHAUST_STATE_DIR"
        )
    stack.up()
    try:
        proc = subprocess.Popen(list(command), process_group=0)

        def forward(signum: int, _frame: object) -> None:
            proc.send_signal(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        stack.down(only_started=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "reset", "status", "run", "env"])
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="run: the command; env: ROLE [--mtls]"
    )
    args = parser.parse_args(argv)
    stack = LocalStack(Settings())
    try:
        if args.action == "env":
            return _print_env(stack, args.command)
        elif args.action == "up":
            stack.up()
        elif args.action == "down":
            stack.down()
        elif args.action == "reset":
            stack.reset()
        elif args.action == "status":
            return _print_status(stack)
        else:
            return run_with_stack(stack, [c for c in args.command if c != "--"])
        return 0
    except StackError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2


def _print_env(stack: LocalStack, argv: Sequence[str]) -> int:
    """``env ROLE [--mtls]``: the shell exports that connect as ROLE to the secured Kafka."""
    parser = argparse.ArgumentParser(prog="stack env")
    parser.add_argument("role", choices=PRINCIPAL_ROLES)
    parser.add_argument("--mtls", action="store_true", help="by client certificate")
    args = parser.parse_args(argv)
    if stack.settings.stack_kafka_security != "sasl_ssl":
        raise StackError("env needs the secured Kafka (EXHAUST_STACK_KAFKA_SECURITY=sasl_ssl)")
    env = SecureKafka(stack.settings).client_env(args.role, args.mtls)
    print("\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items()))
    return 0


def _print_status(stack: LocalStack) -> int:
    report = stack.status()
    for name, state in report.items():
        print(f"{name:8} {state}")
    print(f"{'worker':8} {worker_status(stack.settings)}")
    return 0 if all(s.startswith("ready") for s in report.values()) else 1


def worker_status(settings: Settings) -> str:
    """Whether a worker of these settings runs here: its HTTP port answers, or another process
    holds its state directory (a processor's lock names its pid)."""
    url = f"http://{settings.http_host}:{settings.http_port}"
    holder = _state_holder(settings.state_dir / "faust" / LOCK_NAME)
    pid = f" (pid {holder})" if holder else ""
    with socket.socket() as probe:
        probe.settimeout(1.0)
        listening = probe.connect_ex((settings.http_host, settings.http_port)) == 0
    if listening:
        return f"running on {url}{pid}"
    if holder:
        return f"running (pid {holder}), its HTTP port {settings.http_port} not answering"
    return "stopped"


def _state_holder(lock_path: Path) -> str | None:
    """The pid written in a held state-directory lock, or None when no process holds it."""
    if not lock_path.exists():
        return None
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            return lock.read().strip() or "unknown"
        fcntl.flock(lock, fcntl.LOCK_UN)
    return None


if __name__ == "__main__":
    sys.exit(main())
