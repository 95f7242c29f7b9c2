"""deploy/alertmanager/alertmanager.yml: valid for the real Alertmanager (`amtool check-config`),
routes every alert of deploy/prometheus/rules/ where it belongs (`amtool config routes test`),
inhibits by alerts that exist, and holds no secret.

amtool comes with Debian's prometheus-alertmanager, which `make install-system`
(scripts/install_system.sh) installs. Without it these tests are skipped, loudly, on a
developer's machine, and fail in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = REPO / "deploy" / "prometheus" / "rules"
COMPOSE_FILE = REPO / "docker-compose.yml"
AMTOOL = shutil.which("amtool")
MISSING = (
    "AMTOOL MISSING: the Alertmanager config is NOT checked. Install it with "
    "`make install-system` (Debian package prometheus-alertmanager)"
)

PAGER = "oncall-pager"
CHAT = "operations-chat"
BENCHMARK = "benchmark-chat"
OVERSIGHT = "oversight-body"


@pytest.fixture(scope="module")
def amtool() -> str:
    if AMTOOL is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    return AMTOOL


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


def run(amtool: str, *args: str) -> str:
    result = subprocess.run(
        [amtool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def receivers_for(amtool: str, labels: dict[str, str]) -> list[str]:
    pairs = [f"{key}={value}" for key, value in labels.items()]
    out = run(amtool, "config", "routes", "test", f"--config.file={CONFIG}", *pairs)
    return out.strip().splitlines()[-1].split(",")


def rule_alerts() -> list[tuple[dict[str, str], bool]]:
    """Every alert of deploy/prometheus/rules/ with its fixed labels (ServiceDown's templated
    component resolved as for one job, the outbox alerts' computed one as for one worker), and
    whether it is a business alert (its group is pcm-business*)."""
    alerts = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            business = group["name"].startswith("pcm-business")
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                labels = {"alertname": rule["alert"], **rule.get("labels", {})}
                if "{{" in labels.get("component", ""):
                    labels["component"] = "pcm-intake"
                    labels["job"] = "pcm-intake"
                elif "component" not in labels and '"component"' in rule["expr"]:
                    # The outbox alerts: component from the metric name (label_replace).
                    labels["component"] = "complaints-worker"
                if "entity" in rule["expr"]:
                    labels["entity"] = "RENIEC"
                alerts.append((labels, business))
    return alerts


def test_amtool_checks_the_config(amtool: str) -> None:
    out = run(amtool, "check-config", str(CONFIG))
    assert "SUCCESS" in out
    assert "4 receivers" in out


def test_amtool_refuses_a_broken_config(amtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(
        CONFIG.read_text().replace("receiver: operations-chat\n", "receiver: nobody\n", 1)
    )
    result = subprocess.run(
        [amtool, "check-config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "nobody" in result.stdout + result.stderr


def case(alertname: str, severity: str, component: str, **more: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, "component": component, **more}


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # Business: the oversight body only, whatever the component (the domain's).
        (case("ComplaintsOverdue", "warning", "complaints", entity="RENIEC"), [OVERSIGHT]),
        (
            case("WaitingOverTarget", "warning", "attention", entity="SUNARP", service="X"),
            [OVERSIGHT],
        ),
        (case("SatisfactionDropping", "warning", "surveys", entity="ONP"), [OVERSIGHT]),
        (case("ImprovementPlanOverdue", "warning", "benchmark", entity="SUNAT"), [OVERSIGHT]),
        (case("EntitySilent", "warning", "business-activity", entity="ONP"), [OVERSIGHT]),
        (case("SomeNewBusinessAlert", "warning", "business", entity="ONP"), [OVERSIGHT]),
        # Critical: the pager, and the chat of its component.
        (case("ServiceDown", "critical", "pcm-intake", job="pcm-intake"), [PAGER, CHAT]),
        (
            case("ServiceDown", "critical", "pcm-benchmark-worker", job="pcm-benchmark-worker"),
            [PAGER, BENCHMARK],
        ),
        (case("OutboxStuck", "critical", "surveys-worker", outbox="responses"), [PAGER, CHAT]),
        # Warning: a ticket in the chat of its component, no page; an entity's bad pushes are
        # the platform team's, not the oversight body's.
        (case("IntakeRejectionRateHigh", "warning", "intake", entity="RENIEC"), [CHAT]),
        (case("ProcessorLagHigh", "warning", "processor"), [CHAT]),
        (case("BenchmarkResultsStale", "warning", "benchmark-worker"), [BENCHMARK]),
        ({"alertname": "Unknown"}, [CHAT]),
    ],
)
def test_routes(amtool: str, labels: dict[str, str], receivers: list[str]) -> None:
    assert receivers_for(amtool, labels) == receivers


def test_every_rule_alert_reaches_who_must_act(amtool: str) -> None:
    alerts = rule_alerts()
    assert len(alerts) >= 20, alerts
    assert any(business for _, business in alerts)
    for labels, business in alerts:
        assert set(labels) >= {"alertname", "severity", "component"}, labels
        got = receivers_for(amtool, labels)
        if business:  # a new business alert is added to the oversight body's route
            assert got == [OVERSIGHT], labels
        elif labels["severity"] == "critical":
            assert got[0] == PAGER and len(got) == 2 and OVERSIGHT not in got, labels
        else:
            assert got in ([CHAT], [BENCHMARK]), labels


def test_inhibit_rules_name_real_alerts(config: dict[str, Any]) -> None:
    names = {labels["alertname"] for labels, _ in rule_alerts()}
    for rule in config["inhibit_rules"]:
        for matcher in [*rule["source_matchers"], *rule["target_matchers"]]:
            match = re.fullmatch(r'alertname(=~|=|!=)"([^"]*)"', matcher)
            if match and match[1] != "!=":
                pattern = match[2] if match[1] == "=~" else re.escape(match[2])
                assert {n for n in names if re.fullmatch(pattern, n)}, matcher


def test_service_down_inhibits_the_other_alerts_of_its_job(config: dict[str, Any]) -> None:
    (rule,) = [
        r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="ServiceDown"']
    ]
    assert rule["target_matchers"] == ['alertname!="ServiceDown"']
    assert rule["equal"] == ["job"]


def test_business_alerts_are_grouped_per_entity(config: dict[str, Any]) -> None:
    business = [r for r in config["route"]["routes"] if r["receiver"] == OVERSIGHT]
    assert business
    for route in business:
        assert route["group_by"] == ["alertname", "entity"]
        assert route["active_time_intervals"] == ["office-hours-lima"]


def test_no_secret_is_written_in_the_config(config: dict[str, Any]) -> None:
    text = CONFIG.read_text()
    # Secret-bearing fields only as their *_file twin.
    for field in (
        "smtp_auth_password",
        "auth_password",
        "api_url",
        "routing_key",
        "service_key",
        "credentials",
        "bot_token",
        "api_key",
    ):
        assert not re.search(rf"^\s*{field}\s*:", text, re.MULTILINE), field
    # Every address is a placeholder of the reserved .invalid domain.
    for host in re.findall(r"https?://([^/:\s]+)", text):
        assert host.endswith(".invalid"), host
    for address in re.findall(r"[\w.+-]+@([\w.-]+)", text):
        assert address.endswith(".invalid"), address


def test_every_secret_file_is_a_compose_secret_of_the_alertmanager() -> None:
    files = set(re.findall(r"/run/secrets/(\w+)", CONFIG.read_text()))
    assert files
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    service = compose["services"]["alertmanager"]
    targets = {secret["target"]: secret["source"] for secret in service["secrets"]}
    assert set(targets) == files
    for source in targets.values():
        # secrets/ is git-ignored: the files never enter the repository.
        assert compose["secrets"][source]["file"].startswith("./secrets/")
    assert "secrets/" in (REPO / ".gitignore").read_text().splitlines()
