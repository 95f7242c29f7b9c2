#!/usr/bin/env python3
"""Local infrastructure for development and tests: Kafka, ClickHouse, Prometheus, PostgreSQL.

Everything runs as plain processes on loopback, with data, logs, pid files and downloads under
`.stack/` at the repo root (git-ignored). Standard library only: this runs before the venv exists.

    python3 deploy/local/stack.py up [NAME...]       start (idempotent) and wait until ready
    python3 deploy/local/stack.py down [NAME...]     stop what this script started
    python3 deploy/local/stack.py start|stop NAME..  the same, for tests that kill one component
    python3 deploy/local/stack.py restart NAME...
    python3 deploy/local/stack.py status             one line per component, always exits 0
    python3 deploy/local/stack.py logs NAME [-n N]   last lines of a component's log
    python3 deploy/local/stack.py reset              down, then wipe .stack/*/data

Ports and paths can be overridden with environment variables (see `Settings.from_env`).
Tests import this module for `Settings` and the readiness probes (see tests/conftest.py).

PostgreSQL gets a role and database `pcm`; the role's password is generated on the first start
and kept in .stack/secrets/postgres_password (mode 0600). PostgreSQL refuses to run as root, so
as root the server runs as Debian's `postgres` system user.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPONENTS = ("kafka", "clickhouse", "prometheus", "postgres")
# Debian puts clickhouse-server in /usr/sbin, which is not on a normal user's PATH.
EXTRA_PATH = ("/usr/sbin", "/usr/bin", "/usr/local/bin")


@dataclass(frozen=True)
class Settings:
    """Where things live and which loopback ports they use."""

    stack_dir: Path
    host: str
    kafka_port: int
    kafka_controller_port: int
    clickhouse_port: int
    clickhouse_http_port: int
    clickhouse_interserver_port: int
    prometheus_port: int
    postgres_port: int
    postgres_bin_dir: Path
    kafka_heap: str
    timeout_s: float

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> Settings:
        def port(name: str, default: int) -> int:
            value = int(env.get(name, default))
            if not 0 < value < 65536:
                raise SystemExit(f"{name}={value} is not a TCP port")
            return value

        return cls(
            stack_dir=Path(env.get("PCM_STACK_DIR", REPO / ".stack")).resolve(),
            host="127.0.0.1",
            kafka_port=port("PCM_KAFKA_PORT", 9092),
            kafka_controller_port=port("PCM_KAFKA_CONTROLLER_PORT", 9093),
            clickhouse_port=port("PCM_CLICKHOUSE_PORT", 9000),
            clickhouse_http_port=port("PCM_CLICKHOUSE_HTTP_PORT", 8123),
            clickhouse_interserver_port=port("PCM_CLICKHOUSE_INTERSERVER_PORT", 9009),
            prometheus_port=port("PCM_PROMETHEUS_PORT", 9090),
            postgres_port=port("PCM_POSTGRES_PORT", 5432),
            # Debian keeps the server binaries of each major version off PATH.
            postgres_bin_dir=Path(env.get("PCM_POSTGRES_BIN_DIR", "/usr/lib/postgresql/15/bin")),
            kafka_heap=env.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx768m"),
            timeout_s=float(env.get("PCM_STACK_TIMEOUT", 90)),
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def clickhouse_http_url(self) -> str:
        return f"http://{self.host}:{self.clickhouse_http_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def postgres_password_file(self) -> Path:
        return self.stack_dir / "secrets" / "postgres_password"

    def home(self, name: str) -> Path:
        return self.stack_dir / name

    def pid_file(self, name: str) -> Path:
        return self.home(name) / f"{name}.pid"


class StackError(RuntimeError):
    """A component could not be prepared or started; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Readiness probes (also used by tests/conftest.py)


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """Status and body of a GET; (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise OSError("connection closed by the server")
        buf += chunk
    return buf


def kafka_broker_count(host: str, port: int, timeout: float = 3.0) -> int:
    """Send a real Metadata v0 request and return how many brokers the cluster reports.

    The broker only serves requests once it has joined the KRaft quorum and been unfenced, so a
    non-zero answer means clients can use it; a bare TCP connect proves much less.
    """
    client_id = b"pcm-stack"
    # api_key=3 (Metadata), api_version=0, correlation_id=1, client_id, topics=[] (all topics)
    body = struct.pack(">hhih", 3, 0, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    correlation_id, brokers = struct.unpack(">ii", payload[:8])
    if correlation_id != 1:
        raise OSError(f"unexpected correlation id {correlation_id}")
    return int(brokers)


def kafka_ready(s: Settings) -> bool:
    try:
        return kafka_broker_count(s.host, s.kafka_port) > 0
    except (OSError, struct.error):
        return False


def clickhouse_ready(s: Settings) -> bool:
    status, body = http_get(f"{s.clickhouse_http_url}/ping")
    return status == 200 and body.strip() == "Ok."


def prometheus_ready(s: Settings) -> bool:
    status, _ = http_get(f"{s.prometheus_url}/-/ready")
    return status == 200


POSTGRES_ROLE = "pcm"
POSTGRES_DATABASE = "pcm"
_PG_PROTOCOL_3_0 = 196608


def postgres_asks_for_login(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send a real StartupMessage for pcm/pcm; True when the server answers with a login request.

    A server that is still starting, recovering or shutting down answers with an error (57P03)
    instead, while a bare TCP connect succeeds as soon as the postmaster listens. The password
    exchange is not carried out: closing at this point is what pg_isready does too.
    """
    params = f"user\0{POSTGRES_ROLE}\0database\0{POSTGRES_DATABASE}\0\0".encode()
    body = struct.pack(">i", _PG_PROTOCOL_3_0) + params
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body) + 4) + body)
        kind = _recv_exact(sock, 1)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        # Read the whole message: closing with unread data sends a reset, which the server logs.
        _recv_exact(sock, size - 4)
    return kind == b"R"  # AuthenticationRequest (SASL for scram-sha-256)


