"""`make demo`'s job on the local stack, small: every service started, data pushed through the
public APIs, the national summary printed, the services stopped (``--no-wait``, as a script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_prints_the_national_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcm_demo",
            "--days",
            "2",
            "--scale",
            "0.05",
            "--seed",
            "7",
            "--no-wait",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    printed = run.stdout
    summary = printed[printed.index("National summary") :]
    for part in (
        "Levels reached per standard",
        "Best and last per peer group",
        "Complaints:",
        "Alerts (Prometheus):",
    ):
        assert part in summary, summary
    assert "benchmark-web: pid" in printed  # the dashboard ran (checked answering at start)
    assert "[7/7] stopping the services" in printed
    assert (out / "national.token").stat().st_mode & 0o077 == 0  # owner-only secret
