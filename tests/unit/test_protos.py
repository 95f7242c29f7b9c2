"""The contracts: generated code matches protos/, protos pass buf lint, envelopes round-trip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import attention_pb2, envelope_pb2

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / ".stack" / "tools" / "node_modules" / ".bin" / "buf"


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_generated_code_is_detected(tmp_path: Path) -> None:
    """The freshness check must fail when a generated file was edited by hand."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "protos", copy / "protos")
    shutil.copytree(REPO / "scripts", copy / "scripts")
    shutil.copytree(REPO / "services" / "pcm", copy / "services" / "pcm")
    edited = copy / "services" / "pcm" / "monitoring" / "v1" / "kpi_pb2.py"
    edited.write_text(edited.read_text() + "\n# hand edit\n")
    result = subprocess.run(
        [sys.executable, str(copy / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "kpi_pb2.py" in result.stdout


def test_protos_pass_buf_lint() -> None:
    assert BUF.exists(), "buf is missing: run `make tools`"
    result = subprocess.run([str(BUF), "lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_protos_stay_backward_compatible() -> None:
    """`buf breaking` (FILE rules) against the first published contracts and the previous
    commit: entities' generated clients must keep working after every change."""
    assert BUF.exists(), "buf is missing: run `make tools`"
    first = _git("log", "--diff-filter=A", "--format=%H", "--", "protos").splitlines()[-1]
    for baseline in (first, "HEAD~1"):
        result = subprocess.run(
            [str(BUF), "breaking", "--against", f".git#ref={baseline}"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"against {baseline}:\n{result.stdout}{result.stderr}"


def test_buf_breaking_catches_a_removed_field(tmp_path: Path) -> None:
    """The check above can fail: a copy of the protos without a field is refused."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "protos", copy / "protos")
    shutil.copy(REPO / "buf.yaml", copy / "buf.yaml")
    common = copy / "protos" / "pcm" / "monitoring" / "v1" / "common.proto"
    common.write_text(common.read_text().replace("  string reason = 4;\n", ""))
    result = subprocess.run(
        [str(BUF), "breaking", "--against", str(REPO)],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "reason" in result.stdout


def test_envelope_round_trips_an_attention() -> None:
    issued = Timestamp(seconds=1_764_000_000)
    envelope = envelope_pb2.EventEnvelope(
        id="evt-1",
        source="/entities/RENIEC",
        type="pe.gob.pcm.monitoring.attention.v1",
        entity_id="RENIEC",
        schema_version=1,
        attention=attention_pb2.AttentionEvent(
            event_id="evt-1",
            entity_id="RENIEC",
            ticket_id="A-001",
            kind=attention_pb2.ATTENTION_EVENT_KIND_TICKET_ISSUED,
            channel="PRESENCIAL",
            service_id="RENIEC-DNI-DUPLICADO",
            issued_at=issued,
        ),
    )
    decoded = envelope_pb2.EventEnvelope.FromString(envelope.SerializeToString())
    assert decoded.WhichOneof("payload") == "attention"
    assert decoded.attention.issued_at.seconds == 1_764_000_000
    assert decoded == envelope
