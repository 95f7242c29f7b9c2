"""Intake service against the real gRPC server and the real broker."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pcm.monitoring.v1 import intake_service_pb2, intake_service_pb2_grpc, procedure_pb2
from pcm_common.auth import TokenStore
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_intake.server import create_server
from pcm_intake.settings import IntakeSettings
from pcm_testkit.events import ago as stamp
from pcm_testkit.events import attention as served_attention
from pcm_testkit.kafka import read_envelopes

REPO = Path(__file__).resolve().parents[2]
STACK = [sys.executable, str(REPO / "deploy" / "local" / "stack.py")]


@dataclass
class Intake:
    settings: IntakeSettings
    target: str
    tokens: dict[str, str]
    store: TokenStore

    def stub(self) -> intake_service_pb2_grpc.IntakeServiceStub:
        return intake_service_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(self.target))

    def auth(self, entity: str = "RENIEC") -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.tokens[entity]}"),)

    def topic(self, domain: str = "attention") -> str:
        return topic_for_domain(domain).name(self.settings.topic_prefix)

    def on_topic(self, domain: str = "attention", minimum: int = 1) -> list:  # type: ignore[type-arg]
        return read_envelopes(self.settings.kafka_bootstrap, self.topic(domain), minimum)


@pytest.fixture(scope="module")
def intake(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Intake]:
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    overrides = {
        "token_file": token_file,
        "intake_address": "127.0.0.1:0",
        "intake_rate_limit_events_per_s": 5_000,
        "kafka_request_timeout_ms": 4_000,
        "token_reload_interval_s": 0,  # see revocations at once
    }
    settings = IntakeSettings(**{**isolated_settings.model_dump(), **overrides})
    ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
    store = TokenStore(token_file, reload_interval_s=0)
    tokens = {entity: store.issue(entity) for entity in ("RENIEC", "SUNARP", "MUNI-MIRAFLORES")}
    server, port, kit = create_server(settings)
    server.start()
    yield Intake(settings, f"127.0.0.1:{port}", tokens, store)
    server.stop(grace=1).wait()
    kit.close()


def test_pushed_events_arrive_decoded_and_keyed_by_entity(intake: Intake) -> None:
    events = [served_attention() for _ in range(3)]
    response = intake.stub().PushAttentions(
        intake_service_pb2.PushAttentionsRequest(events=events), metadata=intake.auth()
    )
    assert response.result.accepted == 3
    assert not response.result.rejections
    found = {env.id: (key, env) for key, env in intake.on_topic(minimum=3)}
    for event in events:
        key, envelope = found[event.event_id]
        assert key == b"RENIEC"
        assert envelope.attention == event
        assert envelope.entity_id == "RENIEC"
        assert envelope.received_at.seconds > 0


def test_same_event_twice_is_stored_once_and_answered_duplicate(intake: Intake) -> None:
    event = served_attention()
    stub = intake.stub()
    request = intake_service_pb2.PushAttentionsRequest(events=[event, event])
    first = stub.PushAttentions(request, metadata=intake.auth())
    assert first.result.accepted == 1
    assert list(first.result.duplicate_indexes) == [1]
    again = stub.PushAttentions(request, metadata=intake.auth())
    assert again.result.accepted == 0
    assert list(again.result.duplicate_indexes) == [0, 1]
    copies = [env for _, env in intake.on_topic() if env.id == event.event_id]
    assert len(copies) == 1


def test_bad_items_are_rejected_with_reasons_and_valid_neighbours_arrive(intake: Intake) -> None:
    good = [served_attention(), served_attention()]
    called_before_issued = served_attention(called_at=stamp(3000))
    unknown_channel = served_attention(channel="FAX")
    future = served_attention(finished_at=stamp(-3600))
    no_id = served_attention(event_id="")
    batch = [good[0], called_before_issued, unknown_channel, future, no_id, good[1]]
    response = intake.stub().PushAttentions(
        intake_service_pb2.PushAttentionsRequest(events=batch), metadata=intake.auth()
    )
    assert response.result.accepted == 2
    reasons = {(r.index, r.field): r.reason for r in response.result.rejections}
    assert reasons[(1, "called_at")] == "before issued_at (negative duration)"
    assert "unknown channel 'FAX'" in reasons[(2, "channel")]
    assert "in the future" in reasons[(3, "finished_at")]
    assert reasons[(4, "event_id")] == "required"
    arrived = {env.id for _, env in intake.on_topic(minimum=2)}
    assert {good[0].event_id, good[1].event_id} <= arrived
    assert not {called_before_issued.event_id, unknown_channel.event_id} & arrived


def test_foreign_entity_events_are_refused_and_never_written(intake: Intake) -> None:
    foreign = [served_attention("SUNARP"), served_attention("SUNARP")]
    with pytest.raises(grpc.RpcError) as refused:
        intake.stub().PushAttentions(
            intake_service_pb2.PushAttentionsRequest(events=foreign), metadata=intake.auth("RENIEC")
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    mine = served_attention()
    mixed = intake.stub().PushAttentions(
        intake_service_pb2.PushAttentionsRequest(events=[foreign[0], mine]),
        metadata=intake.auth("RENIEC"),
    )
    assert mixed.result.accepted == 1
    assert [(r.index, r.field) for r in mixed.result.rejections] == [(0, "entity_id")]
    written = {env.id for _, env in intake.on_topic()}
    assert mine.event_id in written
    assert not {event.event_id for event in foreign} & written


@pytest.mark.parametrize("token", ["pcm_deadbeef_nope", "not-a-token", ""])
def test_unknown_or_malformed_token_is_unauthenticated(intake: Intake, token: str) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        intake.stub().PushAttentions(
            intake_service_pb2.PushAttentionsRequest(events=[served_attention()]),
            metadata=(("authorization", f"Bearer {token}"),),
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_revoked_token_is_unauthenticated(intake: Intake) -> None:
    token = intake.store.issue("RENIEC", label="to revoke")
    metadata = (("authorization", f"Bearer {token}"),)
    request = intake_service_pb2.PushAttentionsRequest(events=[served_attention()])
    assert intake.stub().PushAttentions(request, metadata=metadata).result.accepted == 1
    intake.store.revoke(token.split("_")[1])
    with pytest.raises(grpc.RpcError) as refused:
        intake.stub().PushAttentions(request, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (refused.value.details() or "")


def test_procedure_stages_are_validated_and_published(intake: Intake) -> None:
    resolved = procedure_pb2.ProcedureStageEvent(
        event_id="proc-evt-1",
        entity_id="RENIEC",
        procedure_id="EXP-2026-000123",
        service_id="RENIEC_RECTIFICACION_ACTA",
        stage=procedure_pb2.PROCEDURE_STAGE_RESOLVED,
        channel="VIRTUAL",
        filed_at=stamp(20 * 86_400),
        occurred_at=stamp(60),
    )
    not_a_procedure = procedure_pb2.ProcedureStageEvent()
    not_a_procedure.CopyFrom(resolved)
    not_a_procedure.event_id = "proc-evt-2"
    not_a_procedure.service_id = "ORIENTACION"  # an attention service, not a TUPA procedure
    response = intake.stub().PushProcedureStages(
        intake_service_pb2.PushProcedureStagesRequest(events=[resolved, not_a_procedure]),
        metadata=intake.auth(),
    )
    assert response.result.accepted == 1
    assert [(r.index, r.field) for r in response.result.rejections] == [(1, "service_id")]
    envelopes = [env for _, env in intake.on_topic("procedure_stage")]
    assert [env.procedure_stage for env in envelopes] == [resolved]


def test_batch_over_the_limit_is_invalid_argument(intake: Intake) -> None:
    too_many = [served_attention() for _ in range(intake.settings.intake_max_batch + 1)]
    with pytest.raises(grpc.RpcError) as refused:
        intake.stub().PushAttentions(
            intake_service_pb2.PushAttentionsRequest(events=too_many), metadata=intake.auth()
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_rate_limit_is_resource_exhausted_with_retry_hint(intake: Intake) -> None:
    stub = intake.stub()
    request = intake_service_pb2.PushAttentionsRequest(
        events=[served_attention("MUNI-MIRAFLORES") for _ in range(1_000)]
    )
    codes = []
    for _ in range(8):  # 8,000 events at once against a 5,000/s budget
        try:
            stub.PushAttentions(request, metadata=intake.auth("MUNI-MIRAFLORES"))
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
            trailers = dict(error.trailing_metadata() or ())
            assert trailers["grpc-retry-pushback-ms"] == "5000"
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert codes[0] == grpc.StatusCode.OK


def test_health_and_reflection_answer(intake: Intake) -> None:
    channel = grpc.insecure_channel(intake.target)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="pcm.monitoring.v1.IntakeService")
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert "pcm.monitoring.v1.IntakeService" in names


def test_metrics_count_accepted_and_rejected(intake: Intake) -> None:
    from prometheus_client import generate_latest

    intake.stub().PushAttentions(
        intake_service_pb2.PushAttentionsRequest(
            events=[served_attention("SUNARP"), served_attention("SUNARP", channel="FAX")]
        ),
        metadata=intake.auth("SUNARP"),
    )
    exposition = generate_latest().decode()
    assert 'pcm_intake_events_accepted_total{domain="attention",entity="SUNARP"}' in exposition
    assert (
        'pcm_intake_events_rejected_total{code="REJECTION_CODE_UNKNOWN_CODE",domain="attention",'
        'entity="SUNARP",field="channel"} 1.0'
    ) in exposition
    assert "pcm_intake_batch_seconds_bucket" in exposition


def test_broker_down_is_unavailable_and_later_events_arrive(intake: Intake) -> None:
    stub = intake.stub()
    subprocess.run([*STACK, "stop", "kafka"], check=True)
    try:
        during = served_attention()
        with pytest.raises(grpc.RpcError) as refused:
            stub.PushAttentions(
                intake_service_pb2.PushAttentionsRequest(events=[during]),
                metadata=intake.auth(),
                timeout=30,
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "retry" in (refused.value.details() or "")
    finally:
        subprocess.run([*STACK, "start", "kafka"], check=True)
    after = served_attention()
    retried = stub.PushAttentions(
        intake_service_pb2.PushAttentionsRequest(events=[during, after]),
        metadata=intake.auth(),
        timeout=60,
    )
    assert retried.result.accepted == 2  # the refused event was not remembered as stored
    arrived = {env.id for _, env in intake.on_topic(minimum=2)}
    assert {during.event_id, after.event_id} <= arrived


def test_pcm_push_imports_a_csv_and_reports_rejected_rows(intake: Intake, tmp_path: Path) -> None:
    export = tmp_path / "cola_sede_lima.csv"
    export.write_text(
        "event_id,ticket_id,kind,channel,service_id,issued_at,called_at,finished_at,preferential\n"
        "csv-1,A001,SERVED,PRESENCIAL,RENIEC_DNI_DUPLICADO,{t0},{t1},{t2},no\n"
        "csv-2,A002,ABANDONED,PRESENCIAL,RENIEC_DNI_DUPLICADO,{t0},,{t2},si\n"
        "csv-3,A003,SERVED,PRESENCIAL,RENIEC_DNI_DUPLICADO,{t0},mañana,{t2},no\n"
        "csv-4,A004,SERVED,FAX,RENIEC_DNI_DUPLICADO,{t0},{t1},{t2},no\n".format(
            t0=stamp(1800).ToDatetime().isoformat() + "+00:00",
            t1=stamp(1200).ToDatetime().isoformat() + "+00:00",
            t2=stamp(600).ToDatetime().isoformat() + "+00:00",
        )
    )
    report = tmp_path / "rejected.csv"
    command = [
        sys.executable,
        "-m",
        "pcm_intake.push_csv",
        "attentions",
        str(export),
        "--entity",
        "RENIEC",
        "--target",
        intake.target,
        "--report",
        str(report),
        "--batch-size",
        "2",
        "--quiet",
    ]
    env = {"PCM_TOKEN": intake.tokens["RENIEC"], "PATH": "/usr/bin:/bin"}
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 1, first.stderr
    assert "4 rows: 2 stored, 0 duplicates, 2 refused" in first.stdout
    rows = list(csv.reader(report.open()))
    assert rows[0] == ["row", "event_id", "field", "reason"]
    assert rows[1] == ["4", "csv-3", "called_at", "not an ISO 8601 time: 'mañana'"]
    assert rows[2][:3] == ["5", "csv-4", "channel"]
    assert rows[2][3].startswith("unknown channel 'FAX'")
    arrived = {env.id: env for _, env in intake.on_topic(minimum=2)}
    assert arrived["csv-2"].attention.preferential is True
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert "4 rows: 0 stored, 2 duplicates, 2 refused" in again.stdout


def test_tls_is_supported_by_configuration(
    isolated_settings: Settings, intake: Intake, tmp_path: Path
) -> None:
    certificate, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    overrides = {
        "intake_tls_cert": certificate,
        "intake_tls_key": key,
        "intake_address": "127.0.0.1:0",
        "token_file": intake.settings.token_file,
    }
    settings = IntakeSettings(**{**isolated_settings.model_dump(), **overrides})
    server, port, kit = create_server(settings)
    server.start()
    try:
        credentials = grpc.ssl_channel_credentials(certificate.read_bytes())
        secure = intake_service_pb2_grpc.IntakeServiceStub(
            grpc.secure_channel(f"localhost:{port}", credentials)
        )
        response = secure.PushAttentions(
            intake_service_pb2.PushAttentionsRequest(events=[served_attention()]),
            metadata=intake.auth(),
            timeout=20,
        )
        assert response.result.accepted == 1
        plaintext = intake_service_pb2_grpc.IntakeServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{port}")
        )
        with pytest.raises(grpc.RpcError) as refused:
            plaintext.PushAttentions(
                intake_service_pb2.PushAttentionsRequest(events=[served_attention()]),
                metadata=intake.auth(),
                timeout=5,
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=1).wait()
        kit.close()
