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
SCHEMA_FILE = Path(
    os.environ.get("PCM_COMPOSE_SCHEMA", REPO / ".stack" / "schemas" / "compose-spec.json")
)
PLATFORM_SERVICES = ("intake", "processor")
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
    for name in PLATFORM_SERVICES:
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
