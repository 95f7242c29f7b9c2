"""Mapping envelopes to fact rows with catalogue enrichment, and what counts as poison."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import attention_pb2, envelope_pb2, survey_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.kafka.envelope import PoisonMessage, decode, wrap
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position
from pcm_processor.domain.registry import ATTENTION, PROCEDURE_STAGE, SURVEY_RESPONSE
from pcm_testkit.events import (
    attention_event,
    enveloped,
    local_time,
    procedure_stage_event,
    survey_response,
)


@pytest.fixture(scope="module")
def ctx(catalogues: Catalogues) -> MappingContext:
    return MappingContext(CatalogueView.of(catalogues), BucketClock("America/Lima"))


def as_dict(columns: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(columns, row, strict=True))


def test_served_ticket_row_carries_buckets_and_catalogue_enrichment(ctx: MappingContext) -> None:
    issued = local_time(2025, 2, 28, 23, 50)  # last minutes of February in Lima
    envelope = attention_event(
        "RENIEC",
        "T1",
        "TICKET_SERVED",
        "RENIEC_DNI_DUPLICADO",
        "VIRTUAL",
        issued,
        issued + 600,
        issued + 900,
        preferential=True,
    )
    row = as_dict(ATTENTION.columns, ATTENTION.map(envelope, Position(3, 42), ctx))
    assert row["kind"] == "TICKET_SERVED"
    assert row["target_wait_s"] == 20 * 60  # services.csv: 20 minutes
    assert row["digital"] == 1  # channels.yaml: VIRTUAL is digital
    assert row["preferential"] == 1
    assert (row["issued_at"], row["called_at"], row["finished_at"]) == (
        issued,
        issued + 600,
        issued + 900,
    )
    # Buckets follow issued_at in local time although the ticket was served in March.
    assert row["day_start"] == local_time(2025, 2, 28)
    assert row["month_start"] == local_time(2025, 2, 1)
    assert row["hour_start"] == local_time(2025, 2, 28, 23)
    assert (row["kafka_partition"], row["kafka_offset"]) == (3, 42)


def test_procedure_row_counts_business_days_from_the_day_after_filing(
    ctx: MappingContext,
) -> None:
    filed = local_time(2025, 3, 10, 10)  # Monday
    resolved = local_time(2025, 3, 24, 9)  # Monday two weeks later
    envelope = procedure_stage_event(
        "RENIEC", "EXP-1", "RESOLVED", "RENIEC_DNI_DUPLICADO", "PRESENCIAL", filed, resolved, 4
    )
    row = as_dict(PROCEDURE_STAGE.columns, PROCEDURE_STAGE.map(envelope, Position(0, 1), ctx))
    assert row["stage"] == "RESOLVED"
    assert row["legal_term_days"] == 7
    # 11-14 March (4) + 17-21 March (5) + 24 March (1): weekends are not business days.
    assert row["business_days_elapsed"] == 10
    assert row["day_start"] == local_time(2025, 3, 24)
    assert row["sequence"] == 4


def test_holidays_are_not_business_days(ctx: MappingContext) -> None:
    filed = local_time(2025, 7, 25, 12)  # Friday before Fiestas Patrias (28 and 29 July)
    envelope = procedure_stage_event(
        "RENIEC",
        "EXP-2",
        "RESOLVED",
        "RENIEC_DNI_DUPLICADO",
        "PRESENCIAL",
        filed,
        local_time(2025, 7, 31, 12),
    )
    row = as_dict(PROCEDURE_STAGE.columns, PROCEDURE_STAGE.map(envelope, Position(0, 1), ctx))
    assert row["business_days_elapsed"] == 2  # only 30 and 31 July


def test_filing_late_at_night_counts_in_local_dates(ctx: MappingContext) -> None:
    filed = local_time(2025, 3, 10, 23, 30)  # Monday night in Lima, already Tuesday in UTC
    envelope = procedure_stage_event(
        "RENIEC",
        "EXP-3",
        "RESOLVED",
        "RENIEC_DNI_DUPLICADO",
        "PRESENCIAL",
        filed,
        local_time(2025, 3, 11, 8),
    )
    row = as_dict(PROCEDURE_STAGE.columns, PROCEDURE_STAGE.map(envelope, Position(0, 1), ctx))
    assert row["business_days_elapsed"] == 1


def _attention(**overrides: Any) -> envelope_pb2.EventEnvelope:
    issued = local_time(2025, 3, 10, 9)
    fields: dict[str, Any] = {
        "event_id": "E1",
        "entity_id": "RENIEC",
        "ticket_id": "T1",
        "kind": attention_pb2.ATTENTION_EVENT_KIND_TICKET_SERVED,
        "channel": "PRESENCIAL",
        "service_id": "RENIEC_DNI_DUPLICADO",
        "issued_at": Timestamp(seconds=issued),
        "called_at": Timestamp(seconds=issued + 60),
        "finished_at": Timestamp(seconds=issued + 120),
    }
    fields.update(overrides)
    return wrap(attention_pb2.AttentionEvent(**fields), "RENIEC", Timestamp(seconds=issued))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"service_id": "NO_SUCH_SERVICE"}, "unknown_service"),
        ({"service_id": "SUNARP_CERTIFICADO_LITERAL"}, "service_not_offered"),
        ({"channel": "TELEGRAPH"}, "unknown_channel"),
        ({"kind": 0}, "unknown_kind"),
        ({"kind": 99}, "unknown_kind"),
        ({"entity_id": "ONP"}, "entity_mismatch"),
        ({"called_at": None}, "missing_time"),
        ({"called_at": Timestamp(seconds=local_time(2025, 3, 10, 8))}, "time_order"),
        ({"issued_at": Timestamp(seconds=-5)}, "time_out_of_range"),
        ({"ticket_id": ""}, "missing_field"),
    ],
)
def test_semantically_unusable_attention_is_poison(
    ctx: MappingContext, overrides: dict[str, Any], reason: str
) -> None:
    fields = {k: v for k, v in overrides.items() if v is not None}
    envelope = _attention(**fields)
    for name, value in overrides.items():
        if value is None:
            envelope.attention.ClearField(name)
    with pytest.raises(PoisonMessage) as caught:
        ATTENTION.map(envelope, Position(0, 0), ctx)
    assert caught.value.reason == reason


def test_unknown_entity_and_missing_legal_term_are_poison(ctx: MappingContext) -> None:
    ghost = _attention(entity_id="")
    ghost.entity_id = "GHOST"
    with pytest.raises(PoisonMessage, match="unknown_entity"):
        ATTENTION.map(ghost, Position(0, 0), ctx)
    at = local_time(2025, 3, 10, 9)
    no_term = procedure_stage_event("RENIEC", "EXP", "FILED", "ORIENTACION", "PRESENCIAL", at, at)
    with pytest.raises(PoisonMessage, match="no_legal_term"):
        PROCEDURE_STAGE.map(no_term, Position(0, 0), ctx)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"\xff\xfe not protobuf", "undecodable"),
    ],
)
def test_undecodable_values_are_poison(value: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        decode(value, "attention")
    assert caught.value.reason == reason


def test_unknown_schema_version_and_wrong_payload_are_poison() -> None:
    future = _attention()
    future.schema_version = 99
    with pytest.raises(PoisonMessage, match="unknown_schema_version"):
        decode(future.SerializeToString(), "attention")
    at = local_time(2025, 3, 10, 9)
    stage = procedure_stage_event(
        "RENIEC", "EXP", "FILED", "RENIEC_DNI_DUPLICADO", "PRESENCIAL", at, at
    )
    with pytest.raises(PoisonMessage, match="wrong_payload"):
        decode(stage.SerializeToString(), "attention")


def _response(**overrides: Any) -> envelope_pb2.EventEnvelope:
    return enveloped(
        survey_response("RENIEC", answered_at=local_time(2025, 3, 10, 12), **overrides)
    )


def test_a_survey_response_is_one_row_per_question_with_its_status(
    ctx: MappingContext, catalogues: Catalogues
) -> None:
    status = survey_pb2.AnswerStatus
    envelope = _response(
        scores=[
            survey_pb2.DriverScore(driver="TIEMPO", score=2, status=status.ANSWER_STATUS_SCORED),
            survey_pb2.DriverScore(driver="INFORMACION", status=status.ANSWER_STATUS_SKIPPED),
            survey_pb2.DriverScore(driver="RESULTADO", status=status.ANSWER_STATUS_DOES_NOT_APPLY),
            survey_pb2.DriverScore(driver="CONFIANZA", score=4),  # an older client: no status
            survey_pb2.DriverScore(driver="ACCESIBILIDAD", score=0),  # an older client's skip
        ],
        comment="Me llamo Juana Pérez, DNI 12345678",
    )
    rows = [
        as_dict(SURVEY_RESPONSE.columns, row)
        for row in SURVEY_RESPONSE.rows(envelope, Position(0, 7), ctx)
    ]
    answers = {row["driver"]: (row["status"], row["score"]) for row in rows}
    assert answers == {
        "TIEMPO": ("SCORED", 2),
        "INFORMACION": ("SKIPPED", 0),
        "RESULTADO": ("DOES_NOT_APPLY", 0),
        "CONFIANZA": ("SCORED", 4),
        "ACCESIBILIDAD": ("SKIPPED", 0),
        "TRATO_PROFESIONAL": ("NOT_ASKED", 0),  # not in the questionnaire
        "OVERALL": ("NOT_ASKED", 0),
    }
    assert len(rows) == len(catalogues.drivers) + 1
    assert {row["response_id"] for row in rows} == {envelope.survey_response.response_id}
    assert all("Juana" not in str(value) for row in rows for value in row.values())
    with pytest.raises(TypeError, match="rows"):
        SURVEY_RESPONSE.map(envelope, Position(0, 7), ctx)


@pytest.mark.parametrize(
    ("score", "reason"),
    [
        (survey_pb2.DriverScore(driver="PUNTUALIDAD", score=3), "unknown_driver"),
        (survey_pb2.DriverScore(driver="TIEMPO", score=9), "score_out_of_range"),
    ],
)
def test_an_unusable_survey_answer_is_poison(
    ctx: MappingContext, score: survey_pb2.DriverScore, reason: str
) -> None:
    with pytest.raises(PoisonMessage) as caught:
        SURVEY_RESPONSE.rows(_response(scores=[score]), Position(0, 0), ctx)
    assert caught.value.reason == reason
