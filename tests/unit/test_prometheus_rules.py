"""Prometheus config and alert rules are valid, and the promtool unit tests of the alerts pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package `prometheus`; run `make install-system`)",
)


def promtool(*args: str) -> str:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@needs_promtool
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_config_is_valid(config: str) -> None:
    output = promtool("check", "config", config)
    assert "SUCCESS" in output


@needs_promtool
def test_rules_are_valid() -> None:
    rule_files = sorted(str(p.relative_to(PROM_DIR)) for p in (PROM_DIR / "rules").glob("*.yml"))
    assert rule_files, "no rule files in deploy/prometheus/rules"
    output = promtool("check", "rules", *rule_files)
    assert "FAILED" not in output


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    tests = sorted(str(p.relative_to(PROM_DIR)) for p in (PROM_DIR / "tests").glob("*_test.yml"))
    assert tests, "no promtool tests in deploy/prometheus/tests"
    output = promtool("test", "rules", *tests)
    assert "SUCCESS" in output


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (PROM_DIR / "RUNBOOK.md").read_text()
    anchors = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    for rules_file in (PROM_DIR / "rules").glob("*.yml"):
        for line in rules_file.read_text().splitlines():
            if "runbook: deploy/prometheus/RUNBOOK.md#" in line:
                assert line.rsplit("#", 1)[1].strip() in anchors, line


def test_outbox_alerts_cover_every_outbox() -> None:
    # OutboxStuck and OutboxNoWorkerLeader select the workers' series by a metric-name regex
    # (and one absent() term per leader gauge): every OutboxMetrics set a service declares must
    # be in them, or its stuck outbox or missing leader goes unnoticed.
    declared = {
        match
        for metrics in (REPO / "services").glob("*/metrics.py")
        for match in re.findall(r'OutboxMetrics\.declare\("([a-z_]+)"\)', metrics.read_text())
    }
    assert {"pcm_surveys_collections", "pcm_surveys_responses"} <= declared
    rules = yaml.safe_load((PROM_DIR / "rules" / "platform.yml").read_text())
    exprs = {
        rule["alert"]: rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    for alert, suffix in (
        ("OutboxStuck", "_outbox_oldest_seconds"),
        ("OutboxNoWorkerLeader", "_leader"),
    ):
        selector = re.search(r'__name__=~"pcm_\(([a-z_|]+)\)' + suffix + '"', exprs[alert])
        assert selector, alert
        covered = {f"pcm_{name}" for name in selector.group(1).split("|")}
        assert covered == declared, alert
    for prefix in declared:
        assert f"absent({prefix}_leader)" in exprs["OutboxNoWorkerLeader"], prefix


def test_benchmark_alerts_read_declared_metrics_of_scraped_jobs() -> None:
    # The benchmark alerts name series of services/pcm_benchmark/metrics.py, and the jobs they
    # select by name are scraped, on the ports the benchmark settings default to, in both
    # Prometheus configs.
    from pcm_benchmark.settings import BenchmarkSettings

    declared = set(
        re.findall(
            r'"(pcm_benchmark_[a-z_]+)"',
            (REPO / "services" / "pcm_benchmark" / "metrics.py").read_text(),
        )
    )
    rules = yaml.safe_load((PROM_DIR / "rules" / "benchmark.yml").read_text())
    alerts = {
        rule["alert"]: rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert set(alerts) == {
        "BenchmarkStoreUnavailable",
        "BenchmarkWorkerDown",
        "BenchmarkResultsStale",
        "BenchmarkRefreshFailing",
        "BenchmarkNoWorkerLeader",
    }
    for alert, expr in alerts.items():
        used = set(re.findall(r"pcm_benchmark_[a-z_]+", expr))
        assert used, alert
        assert used <= declared, (alert, used - declared)
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job == "pcm-benchmark-worker", (alert, job)
    fields = BenchmarkSettings.model_fields
    ports = {
        "pcm-benchmark": fields["benchmark_metrics_port"].default,
        "pcm-benchmark-worker": fields["benchmark_worker_metrics_port"].default,
    }
    for config, host in (
        ("prometheus.yml", {"pcm-benchmark": "127.0.0.1", "pcm-benchmark-worker": "127.0.0.1"}),
        (
            "prometheus.compose.yml",
            {"pcm-benchmark": "benchmark", "pcm-benchmark-worker": "benchmark-worker"},
        ),
    ):
        jobs = {
            job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
            for job in yaml.safe_load((PROM_DIR / config).read_text())["scrape_configs"]
        }
        for job, port in ports.items():
            assert jobs[job] == [f"{host[job]}:{port}"], (config, job)


def test_every_alert_carries_its_labels_and_annotations() -> None:
    # Routing and the runbook rely on them: severity (critical = act now, warning = look today)
    # and component on every alert (set by the rule, or by the expression's label_replace for
    # the shared outbox alerts), and its summary, description and runbook.
    for rules_file in sorted((PROM_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(rules_file.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                where = (rules_file.name, rule["alert"])
                labels = rule["labels"]
                assert labels["severity"] in {"critical", "warning"}, where
                set_by_expr = "label_replace(" in rule["expr"] and '"component",' in rule["expr"]
                assert labels.get("component") or set_by_expr, where
                assert {"summary", "description", "runbook"} <= set(rule["annotations"]), where


def test_business_alerts_read_the_entity_figures_the_worker_exports() -> None:
    # The business alerts name series of services/pcm_benchmark/metrics.py (the refresh
    # worker's entity figures, entity_watch.py), sit beside ComplaintsOverdue's group, and
    # SatisfactionDropping's answer count is the KPI's min_sample in the catalogue.
    from pcm_common.catalogues import load_catalogues

    declared = set(
        re.findall(
            r'"(pcm_[a-z0-9_]+)"',
            (REPO / "services" / "pcm_benchmark" / "metrics.py").read_text(),
        )
    )
    groups = yaml.safe_load((PROM_DIR / "rules" / "business.yml").read_text())["groups"]
    assert [group["name"] for group in groups] == ["pcm-business"]
    alerts = {rule["alert"]: rule for rule in groups[0]["rules"]}
    assert set(alerts) == {
        "WaitingOverTarget",
        "SatisfactionDropping",
        "EntitySilent",
        "ImprovementPlanOffTrack",
        "ImprovementPlanOverdue",
    }
    for alert, rule in alerts.items():
        used = set(re.findall(r"pcm_[a-z0-9_]+", rule["expr"]))
        assert used, alert
        assert used <= declared, (alert, used - declared)
        assert "max by (entity" in rule["expr"], alert  # one alert whatever the replicas
    complaints = yaml.safe_load((PROM_DIR / "rules" / "complaints.yml").read_text())["groups"]
    assert all(group["name"].startswith("pcm-business") for group in complaints)
    min_sample = load_catalogues().kpi("SATISFACTION_PCT").min_sample
    answers = re.search(
        r'pcm_entity_satisfaction_answers\{window="7d"\}\) >= (\d+)',
        alerts["SatisfactionDropping"]["expr"],
    )
    assert answers is not None
    assert int(answers.group(1)) == min_sample
    assert (alerts["WaitingOverTarget"]["for"], alerts["SatisfactionDropping"]["for"]) == (
        "1h",
        "6h",
    )
    assert "> 86400" in alerts["EntitySilent"]["expr"]
