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
