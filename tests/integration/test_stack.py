"""The local stack answers real client requests, and `stack.py up` is idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

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
    assert result.stdout.count("already running") == 3, result.stdout
    assert elapsed < 15, f"second `up` took {elapsed:.1f}s"


def test_status_lists_every_component_running(stack: LocalStack) -> None:
    result = _stack("status")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines == {"kafka": "running", "clickhouse": "running", "prometheus": "running"}
