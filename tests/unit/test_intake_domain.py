"""Intake rules without servers: validation reasons, batch sorting, duplicate window, CSV cells."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import attention_pb2, procedure_pb2
from pcm_common.csv_messages import message_from_row
from pcm_common.validation import TimeWindow
from pcm_intake.batch import plan_batch
from pcm_intake.dedupe import DedupeWindow
from pcm_intake.validation import IntakeCatalogue, attention_errors, procedure_errors

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


def problems(event: attention_pb2.AttentionEvent) -> dict[str, str]:
    return {e.field: e.reason for e in attention_errors(event, "RENIEC", CATALOGUE, WINDOW)}


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
    found = {e.field: e.reason for e in procedure_errors(event, "RENIEC", CATALOGUE, WINDOW)}
    assert set(found) == {"service_id", "occurred_at"}
    assert found["occurred_at"] == "before filed_at (negative duration)"


def test_batch_keeps_valid_items_beside_bad_ones_and_flags_repeats() -> None:
    good, bad, repeat = (
        attention(event_id="a"),
        attention(event_id="b", channel="FAX"),
        attention(event_id="a"),
    )
    plan = plan_batch(
        [good, bad, repeat],
        lambda e: attention_errors(e, "RENIEC", CATALOGUE, WINDOW),  # type: ignore[arg-type]
        DedupeWindow(10),
    )
    assert [index for index, _ in plan.accepted] == [0]
    assert plan.duplicates == [2]
    assert [(r.index, r.field) for r in plan.rejections] == [(1, "channel")]
    assert plan.foreign_items == 0


def test_dedupe_window_forgets_released_and_oldest_ids() -> None:
    window = DedupeWindow(capacity=2)
    assert window.claim([("E", "1"), ("E", "2")]) == [True, True]
    window.release([("E", "2")])  # the broker failed: a resend must be new again
    window.confirm([("E", "1")])
    assert window.claim([("E", "1"), ("E", "2")]) == [False, True]
    window.confirm([("E", "2")])
    window.confirm([("E", "3")])  # capacity 2: "1" is forgotten
    assert window.claim([("E", "1"), ("E", "3")]) == [True, False]


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
