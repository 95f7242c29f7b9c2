"""The soak's own Kafka, ClickHouse and PostgreSQL: the local stack script
(``deploy/local/stack.py``) run with a private folder and every port shifted, so that the soak
never touches the default stack other people use (ports 9092, 9000, 5432...).

Components are started, stopped and restarted one by one through the script's own ``up``,
``stop``, ``start`` and ``restart`` commands, as an operator would; Prometheus is not needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.py"
DEFAULT_STACK_DIR = REPO / ".stack"
COMPONENTS = ("kafka", "clickhouse", "postgres")
"""What the platform needs (Prometheus is not)."""
# The stack script's default ports, each shifted by the offset.
PORTS = {
    "PCM_KAFKA_PORT": 9092,
    "PCM_KAFKA_CONTROLLER_PORT": 9093,
    "PCM_CLICKHOUSE_PORT": 9000,
    "PCM_CLICKHOUSE_HTTP_PORT": 8123,
    "PCM_CLICKHOUSE_INTERSERVER_PORT": 9009,
    "PCM_PROMETHEUS_PORT": 9090,
    "PCM_POSTGRES_PORT": 5432,
}
HOST = "127.0.0.1"


class StackFailed(RuntimeError):
    """The stack script failed; the message carries its output."""


@dataclass(frozen=True)
class PrivateStack:
    """A stack of one's own: ``directory`` (data, logs, secrets) and ``offset`` (added to every
    port). Refuses the default folder and offset 0: the default stack is never touched."""

    directory: Path
    offset: int
    timeout_s: float = 240.0

    def __post_init__(self) -> None:
        if self.offset == 0 or self.directory.resolve() == DEFAULT_STACK_DIR.resolve():
            raise ValueError("the soak's stack needs its own folder and a non-zero port offset")

    def port(self, name: str) -> int:
        return PORTS[name] + self.offset

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.port('PCM_KAFKA_PORT')}"

    @property
    def postgres_password_file(self) -> Path:
        return self.directory.resolve() / "secrets" / "postgres_password"

    def script_env(self) -> dict[str, str]:
        """The stack script's configuration (its PCM_* ports and folder)."""
        env = {name: str(self.port(name)) for name in PORTS}
        env["PCM_STACK_DIR"] = str(self.directory.resolve())
        return env

    def settings_env(self) -> dict[str, str]:
        """The platform's settings pointing at this stack (every process and the soak itself)."""
        return {
            "PCM_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PCM_CLICKHOUSE_HOST": HOST,
            "PCM_CLICKHOUSE_PORT": str(self.port("PCM_CLICKHOUSE_PORT")),
            "PCM_POSTGRES_HOST": HOST,
            "PCM_POSTGRES_PORT": str(self.port("PCM_POSTGRES_PORT")),
            # Empty: read from the file this stack wrote (never another stack's password).
            "PCM_POSTGRES_PASSWORD": "",
            "PCM_POSTGRES_PASSWORD_FILE": str(self.postgres_password_file),
        }

    def run(self, *args: str) -> str:
        """The stack script with this stack's configuration; its output (raises on failure)."""
        env: Mapping[str, str] = {**os.environ, **self.script_env()}
        done = subprocess.run(
            [sys.executable, str(STACK_SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise StackFailed(
                f"stack.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def up(self) -> float:
        """Start Kafka, ClickHouse and PostgreSQL (idempotent) and wait until they answer;
        the seconds it took."""
        started = time.monotonic()
        self.run("up", *COMPONENTS)
        return time.monotonic() - started

    def down(self) -> str:
        """Stop every component this stack started (its data is kept)."""
        return self.run("down")

    def stop(self, component: str) -> float:
        started = time.monotonic()
        self.run("stop", component)
        return time.monotonic() - started

    def start(self, component: str) -> float:
        """Start one component and wait until it answers; the seconds it took."""
        started = time.monotonic()
        self.run("start", component)
        return time.monotonic() - started

    def restart(self, component: str) -> float:
        started = time.monotonic()
        self.run("restart", component)
        return time.monotonic() - started
