"""Prometheus config and alert rules are valid, and the promtool unit tests of the alerts pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
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


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_config_is_valid(config: str) -> None:
    output = promtool("check", "config", config)
    assert "SUCCESS" in output


def test_rules_are_valid() -> None:
    rule_files = sorted(str(p.relative_to(PROM_DIR)) for p in (PROM_DIR / "rules").glob("*.yml"))
    assert rule_files, "no rule files in deploy/prometheus/rules"
    output = promtool("check", "rules", *rule_files)
    assert "FAILED" not in output


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
