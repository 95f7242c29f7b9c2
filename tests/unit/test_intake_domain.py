"""Intake rules without servers: validation reasons and codes, the duplicate window, CSV cells."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import attention_pb2, procedure_pb2
from pcm_common.csv_messages import message_from_row
from pcm_common.push import Claim, ItemContext, MemoryLedger, item_errors
from pcm_common.validation import (
    FOREIGN_ENTITY,
    INVALID_FORMAT,
    OUT_OF_RANGE,
    REQUIRED,
    TIME_ORDER,
    UNKNOWN_CODE,
    FieldError,
    TimeWindow,
)
from pcm_intake.validation import AttentionRules, IntakeCatalogue, ProcedureStageRules

NOW = 1_764_000_000.0
WINDOW = TimeWindow(now_s=NOW, future_skew_s=300, max_age_s=400 * 86_400)
CATALOGUE = IntakeCatalogue(
    channels=frozenset({"PRESENCIAL", "VIRTUAL", "TELEFONICO", "MOVIL"}),
    attention_services={"RENIEC": frozenset({"RENIEC_DNI_DUPLICADO", "ORIENTACION"})},
    procedure_services={"RENIEC": frozenset({"RENIEC_DNI_DUPLICADO"})},
)


def at(offset_s: float) -> Timestamp:
    return Timestamp(seconds=int(NOW + offset_s))


def attention(**overrides: object) -> attention_pb2.AttentionEvent:
    fields: dict[str, object] = {
        "event_id": "e1",
        "entity_id": "RENIEC",
        "ticket_id": "T1",
        "kind": attention_pb2.ATTENTION_EVENT_KIND_TICKET_SERVED,
        "channel": "PRESENCIAL",
        "service_id": "RENIEC_DNI_DUPLICADO",
        "issued_at": at(-900),
        "called_at": at(-600),
        "finished_at": at(-300),
    }
    fields.update(overrides)
    return attention_pb2.AttentionEvent(**fields)  # type: ignore[arg-type]


ITEM = ItemContext("RENIEC", WINDOW)


def errors(event: attention_pb2.AttentionEvent) -> list[FieldError]:
    """What the push kit finds wrong with one attention pushed by RENIEC."""
    return item_errors(event, AttentionRules(CATALOGUE), ITEM)


def problems(event: attention_pb2.AttentionEvent) -> dict[str, str]:
    return {e.field: e.reason for e in errors(event)}


def codes(event: attention_pb2.AttentionEvent) -> dict[str, int]:
    return {e.field: e.code for e in errors(event)}


def test_a_complete_served_ticket_is_valid() -> None:
    assert problems(attention()) == {}


def test_each_rule_names_its_field_and_reason() -> None:
    assert problems(attention(called_at=at(-1000))) == {
        "called_at": "before issued_at (negative duration)"
    }
    assert problems(attention(finished_at=at(-700))) == {
        "finished_at": "before called_at (negative duration)"
    }
    assert "in the future" in problems(attention(finished_at=at(3600)))["finished_at"]
    assert (
        "older than 400 days"
        in problems(attention(issued_at=at(-401 * 86_400), called_at=at(-401 * 86_400 + 60)))[
            "issued_at"
        ]
    )
    assert problems(attention(ticket_id="")) == {"ticket_id": "required"}
    assert (
        "unknown service 'SUNAT_RUC'" in problems(attention(service_id="SUNAT_RUC"))["service_id"]
    )
    assert problems(
        attention(
            kind=attention_pb2.ATTENTION_EVENT_KIND_TICKET_CALLED, called_at=None, finished_at=None
        )
    ) == {"called_at": "required"}
    assert "belongs to 'SUNARP'" in problems(attention(entity_id="SUNARP"))["entity_id"]
    assert "no spaces" in problems(attention(event_id="a b"))["event_id"]
    assert problems(attention(preferential_reason=attention_pb2.PREFERENTIAL_REASON_PREGNANT)) == {
        "preferential_reason": "set while preferential is false"
    }


def test_each_refusal_carries_a_machine_readable_code() -> None:
    assert codes(attention(called_at=at(-1000))) == {"called_at": TIME_ORDER}
    assert codes(attention(ticket_id="")) == {"ticket_id": REQUIRED}
    assert codes(attention(service_id="SUNAT_RUC")) == {"service_id": UNKNOWN_CODE}
    assert codes(attention(entity_id="SUNARP")) == {"entity_id": FOREIGN_ENTITY}
    assert codes(attention(finished_at=at(3600))) == {"finished_at": OUT_OF_RANGE}


def test_invalid_timestamps_are_refused() -> None:
    """Protobuf parses any nanos; an instant needs 0..999,999,999 (contract fix)."""
    for nanos in (-1, 2_000_000_000):
        stamp = Timestamp(seconds=int(NOW - 600), nanos=nanos)
        found = {e.field: (e.code, e.reason) for e in errors(attention(called_at=stamp))}
        assert found["called_at"][0] == INVALID_FORMAT
        assert f"nanos {nanos} outside 0..999,999,999" == found["called_at"][1]
    year_10000 = Timestamp(seconds=253_402_300_800)
    assert codes(attention(finished_at=year_10000))["finished_at"] == INVALID_FORMAT


def test_reasons_never_echo_unbounded_input() -> None:
    huge = "X" * 1_000_000
    found = errors(attention(channel=huge, service_id=huge, office_id=huge, ticket_id=huge))
    assert {e.field for e in found} == {"channel", "service_id", "office_id", "ticket_id"}
    assert all(len(e.bounded().reason) <= 240 for e in found)
    assert all(len(e.reason) < 400 for e in found)


def test_procedure_must_be_a_tupa_procedure_and_after_filing() -> None:
    event = procedure_pb2.ProcedureStageEvent(
        event_id="p1",
        entity_id="RENIEC",
        procedure_id="EXP-1",
        service_id="ORIENTACION",
        stage=procedure_pb2.PROCEDURE_STAGE_RESOLVED,
        channel="VIRTUAL",
        filed_at=at(-86_400),
        occurred_at=at(-90_000),
    )
    found = {e.field: e.reason for e in item_errors(event, ProcedureStageRules(CATALOGUE), ITEM)}
    assert set(found) == {"service_id", "occurred_at"}
    assert found["occurred_at"] == "before filed_at (negative duration)"


def test_a_procedure_filed_long_ago_may_be_resolved_today() -> None:
    """Appeals and pensions take years: only the stage's own time is bounded (contract fix)."""
    event = procedure_pb2.ProcedureStageEvent(
        event_id="p2",
        entity_id="RENIEC",
        procedure_id="EXP-2",
        service_id="RENIEC_DNI_DUPLICADO",
        stage=procedure_pb2.PROCEDURE_STAGE_RESOLVED,
        channel="VIRTUAL",
        filed_at=at(-420 * 86_400),
        occurred_at=at(-60),
    )
    rules = ProcedureStageRules(CATALOGUE)
    assert item_errors(event, rules, ITEM) == []
    event.occurred_at.CopyFrom(at(-401 * 86_400))
    found = {e.field: e.reason for e in item_errors(event, rules, ITEM)}
    assert found == {"occurred_at": "older than 400 days"}


