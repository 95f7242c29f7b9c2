"""Top-level fixtures: the local stack of deploy/local/stack.py (Kafka, ClickHouse, Prometheus,
PostgreSQL)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pcm_common.catalogues import Catalogues, load_catalogues

REPO = Path(__file__).resolve().parents[1]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.py"


def _load_stack_module() -> ModuleType:
    # deploy/local is not a package (the script must run before the venv exists): load by path.
    spec = importlib.util.spec_from_file_location("pcm_local_stack", STACK_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


stack_module = _load_stack_module()


@dataclass(frozen=True)
class LocalStack:
    """Endpoints of the running stack, plus stop/start of one component for outage tests."""

    settings: Any  # stack.py's Settings; loaded by path, so not importable for typing

    @property
    def kafka_bootstrap(self) -> str:
        return str(self.settings.kafka_bootstrap)

    @property
    def clickhouse_host(self) -> str:
        return str(self.settings.host)

    @property
    def clickhouse_port(self) -> int:
        return int(self.settings.clickhouse_port)

    @property
    def clickhouse_http_url(self) -> str:
        return str(self.settings.clickhouse_http_url)

    @property
    def prometheus_url(self) -> str:
        return str(self.settings.prometheus_url)

    @property
    def postgres_port(self) -> int:
        return int(self.settings.postgres_port)

    @property
    def postgres_password_file(self) -> Path:
        """Written by the stack when it initialised PostgreSQL (role pcm)."""
        return Path(self.settings.postgres_password_file)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # A subprocess, not an in-process call: the component must outlive the test process.
        return subprocess.run(
            [sys.executable, str(STACK_SCRIPT), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=180,
        )

    def stop(self, name: str) -> None:
        """Stop one component (kafka, clickhouse, prometheus, postgres); its data is kept."""
        self.run("stop", name)

    def start(self, name: str) -> None:
        """Start one component and wait until it answers again."""
        self.run("start", name)

    def unreachable(self) -> list[str]:
        probes = {
            "kafka": stack_module.kafka_ready,
            "clickhouse": stack_module.clickhouse_ready,
            "prometheus": stack_module.prometheus_ready,
            "postgres": stack_module.postgres_ready,
        }
        return [name for name, ready in probes.items() if not ready(self.settings)]


@pytest.fixture(scope="session")
def catalogues() -> Catalogues:
    """The repository's catalogues, loaded once (frozen: no test can change them for another)."""
    return load_catalogues()


@pytest.fixture(scope="session")
def stack() -> LocalStack:
    """The local stack, which must already be running: fails (never skips) when it is not."""
    local = LocalStack(stack_module.Settings.from_env())
    down = local.unreachable()
    if down:
        pytest.fail(
            f"local stack not reachable ({', '.join(down)} down): run `make stack-up` "
            "(or `python3 deploy/local/stack.py up`) first",
            pytrace=False,
        )
    return local