def postgres_ready(s: Settings) -> bool:
    try:
        return postgres_asks_for_login(s.host, s.postgres_port)
    except (OSError, struct.error):
        return False


# --------------------------------------------------------------------------------------------
# Components


@dataclass(frozen=True)
class Component:
    name: str
    ports: Callable[[Settings], tuple[int, ...]]
    # Substring of /proc/PID/cmdline: guards against a stale pid file pointing to a reused pid.
    cmdline_marker: str
    prepare: Callable[[Settings], None]
    command: Callable[[Settings], list[str]]
    ready: Callable[[Settings], bool]
    logs: Callable[[Settings], list[Path]]
    # What `stop` sends first (SIGKILL follows after the grace period).
    stop_signal: signal.Signals = signal.SIGTERM
    # The system user the process runs as; None: the user running this script.
    run_as: Callable[[], str | None] = lambda: None


def find_binary(name: str, extra_dirs: Sequence[Path] = ()) -> str:
    # extra_dirs first: a configured version wins over whatever else is on PATH.
    path = os.pathsep.join([*map(str, extra_dirs), os.environ.get("PATH", ""), *EXTRA_PATH])
    found = shutil.which(name, path=path)
    if not found:
        raise StackError(f"{name} not found: run `make install-system` (scripts/install_system.sh)")
    return found


