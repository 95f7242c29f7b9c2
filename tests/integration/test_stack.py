"""The local stack answers real client requests, and `stack.py up` is idempotent."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from clickhouse_driver import Client
from kafka import KafkaAdminClient

pytestmark = pytest.mark.integration

STACK_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack.py"
# The `stack` fixture (tests/conftest.py) is a LocalStack; conftest modules are not importable.
LocalStack = Any


def test_kafka_answers_a_metadata_request(stack: LocalStack) -> None:
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="pcm-test-stack")
    try:
        assert isinstance(admin.list_topics(), list)
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert [b["port"] for b in cluster["brokers"]] == [int(stack.kafka_bootstrap.split(":")[1])]


def test_clickhouse_answers_a_query(stack: LocalStack) -> None:
    client = Client(stack.clickhouse_host, port=stack.clickhouse_port)
    try:
        ((version,),) = client.execute("SELECT version()")
    finally:
        client.disconnect()
    assert version.split(".")[0].isdigit()


def _postgres(stack: LocalStack) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(
        host="127.0.0.1",
        port=stack.postgres_port,
        user="pcm",
        dbname="pcm",
        password=stack.postgres_password_file.read_text(),
        connect_timeout=5,
        autocommit=True,
    )


def test_postgres_answers_the_pcm_role_on_loopback_only(stack: LocalStack) -> None:
    with _postgres(stack) as conn:
        row = conn.execute(
            "SELECT current_user, current_setting('server_version_num')::int,"
            " current_setting('listen_addresses'), current_setting('password_encryption')"
        ).fetchone()
    assert row is not None
    user, version, listen, encryption = row
    assert (user, listen, encryption) == ("pcm", "127.0.0.1", "scram-sha-256")
    assert version >= 150000


def test_postgres_password_is_generated_and_private(stack: LocalStack) -> None:
    secret = stack.postgres_password_file
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text()) >= 32  # secrets.token_urlsafe(24)


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, object] = json.load(resp)
    return data


def _scraped_jobs(prometheus_url: str) -> set[str]:
    targets = _get_json(f"{prometheus_url}/api/v1/targets")
    return {t["labels"]["job"] for t in targets["data"]["activeTargets"]}  # type: ignore[index]


def test_prometheus_is_ready_and_scrapes_the_platform_jobs(stack: LocalStack) -> None:
    with urllib.request.urlopen(f"{stack.prometheus_url}/-/ready", timeout=5) as resp:
        assert resp.status == 200
    # Target discovery syncs every 5 s, so a just-started Prometheus may list none yet.
    expected = {"prometheus", "pcm-intake", "pcm-processor"}
    deadline = time.monotonic() + 20
    while not expected <= (jobs := _scraped_jobs(stack.prometheus_url)):
        assert time.monotonic() < deadline, f"scraped jobs {jobs}, expected {expected}"
        time.sleep(0.5)


def test_prometheus_loaded_the_platform_alert_rules(stack: LocalStack) -> None:
    rules = _get_json(f"{stack.prometheus_url}/api/v1/rules?type=alert")
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}  # type: ignore[index]
    assert {"ServiceDown", "ProcessorStale", "IntakeRejectionRateHigh"} <= names


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STACK_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_again_is_a_quick_no_op(stack: LocalStack) -> None:
    started = time.monotonic()
    result = _stack("up")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already running") == 4, result.stdout
    assert elapsed < 15, f"second `up` took {elapsed:.1f}s"


def test_status_lists_every_component_running(stack: LocalStack) -> None:
    result = _stack("status")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines == {
        "kafka": "running",
        "clickhouse": "running",
        "prometheus": "running",
        "postgres": "running",
    }


def _status_of(name: str) -> str:
    result = _stack("status", name)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]


def test_stop_and_start_postgres_keeps_its_data(stack: LocalStack) -> None:
    table = f"stack_test_{uuid.uuid4().hex[:8]}"
    with _postgres(stack) as conn:
        conn.execute(f"CREATE TABLE {table} (id int)")
        conn.execute(f"INSERT INTO {table} VALUES (42)")
    try:
        stack.stop("postgres")
        try:
            assert _status_of("postgres") == "stopped"
            assert stack.unreachable() == ["postgres"]
        finally:
            stack.start("postgres")
        assert _status_of("postgres") == "running"
        with _postgres(stack) as conn:
            assert conn.execute(f"SELECT id FROM {table}").fetchall() == [(42,)]
    finally:
        with _postgres(stack) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
