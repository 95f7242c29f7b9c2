"""The push-service kit through the intake's real gRPC server, with the in-memory producer and
ledger: every step of a push call, in seconds, without Kafka or PostgreSQL.

The same calls run against the real broker and ledger in tests/integration/test_intake.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from pcm.monitoring.v1 import (
    attention_pb2,
    common_pb2,
    envelope_pb2,
    intake_service_pb2,
    intake_service_pb2_grpc,
)
from pcm_common.auth import Role, TokenStore
from pcm_common.grpc_server import error_reason
from pcm_common.kafka.memory import InMemoryProducer
from pcm_common.kafka.producer import Record
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.push import Claim, LedgerUnavailable
from pcm_intake.client import IntakeClient
from pcm_intake.server import create_server
from pcm_intake.settings import IntakeSettings
from pcm_testkit.events import attention
from prometheus_client import REGISTRY

ATTENTION_TOPIC = topic_for_domain("attention").name()
SERVED = attention_pb2.ATTENTION_EVENT_KIND_TICKET_SERVED


class GatedProducer(InMemoryProducer):
    """Holds every send until the test opens the gate (a call still producing)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def send_and_wait(self, topic: str, records: Sequence[Record]) -> None:
        self.entered.set()
        self.gate.wait(10)
        super().send_and_wait(topic, records)


@dataclass
class Intake:
    target: str
    producer: InMemoryProducer
    tokens: dict[str, str]
    store: TokenStore
    kit: Any

    def push(self, events: Sequence[attention_pb2.AttentionEvent], entity: str = "RENIEC") -> Any:
        stub = intake_service_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(self.target))
        request = intake_service_pb2.PushAttentionsRequest(events=events)
        return stub.PushAttentions(request, metadata=self.auth(entity), timeout=20).result

    def auth(self, holder: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.tokens[holder]}"),)

    def stored(self) -> list[envelope_pb2.EventEnvelope]:
        return [
            envelope_pb2.EventEnvelope.FromString(value)
            for _, value in self.producer.records(ATTENTION_TOPIC)
        ]


@contextmanager
def start_intake(tmp_path: Path, producer: InMemoryProducer, **overrides: Any) -> Iterator[Intake]:
    token_file = tmp_path / "tokens.json"
    settings = IntakeSettings(
        token_file=token_file,
        intake_address="127.0.0.1:0",
        intake_metrics_port=0,
        push_ledger="memory",
        token_reload_interval_s=0,
        **overrides,
    )
    store = TokenStore(token_file, reload_interval_s=0)
    tokens = {entity: store.issue(entity) for entity in ("RENIEC", "SUNARP", "MUNI-MIRAFLORES")}
    tokens["national"] = store.issue("PCM-SGP", Role.NATIONAL)
    tokens["operator"] = store.issue("OPERATIONS", Role.OPERATOR)
    server, port, kit = create_server(settings, producer)
    server.start()
    try:
        yield Intake(f"127.0.0.1:{port}", producer, tokens, store, kit)
    finally:
        server.stop(grace=0).wait()
        kit.close()


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    with start_intake(
        tmp_path, InMemoryProducer(), intake_rate_limit_events_per_s=5_000
    ) as running:
        yield running


def refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_accepted_events_are_stored_in_envelopes_keyed_by_entity(intake: Intake) -> None:
    events = [attention() for _ in range(3)]
    result = intake.push(events)
    assert result.accepted == 3
    records = intake.producer.records(ATTENTION_TOPIC)
    assert [key for key, _ in records] == [b"RENIEC"] * 3
    assert [envelope.attention for envelope in intake.stored()] == events
    assert all(envelope.received_at.seconds > 0 for envelope in intake.stored())


def test_batch_keeps_valid_items_beside_bad_ones_and_flags_repeats(intake: Intake) -> None:
    good = attention(event_id="a")
    bad = attention(event_id="b", channel="FAX")
    repeat = attention(event_id="a", channel="VIRTUAL")  # same id, other content: the first wins
    result = intake.push([good, bad, repeat])
    assert result.accepted == 1
    assert list(result.duplicate_indexes) == [2]
    assert [(r.index, r.field, r.code) for r in result.rejections] == [
        (1, "channel", common_pb2.REJECTION_CODE_UNKNOWN_CODE)
    ]
    assert [envelope.attention for envelope in intake.stored()] == [good]