def identity(user: str | None) -> dict[str, Any]:
    """Popen arguments that run a command as `user` (None: as ourselves).

    Popen switches user between fork and exec. A wrapper such as setpriv or runuser would exec
    (or fork) once more, and right after that second exec /proc/PID/cmdline reads empty for a
    moment: long enough for `process_alive` to take a starting server for a dead one.
    """
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def run_checked(
    cmd: Sequence[str],
    what: str,
    log: Path,
    stdin: str | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> None:
    """Run a preparation step, appending its output to `log`; raise with the output on failure.

    `stdin` (e.g. SQL) is fed to the command and not written to the log.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(
            cmd,
            input=None if stdin is None else stdin.encode(),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            **identity(user),
        )
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}); see {log}")


# --- Kafka ----------------------------------------------------------------------------------

KAFKA_POM = HERE / "kafka" / "pom.xml"
KAFKA_LOG4J = HERE / "kafka" / "log4j.properties"


def kafka_libs(s: Settings) -> Path:
    return s.home("kafka") / "libs"


def kafka_properties(s: Settings) -> str:
    h = s.home("kafka")
    return "\n".join(
        [
            "# Generated by deploy/local/stack.py; edit the script, not this file.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}",
            f"listeners=PLAINTEXT://{s.host}:{s.kafka_port},"
            f"CONTROLLER://{s.host}:{s.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={h / 'data'}",
            # Topics are created explicitly (pcm-topics); a typo must fail, not create a topic.
            "auto.create.topics.enable=false",
            "num.partitions=6",
            # One node: every replication factor and ISR minimum is 1.
            "default.replication.factor=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=6",
            "min.insync.replicas=1",
            # Tests start consumers one after another; do not wait 3 s for more members.
            "group.initial.rebalance.delay.ms=0",
            # Two cores: fewer threads than the defaults.
            "num.network.threads=2",
            "num.io.threads=4",
            "num.recovery.threads.per.data.dir=1",
            "log.retention.hours=168",
            "log.segment.bytes=268435456",
            "",
        ]
    )


def kafka_pom_digest() -> str:
    return hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()


def fetch_kafka_jars(s: Settings) -> None:
    """Resolve the broker jars from Maven Central once per version of pom.xml."""
    libs = kafka_libs(s)
    stamp = libs / ".pom.sha256"
    if stamp.is_file() and stamp.read_text().strip() == kafka_pom_digest():
        return
    mvn = find_binary("mvn")
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    print("kafka: resolving jars from Maven Central (first run only)...", flush=True)
    run_checked(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        "resolving Kafka jars with Maven",
        s.home("kafka") / "logs" / "prepare.log",
    )
    stamp.write_text(kafka_pom_digest() + "\n")


def java_cmd(s: Settings, main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
    logs = s.home("kafka") / "logs"
    return [
        find_binary("java"),
        *heap.split(),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{KAFKA_LOG4J}",
        f"-Dkafka.logs.dir={logs}",
        "-cp",
        f"{kafka_libs(s)}/*",  # expanded by java itself, not by a shell
        main,
        *args,
    ]


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (like Uuid)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka's own generator avoids these: they look like flags
            return cid


def prepare_kafka(s: Settings) -> None:
    home = s.home("kafka")
    for sub in ("data", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    fetch_kafka_jars(s)
    props = home / "server.properties"
    props.write_text(kafka_properties(s))
    # Format the KRaft metadata log once; formatting again would orphan the existing topics.
    if not (home / "data" / "meta.properties").is_file():
        fmt = ["format", "-t", new_cluster_id(), "-c", str(props)]
        run_checked(
            java_cmd(s, "kafka.tools.StorageTool", *fmt),
            "formatting Kafka storage",
            home / "logs" / "prepare.log",
        )


def kafka_command(s: Settings) -> list[str]:
    return java_cmd(s, "kafka.Kafka", str(s.home("kafka") / "server.properties"), heap=s.kafka_heap)


# --- ClickHouse -----------------------------------------------------------------------------


def prepare_clickhouse(s: Settings) -> None:
    home = s.home("clickhouse")
    etc, data, logs = home / "etc", home / "data", home / "logs"
    for d in (etc, data, logs):
        d.mkdir(parents=True, exist_ok=True)
    find_binary("clickhouse-server")
    template = Template((HERE / "clickhouse" / "config.xml").read_text())
    config = template.substitute(
        log_dir=logs,
        data_dir=data,
        http_port=s.clickhouse_http_port,
        tcp_port=s.clickhouse_port,
        interserver_port=s.clickhouse_interserver_port,
    )
    (etc / "config.xml").write_text(config)
    # users.xml is found relative to config.xml (<users_config>users.xml</users_config>).
    shutil.copyfile(HERE / "clickhouse" / "users.xml", etc / "users.xml")


def clickhouse_command(s: Settings) -> list[str]:
    config = s.home("clickhouse") / "etc" / "config.xml"
    return [find_binary("clickhouse-server"), f"--config-file={config}"]


# --- Prometheus -----------------------------------------------------------------------------

PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"


def prepare_prometheus(s: Settings) -> None:
    for sub in ("data", "logs"):
        s.home("prometheus").joinpath(sub).mkdir(parents=True, exist_ok=True)
    find_binary("prometheus")


def prometheus_command(s: Settings) -> list[str]:
    return [
        find_binary("prometheus"),
        f"--config.file={PROMETHEUS_CONFIG}",
        f"--storage.tsdb.path={s.home('prometheus') / 'data'}",
        "--storage.tsdb.retention.time=7d",
        f"--web.listen-address={s.host}:{s.prometheus_port}",
        # Loopback only: lets tests reload rules with POST /-/reload.
        "--web.enable-lifecycle",
    ]


# --- PostgreSQL -----------------------------------------------------------------------------

# PostgreSQL refuses to run as root: as root, it runs as the system user Debian's package creates.
POSTGRES_SYSTEM_USER = "postgres"
# A Unix socket path must fit in sun_path (108 bytes with the terminating NUL).
UNIX_SOCKET_PATH_MAX = 107


def postgres_binary(s: Settings, name: str) -> str:
    return find_binary(name, extra_dirs=(s.postgres_bin_dir,))


def server_user() -> str | None:
    """The user PostgreSQL runs as, when it is not the current one (that is, when we are root)."""
    return POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None


def ensure_server_user(s: Settings) -> None:
    """Create the `postgres` system user if the package did not (it normally does)."""
    user = server_user()
    if user is None:
        return
    try:
        pwd.getpwnam(user)
    except KeyError:
        run_checked(
            [find_binary("useradd"), "--system", "--user-group", "--no-create-home", user],
            f"creating the {user} system user",
            s.home("postgres") / "logs" / "prepare.log",
        )


def give_to_server_user(*paths: Path) -> None:
    user = server_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def check_postgres_paths(s: Settings) -> None:
    home = s.home("postgres")
    socket_path = home / "run" / f".s.PGSQL.{s.postgres_port}"
    if len(os.fsencode(socket_path)) > UNIX_SOCKET_PATH_MAX:
        raise StackError(
            f"{socket_path} is too long for a Unix socket; set PCM_STACK_DIR to a shorter path"
        )
    user = server_user()
    # As root, the repository may lie under a folder the postgres user cannot enter (e.g. /root).
    probe = ["test", "-w", str(home / "data"), "-a", "-w", str(home / "run")]
    if user and subprocess.run(probe, check=False, **identity(user)).returncode != 0:
        raise StackError(
            f"the {user} user cannot write to {home}: make its parent folders searchable "
            "(chmod o+x) or set PCM_STACK_DIR to a folder it can reach"
        )


def pg_quote(value: object) -> str:
    """A string literal for postgresql.conf (and SQL)."""
    return "'" + str(value).replace("'", "''") + "'"


def postgres_conf(s: Settings) -> str:
    home = s.home("postgres")
    return "\n".join(
        [
            "# Generated by deploy/local/stack.py; edit the script, not this file.",
            # The server is started with -D etc/ (like Debian's clusters): configuration apart
            # from the data, regenerated on every start; initdb's copies in data/ are not read.
            f"data_directory = {pg_quote(home / 'data')}",
            f"hba_file = {pg_quote(home / 'etc' / 'pg_hba.conf')}",
            f"ident_file = {pg_quote(home / 'etc' / 'pg_ident.conf')}",
            f"listen_addresses = {pg_quote(s.host)}",
            f"port = {s.postgres_port}",
            # Not /var/run/postgresql, which belongs to the packaged cluster (and to root).
            f"unix_socket_directories = {pg_quote(home / 'run')}",
            "unix_socket_permissions = 0700",
            "password_encryption = 'scram-sha-256'",
            "max_connections = 100",
            "shared_buffers = 128MB",
            "dynamic_shared_memory_type = posix",
            # stderr goes to logs/stdout.log (see spawn).
            "logging_collector = off",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "log_timezone = 'UTC'",
            "timezone = 'UTC'",
            "datestyle = 'iso, ymd'",
            "lc_messages = 'C'",
            "",
        ]
    )


# Host connections need a password (SCRAM). The socket in run/ (mode 0700: the server's own OS
# user only) takes peer authentication, for the superuser named after that OS user, e.g. as root:
# `runuser -u postgres -- psql -h .stack/postgres/run postgres`.
PG_HBA = """\
# Generated by deploy/local/stack.py; edit the script, not this file.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 peer
host    all       all   127.0.0.1/32  scram-sha-256
"""


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677).

    Handing the server the verifier, not the password, keeps the password out of its logs.
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already exists
    with os.fdopen(fd, "w") as f:
        f.write(value)


def postgres_single_user(s: Settings, statements: Sequence[str], what: str) -> None:
    """Run SQL in single-user mode: the server is stopped, no connection or password needed.

    One statement per line; exit_on_error turns the first failing statement into a failed exit.
    """
    home = s.home("postgres")
    cmd = [postgres_binary(s, "postgres"), "--single", "-D", str(home / "etc")]
    run_checked(
        [*cmd, "-c", "exit_on_error=on", "postgres"],
        what,
        home / "logs" / "prepare.log",
        stdin="".join(f"{statement}\n" for statement in statements),
        cwd=home,
        user=server_user(),
    )


def pcm_role_sql(verb: str, password: str) -> str:
    """CREATE or ALTER the pcm role (CREATEDB: tests make throwaway databases)."""
    verifier = pg_quote(scram_verifier(password))
    return f"{verb} ROLE {POSTGRES_ROLE} LOGIN CREATEDB PASSWORD {verifier}"


def renew_pcm_password(s: Settings) -> None:
    password = secrets.token_urlsafe(24)
    sql = [pcm_role_sql("ALTER", password)]
    postgres_single_user(s, sql, "setting a new password for the pcm role")
    write_secret(s.postgres_password_file, password)


def init_postgres(s: Settings) -> None:
    home = s.home("postgres")
    data = home / "data"
    initdb = [
        postgres_binary(s, "initdb"),
        f"--pgdata={data}",
        "--encoding=UTF8",
        # C.UTF-8: byte-order sorting like C, but upper()/lower() know á, ñ, ü.
        "--locale=C.UTF-8",
        # For initdb's own pg_hba.conf in data/ (not read, see postgres_conf): no "trust".
        "--auth-local=peer",
        "--auth-host=scram-sha-256",
        "--no-instructions",
    ]
    log = home / "logs" / "prepare.log"
    # From the component folder: the caller's working folder may be closed to `postgres`.
    what = "initialising the PostgreSQL cluster"
    run_checked(initdb, what, log, cwd=home, user=server_user())
    password = secrets.token_urlsafe(24)
    sql = [
        pcm_role_sql("CREATE", password),
        f"CREATE DATABASE {POSTGRES_DATABASE} OWNER {POSTGRES_ROLE}",
    ]
    try:
        postgres_single_user(s, sql, "creating the pcm role and database")
    except StackError:
        shutil.rmtree(data)  # half-initialised: the next start begins from scratch
        raise
    write_secret(s.postgres_password_file, password)


def prepare_postgres(s: Settings) -> None:
    home = s.home("postgres")
    etc, data, run = home / "etc", home / "data", home / "run"
    for d in (etc, data, run, home / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    postgres_binary(s, "postgres")
    ensure_server_user(s)
    give_to_server_user(data, run)
    data.chmod(0o700)  # the server refuses a data folder others can read
    check_postgres_paths(s)
    (etc / "postgresql.conf").write_text(postgres_conf(s))
    (etc / "pg_hba.conf").write_text(PG_HBA)
    (etc / "pg_ident.conf").write_text("")
    if not (data / "PG_VERSION").is_file():
        init_postgres(s)
    elif not s.postgres_password_file.is_file():
        # The cluster outlived its password file (e.g. .stack/secrets was wiped): a new one.
        renew_pcm_password(s)


def postgres_command(s: Settings) -> list[str]:
    return [postgres_binary(s, "postgres"), "-D", str(s.home("postgres") / "etc")]


def stdout_log(s: Settings, name: str) -> Path:
    return s.home(name) / "logs" / "stdout.log"


REGISTRY: dict[str, Component] = {
    "kafka": Component(
        name="kafka",
        ports=lambda s: (s.kafka_port, s.kafka_controller_port),
        cmdline_marker="kafka.Kafka",
        prepare=prepare_kafka,
        command=kafka_command,
        ready=kafka_ready,
        logs=lambda s: [s.home("kafka") / "logs" / "server.log", stdout_log(s, "kafka")],
    ),
    "clickhouse": Component(
        name="clickhouse",
        ports=lambda s: (s.clickhouse_port, s.clickhouse_http_port, s.clickhouse_interserver_port),
        cmdline_marker="clickhouse-server",
        prepare=prepare_clickhouse,
        command=clickhouse_command,
        ready=clickhouse_ready,
        logs=lambda s: [
            s.home("clickhouse") / "logs" / "clickhouse-server.log",
            s.home("clickhouse") / "logs" / "clickhouse-server.err.log",
            stdout_log(s, "clickhouse"),
        ],
    ),
    "prometheus": Component(
        name="prometheus",
        ports=lambda s: (s.prometheus_port,),
        cmdline_marker="--storage.tsdb.path=",
        prepare=prepare_prometheus,
        command=prometheus_command,
        ready=prometheus_ready,
        logs=lambda s: [stdout_log(s, "prometheus")],
    ),
    "postgres": Component(
        name="postgres",
        ports=lambda s: (s.postgres_port,),
        cmdline_marker="postgres -D ",
        prepare=prepare_postgres,
        command=postgres_command,
        ready=postgres_ready,
        logs=lambda s: [s.home("postgres") / "logs" / "prepare.log", stdout_log(s, "postgres")],
        # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client (a service's
        # pool) to disconnect; SIGINT is the fast one: clients are cut off, data is checkpointed.
        stop_signal=signal.SIGINT,
        run_as=server_user,
    ),
}


# --------------------------------------------------------------------------------------------
# Processes


def read_pid(s: Settings, name: str) -> int | None:
    try:
        return int(s.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None


def process_alive(pid: int, marker: str) -> bool:
    """True if `pid` runs (not a zombie) and its command line contains `marker`."""
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def running_pid(s: Settings, comp: Component) -> int | None:
    pid = read_pid(s, comp.name)
    return pid if pid is not None and process_alive(pid, comp.cmdline_marker) else None


# The processes this invocation started, so a startup failure can report how they ended.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(s: Settings, comp: Component) -> int:
    """Start the component detached from this process, output appended to logs/stdout.log."""
    log = stdout_log(s, comp.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {comp.name}\n".encode())
        out.flush()
        # New session: survives this script and the shell/make/pytest that ran it, and is
        # not hit by a Ctrl-C sent to the caller's process group.
        proc = subprocess.Popen(
            comp.command(s),
            cwd=s.home(comp.name),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **identity(comp.run_as()),
        )
    s.pid_file(comp.name).write_text(f"{proc.pid}\n")
    _CHILDREN[proc.pid] = proc
    return proc.pid


def how_it_ended(pid: int | None) -> str:
    """'exit code N' or 'killed by SIGX' for a child started here; '' when unknown."""
    proc = _CHILDREN.get(pid) if pid is not None else None
    code = proc.poll() if proc is not None else None
    if code is None:
        return ""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_component(s: Settings, comp: Component, grace_s: float = 30.0) -> str:
    pid = running_pid(s, comp)
    s.pid_file(comp.name).unlink(missing_ok=True)
    if pid is None:
        return "not running"
    os.kill(pid, comp.stop_signal)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap(pid)
        if not process_alive(pid, comp.cmdline_marker):
            return f"stopped (pid {pid})"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    reap(pid)
    return f"killed after {grace_s:.0f}s (pid {pid})"


def busy_ports(s: Settings, comp: Component) -> list[int]:
    return [p for p in comp.ports(s) if tcp_open(s.host, p, timeout=0.3)]


def tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))  # enough for 40 long log lines
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def print_logs(s: Settings, comp: Component, lines: int, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    for path in comp.logs(s):
        if path.is_file():
            print(f"----- {path} (last {lines} lines)", file=out)
            for line in tail(path, lines):
                print(line, file=out)


# --------------------------------------------------------------------------------------------
# Commands


def start_one(s: Settings, comp: Component) -> int | None:
    """Start `comp` unless it already runs. Returns the pid of a process started now."""
    if running_pid(s, comp) is not None:
        return None
    busy = busy_ports(s, comp)
    if busy:
        raise StackError(
            f"port(s) {busy} already in use by a process this script did not start "
            f"(a system service? check with `ss -ltnp`); stop it or set PCM_*_PORT"
        )
    comp.prepare(s)
    return spawn(s, comp)


EXITED_DURING_STARTUP = "process exited during startup"


def wait_ready(s: Settings, comps: Sequence[Component]) -> dict[str, str]:
    """Wait for all components together; returns {name: why} for those that did not come up."""
    pending = list(comps)
    pids = {comp.name: read_pid(s, comp.name) for comp in comps}
    failed: dict[str, str] = {}
    deadline = time.monotonic() + s.timeout_s
    while pending and time.monotonic() < deadline:
        for comp in list(pending):
            if comp.ready(s):
                pending.remove(comp)
            elif running_pid(s, comp) is None:
                ended = how_it_ended(pids[comp.name])
                failed[comp.name] = EXITED_DURING_STARTUP + (f" ({ended})" if ended else "")
                pending.remove(comp)
        if pending:
            time.sleep(0.3)
    for comp in pending:
        failed[comp.name] = f"not ready after {s.timeout_s:.0f}s"
    return failed


def select(names: Sequence[str]) -> list[Component]:
    """The named components (all when none), in COMPONENTS order."""
    unknown = set(names) - set(COMPONENTS)
    if unknown:
        raise SystemExit(f"unknown component(s) {sorted(unknown)}; choose from {COMPONENTS}")
    return [REGISTRY[n] for n in COMPONENTS if not names or n in names]


def start_and_wait(s: Settings, comps: Sequence[Component]) -> tuple[set[str], dict[str, str]]:
    """Start each component not running yet and wait for all; (started now, {name: why})."""
    started: set[str] = set()
    failed: dict[str, str] = {}
    for comp in comps:
        try:
            if start_one(s, comp) is not None:
                started.add(comp.name)
        except StackError as exc:
            failed[comp.name] = str(exc)
    failed |= wait_ready(s, [c for c in comps if c.name not in failed])
    return started, failed


def cmd_up(s: Settings, names: Sequence[str]) -> int:
    t0 = time.monotonic()
    # ClickHouse and Prometheus start in a second; start them before Kafka's slow first-run
    # Maven download so their startup overlaps with it.
    order = sorted(select(names), key=lambda c: c.name == "kafka")
    started, failed = start_and_wait(s, order)
    # A server that dies while it starts (seen once for ClickHouse right after a clean stop,
    # with nothing in its logs) gets one more try, as a supervisor would give it; the first
    # failure stays on record in the output.
    retry = [
        c for c in order if c.name in started and EXITED_DURING_STARTUP in failed.get(c.name, "")
    ]
    for comp in retry:
        print(f"{comp.name}: {failed.pop(comp.name)}; starting it once more", file=sys.stderr)
        print_logs(s, comp, 20, sys.stderr)
    if retry:
        _, failed_again = start_and_wait(s, retry)
        failed |= failed_again
    for comp in order:
        if comp.name not in failed:
            state = "started" if comp.name in started else "already running"
            print(f"{comp.name}: {state}, ready ({describe(s, comp)})")
            continue
        print(f"FAILED {comp.name} ({describe(s, comp)}): {failed[comp.name]}", file=sys.stderr)
        if comp.name in started:
            print_logs(s, comp, 40, sys.stderr)
            stop_component(s, comp, grace_s=10)  # do not leave a half-started process behind
    if failed:
        print(f"stack up FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"stack up in {time.monotonic() - t0:.1f}s")
    return 0


def cmd_down(s: Settings, names: Sequence[str]) -> int:
    # Kafka first: it is the one that takes time to shut down cleanly.
    for comp in select(names):
        print(f"{comp.name}: {stop_component(s, comp)}")
    return 0


def describe(s: Settings, comp: Component) -> str:
    return ", ".join(f"{s.host}:{p}" for p in comp.ports(s))


def cmd_status(s: Settings, names: Sequence[str]) -> int:
    for comp in select(names):
        pid = running_pid(s, comp)
        if pid is None:
            state = "stopped"
            busy = busy_ports(s, comp)
            if busy:
                state += f" (ports {busy} used by another process)"
            print(f"{comp.name:<11} {state:<9} {'-':>8}  {describe(s, comp)}")
        else:
            state = "running" if comp.ready(s) else "starting"
            print(f"{comp.name:<11} {state:<9} {pid:>8}  {describe(s, comp)}")
    return 0


def cmd_logs(s: Settings, name: str, lines: int) -> int:
    print_logs(s, REGISTRY[name], lines)
    return 0


def cmd_reset(s: Settings) -> int:
    cmd_down(s, [])
    for name in COMPONENTS:
        data = s.home(name) / "data"
        if data.exists():
            shutil.rmtree(data)
            print(f"{name}: wiped {data}")
    return 0


@contextlib.contextmanager
def stack_lock(s: Settings) -> Iterator[None]:
    """Serialise concurrent invocations (two test sessions starting the stack at once)."""
    import fcntl  # POSIX only; imported here so the probes above stay importable anywhere

    s.stack_dir.mkdir(parents=True, exist_ok=True)
    with (s.stack_dir / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for cmd in ("up", "down", "start", "stop", "restart", "status"):
        sp = sub.add_parser(cmd)
        sp.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(COMPONENTS)}")
    lg = sub.add_parser("logs")
    lg.add_argument("name", choices=COMPONENTS)
    lg.add_argument("-n", "--lines", type=int, default=100)
    sub.add_parser("reset")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    s = Settings.from_env()
    if args.cmd == "status":
        return cmd_status(s, args.names)
    if args.cmd == "logs":
        return cmd_logs(s, args.name, args.lines)
    with stack_lock(s):
        if args.cmd in ("up", "start"):
            return cmd_up(s, args.names)
        if args.cmd in ("down", "stop"):
            return cmd_down(s, args.names)
        if args.cmd == "restart":
            cmd_down(s, args.names)
            return cmd_up(s, args.names)
        return cmd_reset(s)


if __name__ == "__main__":
    sys.exit(main())
