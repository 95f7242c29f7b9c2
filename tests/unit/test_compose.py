"""docker-compose.yml is valid against the official Compose Specification schema, and safe.

The schema is not vendored: `make schemas` takes it from the compose-go module (the reference
implementation Docker Compose itself uses) via the Go module proxy into .stack/schemas/.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_FILE = REPO / "deploy" / "prometheus" / "prometheus.compose.yml"
SCHEMA_FILE = Path(
    os.environ.get("PCM_COMPOSE_SCHEMA", REPO / ".stack" / "schemas" / "compose-spec.json")
)
PLATFORM_SERVICES = ("intake", "processor")
# The complaints service needs PostgreSQL only; its worker relays the outbox to Kafka.
COMPLAINTS_SERVICES = {"complaints": ("postgres",), "complaints-worker": ("kafka", "postgres")}
# The indicators service also reads ClickHouse (kpi_values, for ListKpis); its worker is the same
# outbox relay as the complaints worker.
INDICATORS_SERVICES = {
    "indicators": ("clickhouse", "postgres"),
    "indicators-worker": ("kafka", "postgres"),
}
# The surveys service needs PostgreSQL only (no ClickHouse, no Kafka); its worker runs the two
# outbox relays (collections, responses) to Kafka.
SURVEYS_SERVICES = {"surveys": ("postgres",), "surveys-worker": ("kafka", "postgres")}
# The national benchmark: the gRPC service keeps the improvement plans in PostgreSQL and reads
# the results in ClickHouse (it migrates both at start); the worker reads KPIs from ClickHouse
# (made, with the topics, by the processor), reported values from the indicators service, and
# publishes to Kafka; the dashboard reads what the gRPC service's migrations made.
BENCHMARK_SERVICES = {
    "benchmark": ("clickhouse", "postgres"),
    "benchmark-worker": ("clickhouse", "indicators", "kafka", "postgres", "processor"),
    "benchmark-web": ("benchmark", "clickhouse", "postgres"),
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|PEPPER|TOKEN|_KEY$", re.IGNORECASE)


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMA_FILE.is_file():
        pytest.fail(f"{SCHEMA_FILE} missing: run `make schemas` (needs Go)", pytrace=False)
    schema = json.loads(SCHEMA_FILE.read_text())
    cls = jsonschema.validators.validator_for(schema)  # the draft named by its $schema
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture()
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_spec(validator: Any, compose: dict[str, Any]) -> None:
    assert errors(validator, compose) == []


def test_unknown_service_key_is_rejected(validator: Any, compose: dict[str, Any]) -> None:
    bad = copy.deepcopy(compose)
    bad["services"]["intake"]["restart_policy_typo"] = "always"
    assert any("restart_policy_typo" in m for m in errors(validator, bad))


def test_unknown_top_level_key_is_rejected(validator: Any, compose: dict[str, Any]) -> None:
    bad = copy.deepcopy(compose)
    bad["servicez"] = {}
    assert errors(validator, bad)


def test_bad_depends_on_condition_is_rejected(validator: Any, compose: dict[str, Any]) -> None:
    bad = copy.deepcopy(compose)
    bad["services"]["intake"]["depends_on"]["kafka"]["condition"] = "service_ready"
    assert errors(validator, bad)


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_platform_services_wait_for_healthy_infrastructure(compose: dict[str, Any]) -> None:
    for name in PLATFORM_SERVICES:
        deps = compose["services"][name]["depends_on"]
        for infra in ("kafka", "clickhouse"):
            assert deps[infra]["condition"] == "service_healthy", (name, infra)
        env = compose["services"][name]["environment"]
        assert env["PCM_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["PCM_CLICKHOUSE_HOST"] == "clickhouse"
        assert env["PCM_POSTGRES_HOST"] == "postgres"
    # The intake keeps its event-id ledger in PostgreSQL.
    assert compose["services"]["intake"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_postgres_password_and_data(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    password = "${PCM_POSTGRES_PASSWORD:?set PCM_POSTGRES_PASSWORD in .env}"
    assert postgres["environment"]["POSTGRES_PASSWORD"] == password
    for name in (
        *PLATFORM_SERVICES,
        *COMPLAINTS_SERVICES,
        *INDICATORS_SERVICES,
        *SURVEYS_SERVICES,
        *BENCHMARK_SERVICES,
    ):
        assert compose["services"][name]["environment"]["PCM_POSTGRES_PASSWORD"] == password
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if not SECRET_NAME.search(key):
                continue
            value = str(value)
            from_env = value.startswith("${") and value.endswith("}")
            from_file = key.endswith("_FILE") and value.startswith("/run/secrets/")
            assert from_env or from_file, f"{name}: {key} holds a literal value"


def test_published_ports_are_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on all hosts"


def test_complaints_services_wait_for_what_they_use(compose: dict[str, Any]) -> None:
    for name, infra in COMPLAINTS_SERVICES.items():
        service = compose["services"][name]
        assert service["image"] == compose["services"]["intake"]["image"]
        assert {dep: spec["condition"] for dep, spec in service["depends_on"].items()} == {
            dep: "service_healthy" for dep in infra
        }, name
        assert service["environment"]["PCM_POSTGRES_HOST"] == "postgres"
        assert service["environment"]["PCM_METRICS_HOST"] == "0.0.0.0"
    serve = compose["services"]["complaints"]
    assert serve["command"] == ["pcm-complaints", "serve"]
    assert serve["environment"]["PCM_COMPLAINTS_ADDRESS"] == "0.0.0.0:50052"
    assert serve["ports"] == ["127.0.0.1:50052:50052"]
    assert {secret["target"] for secret in serve["secrets"]} == {"tokens.json"}
    assert compose["services"]["complaints-worker"]["command"] == ["pcm-complaints", "work"]


def test_indicators_services_wait_for_what_they_use(compose: dict[str, Any]) -> None:
    for name, infra in INDICATORS_SERVICES.items():
        service = compose["services"][name]
        assert service["image"] == compose["services"]["intake"]["image"]
        assert {dep: spec["condition"] for dep, spec in service["depends_on"].items()} == {
            dep: "service_healthy" for dep in infra
        }, name
        assert service["environment"]["PCM_POSTGRES_HOST"] == "postgres"
        assert service["environment"]["PCM_METRICS_HOST"] == "0.0.0.0"
    serve = compose["services"]["indicators"]
    assert serve["command"] == ["pcm-indicators", "serve"]
    assert serve["environment"]["PCM_INDICATORS_ADDRESS"] == "0.0.0.0:50053"
    assert serve["ports"] == ["127.0.0.1:50053:50053"]
    assert {secret["target"] for secret in serve["secrets"]} == {"tokens.json"}
    # ListKpis reads ClickHouse with the same settings and password as the processor.
    for key in ("PCM_CLICKHOUSE_HOST", "PCM_CLICKHOUSE_USER", "PCM_CLICKHOUSE_PASSWORD"):
        assert serve["environment"][key] == compose["services"]["processor"]["environment"][key]
    worker = compose["services"]["indicators-worker"]
    assert worker["command"] == ["pcm-indicators", "work"]
    assert "secrets" not in worker and "ports" not in worker


def test_surveys_services_wait_for_what_they_use(compose: dict[str, Any]) -> None:
    for name, infra in SURVEYS_SERVICES.items():
        service = compose["services"][name]
        assert service["image"] == compose["services"]["intake"]["image"]
        assert {dep: spec["condition"] for dep, spec in service["depends_on"].items()} == {
            dep: "service_healthy" for dep in infra
        }, name
        assert service["environment"]["PCM_POSTGRES_HOST"] == "postgres"
        assert service["environment"]["PCM_METRICS_HOST"] == "0.0.0.0"
    serve = compose["services"]["surveys"]
    assert serve["command"] == ["pcm-surveys", "serve"]
    assert serve["environment"]["PCM_SURVEYS_ADDRESS"] == "0.0.0.0:50054"
    assert serve["ports"] == ["127.0.0.1:50054:50054"]
    assert {secret["target"] for secret in serve["secrets"]} == {"tokens.json"}
    worker = compose["services"]["surveys-worker"]
    assert worker["command"] == ["pcm-surveys", "work"]
    assert "secrets" not in worker and "ports" not in worker


def test_benchmark_services_wait_for_what_they_use(compose: dict[str, Any]) -> None:
    for name, deps in BENCHMARK_SERVICES.items():
        service = compose["services"][name]
        assert service["image"] == compose["services"]["intake"]["image"]
        assert {dep: spec["condition"] for dep, spec in service["depends_on"].items()} == {
            dep: "service_healthy" for dep in deps
        }, name
        processor = compose["services"]["processor"]["environment"]
        for key in ("PCM_CLICKHOUSE_HOST", "PCM_CLICKHOUSE_USER", "PCM_CLICKHOUSE_PASSWORD"):
            assert service["environment"][key] == processor[key], (name, key)
    serve = compose["services"]["benchmark"]
    assert serve["command"] == ["pcm-benchmark", "serve"]
    assert serve["environment"]["PCM_BENCHMARK_ADDRESS"] == "0.0.0.0:50055"
    assert serve["ports"] == ["127.0.0.1:50055:50055"]
    assert {secret["target"] for secret in serve["secrets"]} == {"tokens.json"}
    assert "PCM_BENCHMARK_TOKEN" not in serve["environment"]


def test_benchmark_worker_reads_the_indicators_with_a_national_token_from_env(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["benchmark-worker"]
    assert worker["command"] == ["pcm-benchmark", "work"]
    assert "secrets" not in worker and "ports" not in worker
    assert "deploy" not in worker  # one replica by default (scale it for a standby)
    env = worker["environment"]
    indicators = compose["services"]["indicators"]
    port = indicators["environment"]["PCM_INDICATORS_ADDRESS"].rsplit(":", 1)[1]
    assert env["PCM_BENCHMARK_INDICATORS_TARGET"] == f"indicators:{port}"
    # The credential comes from .env (interpolated), required, never a literal.
    assert re.fullmatch(r"\$\{PCM_BENCHMARK_TOKEN:\?[^}]+\}", env["PCM_BENCHMARK_TOKEN"])


def test_benchmark_dashboard_is_published_on_loopback(compose: dict[str, Any]) -> None:
    web = compose["services"]["benchmark-web"]
    assert web["command"] == ["pcm-benchmark", "web"]
    assert web["environment"]["PCM_BENCHMARK_WEB_ADDRESS"] == "0.0.0.0:8088"
    assert web["ports"] == ["127.0.0.1:8088:8088"]
    assert {secret["target"] for secret in web["secrets"]} == {"tokens.json"}
    assert "PCM_BENCHMARK_TOKEN" not in web["environment"]
    # It serves no /metrics: its healthcheck asks its own health page.
    assert "http://127.0.0.1:8088/salud" in " ".join(web["healthcheck"]["test"])
    assert "expose" not in web


def test_push_services_metrics_stay_on_the_compose_network(compose: dict[str, Any]) -> None:
    # Their series carry per-entity labels: Prometheus scrapes them inside the network.
    for name, key in (
        ("complaints", "PCM_COMPLAINTS_METRICS_PORT"),
        ("complaints-worker", "PCM_COMPLAINTS_WORKER_METRICS_PORT"),
        ("indicators", "PCM_INDICATORS_METRICS_PORT"),
        ("indicators-worker", "PCM_INDICATORS_WORKER_METRICS_PORT"),
        ("surveys", "PCM_SURVEYS_METRICS_PORT"),
        ("surveys-worker", "PCM_SURVEYS_WORKER_METRICS_PORT"),
        ("benchmark", "PCM_BENCHMARK_METRICS_PORT"),
        ("benchmark-worker", "PCM_BENCHMARK_WORKER_METRICS_PORT"),
    ):
        service = compose["services"][name]
        port = str(service["environment"][key])
        assert port in {str(p) for p in service["expose"]}, name
        published = {str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])}
        assert port not in published, f"{name}: metrics port {port} is published"


def test_prometheus_scrapes_the_compose_services(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
        if not target.startswith("localhost:")
    ]
    assert {
        "complaints:9103",
        "complaints-worker:9104",
        "indicators:9105",
        "indicators-worker:9106",
        "surveys:9107",
        "surveys-worker:9108",
        "benchmark:9109",
        "benchmark-worker:9110",
    } <= set(targets)
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in compose["services"], f"{target}: no such Compose service"
        env = compose["services"][host]["environment"]
        metrics_ports = {str(v) for k, v in env.items() if k.endswith("_METRICS_PORT")}
        assert port in metrics_ports, f"{target}: {host} serves metrics on {metrics_ports}"


def test_grafana_on_loopback_with_its_admin_password_from_env(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])  # an exact release
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    env = grafana["environment"]
    # Required (Compose refuses to start without it), never a literal, never a default.
    assert re.fullmatch(
        r"\$\{PCM_GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"]
    )
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    # What comes from the repository is mounted read-only; Grafana writes its own volume only.
    for volume in grafana["volumes"]:
        assert volume.endswith(":ro") or not volume.startswith("./"), volume
    assert "grafana-data:/var/lib/grafana" in grafana["volumes"]


def test_alertmanager_receives_the_alerts_of_prometheus(compose: dict[str, Any]) -> None:
    alertmanager = compose["services"]["alertmanager"]
    assert re.fullmatch(r"prom/alertmanager:v\d+\.\d+\.\d+", alertmanager["image"])
    assert alertmanager["ports"] == ["127.0.0.1:9093:9093"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    # Receivers' credentials are Compose secrets (files under the git-ignored secrets/).
    assert all(
        compose["secrets"][secret["source"]]["file"].startswith("./secrets/alertmanager/")
        for secret in alertmanager["secrets"]
    )