def test_a_resend_is_a_duplicate_and_keeps_the_first_content(intake: Intake) -> None:
    first = attention()
    assert intake.push([first]).accepted == 1
    changed = attention_pb2.AttentionEvent()
    changed.CopyFrom(first)
    changed.channel = "VIRTUAL"
    again = intake.push([changed])
    assert (again.accepted, list(again.duplicate_indexes)) == (0, [0])
    assert [envelope.attention for envelope in intake.stored()] == [first]


def test_a_resend_while_the_first_call_produces_is_in_progress(tmp_path: Path) -> None:
    producer = GatedProducer()
    with start_intake(tmp_path, producer) as intake:
        event = attention()
        first: list[Any] = []
        caller = threading.Thread(target=lambda: first.append(intake.push([event])))
        caller.start()
        assert producer.entered.wait(5)
        producer.gate.set()  # later sends pass at once
        # The first call may or may not have confirmed yet: never "accepted" twice.
        second = intake.push([event])
        caller.join(10)
        assert first[0].accepted == 1
        assert second.accepted == 0
        if second.rejections:
            assert [(r.field, r.code) for r in second.rejections] == [
                ("event_id", common_pb2.REJECTION_CODE_IN_PROGRESS)
            ]
        else:
            assert list(second.duplicate_indexes) == [0]
        assert len(intake.stored()) == 1


def test_foreign_events_are_refused_with_a_code_and_never_stored(intake: Intake) -> None:
    foreign = [attention("SUNARP"), attention("SUNARP")]
    error = refused(lambda: intake.push(foreign, "RENIEC"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "ERROR_REASON_FOREIGN_ENTITY"
    mine = attention()
    mixed = intake.push([foreign[0], mine], "RENIEC")
    assert mixed.accepted == 1
    assert [(r.index, r.field, r.code) for r in mixed.rejections] == [
        (0, "entity_id", common_pb2.REJECTION_CODE_FOREIGN_ENTITY)
    ]
    assert [envelope.attention for envelope in intake.stored()] == [mine]


@pytest.mark.parametrize("role", ["national", "operator"])
def test_national_and_operator_credentials_write_no_events(intake: Intake, role: str) -> None:
    event = attention("PCM-SGP" if role == "national" else "OPERATIONS")
    error = refused(lambda: intake.push([event], role))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "ERROR_REASON_ROLE_NOT_ALLOWED"
    assert intake.stored() == []


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "ERROR_REASON_TOKEN_MISSING"),
        ("Basic abc", "ERROR_REASON_TOKEN_MALFORMED"),
        ("Bearer not-a-token", "ERROR_REASON_TOKEN_MALFORMED"),
        ("Bearer pcm_deadbeef_nope", "ERROR_REASON_TOKEN_UNKNOWN"),
    ],
)
def test_bad_credentials_are_unauthenticated_with_a_code(
    intake: Intake, authorization: str | None, reason: str
) -> None:
    stub = intake_service_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(intake.target))
    metadata = () if authorization is None else (("authorization", authorization),)
    request = intake_service_pb2.PushAttentionsRequest(events=[attention()])
    error = refused(lambda: stub.PushAttentions(request, metadata=metadata, timeout=10))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error) == reason
    assert intake.stored() == []