def test_memory_ledger_forgets_released_and_oldest_ids() -> None:
    window = MemoryLedger(capacity=2)
    assert window.claim("attention", "E", ["1", "2"]) == [Claim.NEW, Claim.NEW]
    assert window.claim("attention", "E", ["2"]) == [Claim.IN_PROGRESS]  # not confirmed yet
    window.release("attention", "E", ["2"])  # the broker failed: a resend must be new again
    window.confirm("attention", "E", ["1"])
    assert window.claim("attention", "E", ["1", "2"]) == [Claim.DUPLICATE, Claim.NEW]
    window.confirm("attention", "E", ["2"])
    window.confirm("attention", "E", ["3"])  # capacity 2: "1" is forgotten
    assert window.claim("attention", "E", ["1", "3"]) == [Claim.NEW, Claim.DUPLICATE]
    assert window.claim("procedure_stage", "E", ["3"]) == [Claim.NEW]  # ids are per domain


def test_csv_cells_become_typed_fields_or_field_errors() -> None:
    row = {
        "event_id": "x1",
        "kind": "SERVED",
        "preferential": "sí",
        "issued_at": "2026-11-20T09:15:00",
        "called_at": "ayer",
        "unknown_column": "ignored",
    }
    message, errors = message_from_row(row, attention_pb2.AttentionEvent, ZoneInfo("America/Lima"))
    assert message.kind == attention_pb2.ATTENTION_EVENT_KIND_TICKET_SERVED
    assert message.preferential is True
    assert message.issued_at.ToSeconds() == 1_795_184_100  # 2026-11-20 09:15 Lima = 14:15 UTC
    assert [(e.field, e.reason) for e in errors] == [("called_at", "not an ISO 8601 time: 'ayer'")]


def test_time_window_accepts_now() -> None:
    assert TimeWindow(time.time(), 300, 86_400).problem(time.time()) is None
