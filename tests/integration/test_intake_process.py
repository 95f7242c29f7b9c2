"""`pcm-intake serve` as operators run it: its own process, scraped by the real Prometheus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pcm.monitoring.v1 import intake_service_pb2, intake_service_pb2_grpc
from pcm_common.auth import TokenStore
from pcm_common.settings import Settings
from pcm_testkit.events import attention as served_attention

GRPC_PORT = 50061
METRICS_PORT = 9101  # the port deploy/prometheus/prometheus.yml scrapes for job pcm-intake


@pytest.fixture(scope="module")
def served(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    token = TokenStore(token_file).issue("ONP")
    env = {
        **os.environ,
        "PCM_TOPIC_PREFIX": isolated_settings.topic_prefix,
        "PCM_TOKEN_FILE": str(token_file),
        "PCM_INTAKE_ADDRESS": f"127.0.0.1:{GRPC_PORT}",
        "PCM_INTAKE_METRICS_PORT": str(METRICS_PORT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pcm_intake.cli", "serve"], env=env, stderr=subprocess.PIPE
    )
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}"))
    for _ in range(100):
        try:
            health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            break
        except grpc.RpcError:
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.2)
    yield process, token
    if process.poll() is None:
        process.kill()


def scrape() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def prometheus_value(query: str) -> float | None:
    url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as answer:
        result = json.load(answer)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_metrics_are_served_and_scraped_by_prometheus(
    served: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, token = served
    stub = intake_service_pb2_grpc.IntakeServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}")
    )
    events = [served_attention("ONP", service_id="ORIENTACION") for _ in range(7)]
    response = stub.PushAttentions(
        intake_service_pb2.PushAttentionsRequest(events=events),
        metadata=(("authorization", f"Bearer {token}"),),
    )
    assert response.result.accepted == 7
    exposition = scrape()
    assert 'pcm_intake_events_accepted_total{domain="attention",entity="ONP"} 7.0' in exposition
    # Each service exports only its own series.
    assert "pcm_processor_" not in exposition
    query = 'sum(pcm_intake_events_accepted_total{job="pcm-intake",entity="ONP"})'
    deadline = time.monotonic() + 30  # scrape interval is 5 s
    while time.monotonic() < deadline and prometheus_value(query) != 7.0:
        time.sleep(1)
    assert prometheus_value(query) == 7.0
    assert prometheus_value('up{job="pcm-intake"}') == 1.0


def test_sigterm_stops_the_service_cleanly(served: tuple[subprocess.Popen[bytes], str]) -> None:
    process, _ = served
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