def test_a_revoked_token_is_refused_at_once(intake: Intake) -> None:
    token = intake.store.issue("RENIEC", label="to revoke")
    intake.tokens["revoked"] = token
    intake.store.revoke(token.split("_")[1])
    error = refused(lambda: intake.push([attention()], "revoked"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error) == "ERROR_REASON_TOKEN_REVOKED"


def test_a_batch_over_the_limit_stores_nothing(intake: Intake) -> None:
    error = refused(lambda: intake.push([attention() for _ in range(1_001)]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "ERROR_REASON_BATCH_TOO_LARGE"
    assert intake.stored() == []


def test_over_the_rate_limit_is_resource_exhausted_with_a_retry_hint(intake: Intake) -> None:
    batch = [attention("MUNI-MIRAFLORES") for _ in range(1_000)]
    outcomes = []
    for _ in range(8):  # 8,000 events at once against a 5,000/s budget
        try:
            intake.push(batch, "MUNI-MIRAFLORES")
            outcomes.append("ok")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_reason(error) == "ERROR_REASON_RATE_LIMITED"
            assert dict(error.trailing_metadata() or ())["grpc-retry-pushback-ms"] == "5000"
            outcomes.append("limited")
    assert outcomes[0] == "ok"
    assert "limited" in outcomes


def test_broker_down_is_unavailable_and_the_ids_are_not_remembered(intake: Intake) -> None:
    event = attention()
    intake.producer.available = False
    error = refused(lambda: intake.push([event]))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(error) == "ERROR_REASON_BROKER_UNAVAILABLE"
    assert "nothing was stored" in (error.details() or "")
    intake.producer.available = True
    assert intake.push([event]).accepted == 1  # not remembered as stored while refused


def test_ledger_down_is_unavailable_and_nothing_is_produced(intake: Intake) -> None:
    ledger = intake.kit.sink.ledger
    original = ledger.claim

    def unreachable(*_: Any) -> list[Claim]:
        raise LedgerUnavailable("connection refused")

    ledger.claim = unreachable
    try:
        error = refused(lambda: intake.push([attention()]))
    finally:
        ledger.claim = original
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(error) == "ERROR_REASON_LEDGER_UNAVAILABLE"
    assert intake.stored() == []


def test_undecodable_request_bytes_are_invalid_argument_with_a_reason(intake: Intake) -> None:
    channel = grpc.insecure_channel(intake.target)
    raw = channel.unary_unary(
        "/pcm.monitoring.v1.IntakeService/PushAttentions",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    before = _sample("pcm_intake_undecodable_requests_total")
    error = refused(lambda: raw(b"\xff\xff\xff\xff", metadata=intake.auth("RENIEC"), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "ERROR_REASON_UNDECODABLE_REQUEST"
    assert "not a valid" in (error.details() or "")
    assert _sample("pcm_intake_undecodable_requests_total") == before + 1


def test_text_with_a_nul_character_is_refused_item_by_item(intake: Intake) -> None:
    """No store keeps NUL in text (PostgreSQL refuses it, the book services' calls ended
    UNKNOWN): every push refuses the item naming the field, its neighbours stored."""
    nul, fine = attention(office_id="LIMA\x00CENTRO", desk_id="\x00"), attention()
    result = intake.push([nul, fine])
    assert result.accepted == 1
    assert {(r.index, r.field, r.code) for r in result.rejections} == {
        (0, "office_id", common_pb2.REJECTION_CODE_INVALID_FORMAT),
        (0, "desk_id", common_pb2.REJECTION_CODE_INVALID_FORMAT),
    }
    assert [e.attention.event_id for e in intake.stored()] == [fine.event_id]


def test_answers_stay_bounded_whatever_the_input(intake: Intake) -> None:
    """One refused item with 1 MB strings beside valid ones: the valid ones are stored and the
    answer is small (it was RESOURCE_EXHAUSTED "Sent message larger than max" after storing)."""
    huge = "Ñ" * 500_000
    bad = attention(event_id=huge, channel=huge, service_id=huge, office_id=huge, desk_id=huge)
    result = intake.push([attention(), bad, attention()])
    assert result.accepted == 2
    assert {r.index for r in result.rejections} == {1}
    assert all(len(r.reason) <= 240 and len(r.event_id) <= 128 for r in result.rejections)
    assert result.ByteSize() < 4_000


def test_a_full_batch_of_bad_items_gets_an_answer_smaller_than_the_request_limit(
    intake: Intake,
) -> None:
    garbage = "x" * 1_000
    bad = attention(
        event_id=garbage, ticket_id=garbage, channel=garbage, service_id=garbage, kind=0
    )
    result = intake.push([bad] * 1_000)
    assert result.accepted == 0
    assert len(result.rejections) >= 5_000
    assert result.ByteSize() < 8 * 1024 * 1024


def _sample(name: str) -> float:
    value = REGISTRY.get_sample_value(
        name, {"method": "/pcm.monitoring.v1.IntakeService/PushAttentions"}
    )
    return value or 0.0


def test_the_client_sends_items_in_progress_again_until_their_outcome_is_known(
    tmp_path: Path,
) -> None:
    producer = GatedProducer()
    with start_intake(tmp_path, producer) as intake:
        event, other = attention(), attention()
        first: list[Any] = []

        def push_first() -> None:
            first.append(intake.push([event]))

        caller = threading.Thread(target=push_first)
        caller.start()
        assert producer.entered.wait(5)
        client = IntakeClient(intake.target, intake.tokens["RENIEC"], in_progress_pause_s=0.05)
        # While the first call holds its claim, the client's resend is "in progress"; once the
        # gate opens it learns the outcome (duplicate); its other item is stored meanwhile.
        threading.Timer(0.3, producer.gate.set).start()
        result = client.push_attentions([other, event])
        caller.join(10)
        client.close()
        assert first[0].accepted == 1
        assert result.accepted == 1
        assert list(result.duplicate_indexes) == [1]
        assert list(result.rejections) == []
        assert sorted(e.attention.event_id for e in intake.stored()) == sorted(
            [event.event_id, other.event_id]
        )
