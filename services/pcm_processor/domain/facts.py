"""From a decoded envelope to one fact-table row, with the catalogue enrichment (pure).

A row is built by column name (``FactTable.row``, from the table's one declaration in
``pcm_common.domains``) and is a tuple in column order, ready for a columnar insert. Everything a
KPI needs later is put on the row now (bucket starts in local time, the service's target wait, the
channel's digital flag, the procedure's legal term and the business days it took), so KPI
queries never join catalogues and a KPI can be recomputed from the facts alone.

A payload the catalogues cannot make sense of (unknown service, a ticket served without a call
time, ...) raises ``PoisonMessage``: it goes to the dead-letter topic with that reason instead of
stopping the processor or polluting a KPI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from google.protobuf.message import Message
from pcm.monitoring.v1 import envelope_pb2, survey_pb2
from pcm_common.catalogues import BusinessCalendar, Catalogues, Service
from pcm_common.domains import (
    ATTENTION_FACTS,
    COMPLAINT_FACTS,
    PROCEDURE_STAGE_FACTS,
    SURVEY_ANSWER_FACTS,
    SURVEY_COLLECTION_FACTS,
    Row,
)
from pcm_common.kafka.envelope import PoisonMessage
from pcm_common.lifecycle import (
    ATTENTION_TIME_ORDER,
    CALLED_KINDS,
    FINISHED_KINDS,
    PROCEDURE_TIME_ORDER,
    answer_status,
)
from pcm_common.validation import check_chronology

from pcm_processor.domain.buckets import BucketClock, Buckets

_DATETIME_MAX = 2**32 - 1  # ClickHouse DateTime is a UInt32 of unix seconds
_UINT16_MAX = 2**16 - 1
_UINT64_MAX = 2**64 - 1

ATTENTION_KINDS = ATTENTION_FACTS.labels("kind")
PROCEDURE_STAGES = PROCEDURE_STAGE_FACTS.labels("stage")


@dataclass(frozen=True)
class Position:
    """Where a message was read: stored on the fact for traceability and as merge version."""

    partition: int
    offset: int


@dataclass(frozen=True)
class CatalogueView:
    """What mapping needs from the catalogues, indexed once (the hot path runs per event)."""

    channel_digital: Mapping[str, bool]
    services: Mapping[str, Service]
    entity_region: Mapping[str, str]
    calendar: BusinessCalendar
    wait_targets: Mapping[tuple[str, str], int | None]
    """(service, channel) -> target wait in seconds (catalogue rules resolved once)."""
    drivers: tuple[str, ...] = ()
    """Satisfaction driver codes (drivers.yaml): one answer row each per survey response."""
    likert: tuple[int, int] = (1, 5)

    @classmethod
    def of(cls, catalogues: Catalogues) -> CatalogueView:
        return cls(
            channel_digital=MappingProxyType({c.code: c.digital for c in catalogues.channels}),
            services=MappingProxyType({s.service_id: s for s in catalogues.services}),
            entity_region=MappingProxyType({e.entity_id: e.region for e in catalogues.entities}),
            calendar=catalogues.calendar,
            wait_targets=MappingProxyType(
                {
                    (s.service_id, c.code): catalogues.target_wait_s(s, c.code)
                    for s in catalogues.services
                    for c in catalogues.channels
                }
            ),
            drivers=tuple(d.code for d in catalogues.drivers),
            likert=(catalogues.likert.min, catalogues.likert.max),
        )

    def region(self, entity_id: str) -> str:
        region = self.entity_region.get(entity_id)
        if region is None:
            raise PoisonMessage("unknown_entity", f"entity {entity_id!r} is not in the catalogue")
        return region

    def service(self, entity_id: str, service_id: str) -> Service:
        service = self.services.get(service_id)
        if service is None:
            raise PoisonMessage(
                "unknown_service", f"service {service_id!r} is not in the catalogue"
            )
        if not service.is_generic and service.entity_id != entity_id:
            raise PoisonMessage(
                "service_not_offered", f"service {service_id!r} belongs to {service.entity_id!r}"
            )
        return service

    def digital(self, channel: str) -> bool:
        digital = self.channel_digital.get(channel)
        if digital is None:
            raise PoisonMessage("unknown_channel", f"channel {channel!r} is not in the catalogue")
        return digital


def catalogue_maps(catalogues: Catalogues) -> dict[str, dict[tuple[Any, ...], int]]:
    """Catalogue values KPI fields look up by a fact's columns (``fields.Mapped``), so that a
    recomputation applies the catalogue in force, not the one in force when the fact came."""
    return {
        "channel_digital": {(c.code,): int(c.digital) for c in catalogues.channels},
        "target_wait_s": {
            (s.service_id, c.code): catalogues.target_wait_s(s, c.code) or 0
            for s in catalogues.services
            for c in catalogues.channels
        },
        "target_service_s": {
            (s.service_id,): (s.target_service_minutes or 0) * 60 for s in catalogues.services
        },
    }


def catalogue_params(catalogues: Catalogues) -> dict[str, int]:
    """Catalogue numbers KPI fields read as ``fields.Param`` besides kpis.yaml's parameters."""
    return {"SATISFIED_MIN": catalogues.likert.satisfied_min}


@dataclass(frozen=True)
class MappingContext:
    view: CatalogueView
    clock: BucketClock


def seconds(payload: Message, field: str, required: bool) -> int:
    """Unix seconds of a Timestamp field; 0 when unset and optional."""
    if not payload.HasField(field):
        if required:
            raise PoisonMessage("missing_time", f"{field} is required")
        return 0
    value = int(getattr(payload, field).seconds)
    if not 0 < value <= _DATETIME_MAX:
        raise PoisonMessage("time_out_of_range", f"{field}={value} is outside 1970..2106")
    return value


def _check_chronology(payload: Message, order: tuple[str, ...]) -> None:
    """The intake's own time-order rule; the first breach dead-letters the event."""
    for error in check_chronology(payload, order):
        raise PoisonMessage("time_order", f"{error.field}: {error.reason}")


def _required_id(value: str, field: str) -> str:
    if not value:
        raise PoisonMessage("missing_field", f"{field} is required")
    return value


def _entity(envelope: envelope_pb2.EventEnvelope, payload_entity: str) -> str:
    if payload_entity and payload_entity != envelope.entity_id:
        raise PoisonMessage(
            "entity_mismatch",
            f"payload entity {payload_entity!r} != envelope entity {envelope.entity_id!r}",
        )
    return envelope.entity_id


def _bucket_and_source(
    envelope: envelope_pb2.EventEnvelope, position: Position, buckets: Buckets
) -> dict[str, int]:
    """The columns every fact table ends with (``BUCKET_AND_SOURCE_COLUMNS``)."""
    return {
        "hour_start": buckets.hour_start,
        "day_start": buckets.day_start,
        "month_start": buckets.month_start,
        "received_at": envelope.received_at.seconds if envelope.HasField("received_at") else 0,
        "kafka_partition": position.partition,
        "kafka_offset": position.offset,
        "first_copy_version": _UINT64_MAX - position.offset,
    }


def attention_row(
    envelope: envelope_pb2.EventEnvelope, position: Position, ctx: MappingContext
) -> Row:
    event = envelope.attention
    entity = _entity(envelope, event.entity_id)
    ctx.view.region(entity)  # unknown entities are refused for every domain alike
    kind = ATTENTION_KINDS.get(event.kind)
    if kind is None:
        raise PoisonMessage("unknown_kind", f"attention kind {event.kind}")
    service = ctx.view.service(entity, event.service_id)
    ctx.view.digital(event.channel)  # validates the channel code
    target_wait_s = ctx.view.wait_targets[(service.service_id, event.channel)]
    if target_wait_s is None:
        raise PoisonMessage("no_wait_target", f"service {service.service_id!r} has no target wait")
    issued = seconds(event, "issued_at", required=True)
    called = seconds(event, "called_at", required=event.kind in CALLED_KINDS)
    finished = seconds(event, "finished_at", required=event.kind in FINISHED_KINDS)
    _check_chronology(event, ATTENTION_TIME_ORDER)
    buckets = ctx.clock.buckets(issued)
    return ATTENTION_FACTS.row(
        entity_id=entity,
        event_id=_required_id(event.event_id, "event_id"),
        ticket_id=_required_id(event.ticket_id, "ticket_id"),
        kind=kind,
        channel=event.channel,
        service_id=event.service_id,
        office_id=event.office_id,
        preferential=int(event.preferential),
        digital=int(ctx.view.digital(event.channel)),
        target_wait_s=target_wait_s,
        target_service_s=(service.target_service_minutes or 0) * 60,
        issued_at=issued,
        called_at=called,
        finished_at=finished,
        **_bucket_and_source(envelope, position, buckets),
    )


def procedure_row(
    envelope: envelope_pb2.EventEnvelope, position: Position, ctx: MappingContext
) -> Row:
    event = envelope.procedure_stage
    entity = _entity(envelope, event.entity_id)
    region = ctx.view.region(entity)
    stage = PROCEDURE_STAGES.get(event.stage)
    if stage is None:
        raise PoisonMessage("unknown_stage", f"procedure stage {event.stage}")
    service = ctx.view.service(entity, event.service_id)
    if service.legal_term_business_days is None:
        raise PoisonMessage("no_legal_term", f"service {service.service_id!r} has no legal term")
    ctx.view.digital(event.channel)  # validates the channel code
    filed = seconds(event, "filed_at", required=True)
    occurred = seconds(event, "occurred_at", required=True)
    _check_chronology(event, PROCEDURE_TIME_ORDER)
    buckets = ctx.clock.buckets(occurred)
    # Business days counted from the day after filing, in local dates and the entity's region.
    elapsed = ctx.view.calendar.business_days_between(
        ctx.clock.local_date(filed), buckets.local_date, region
    )
    return PROCEDURE_STAGE_FACTS.row(
        entity_id=entity,
        event_id=_required_id(event.event_id, "event_id"),
        procedure_id=_required_id(event.procedure_id, "procedure_id"),
        service_id=event.service_id,
        stage=stage,
        channel=event.channel,
        unit_id=event.unit_id,
        sequence=event.sequence,
        filed_at=filed,
        occurred_at=occurred,
        legal_term_days=min(service.legal_term_business_days, _UINT16_MAX),
        business_days_elapsed=min(max(elapsed, 0), _UINT16_MAX),
        office_id=event.office_id,
        **_bucket_and_source(envelope, position, buckets),
    )


COMPLAINT_STAGES = COMPLAINT_FACTS.labels("stage")
COMPLAINT_ANSWERS = frozenset({"ANSWERED", "RESOLVED_AT_DESK"})
"""Stages that answer a complaint (the complaints service's lifecycle)."""
DATED_BY_DUE_DATE = frozenset({"ANSWERED", "OVERDUE"})
"""Term outcomes: an answer or the platform's OVERDUE event counts in the period its complaint
fell due (the within-term KPIs are about the complaints due in a period). A desk resolution is
settled at filing and stays in its filing period."""


def complaint_row(
    envelope: envelope_pb2.EventEnvelope, position: Position, ctx: MappingContext
) -> Row:
    event = envelope.complaint
    entity = _entity(envelope, event.entity_id)
    region = ctx.view.region(entity)
    stage = COMPLAINT_STAGES.get(event.stage)
    if stage is None:
        raise PoisonMessage("unknown_stage", f"complaint stage {event.stage}")
    filed = seconds(event, "filed_at", required=True)
    occurred = seconds(event, "occurred_at", required=True)
    try:
        due_on = dt.date.fromisoformat(event.due_on)
    except ValueError:
        # Only the complaints service publishes this topic, and it always sets the due date.
        raise PoisonMessage("missing_due_date", f"due_on={event.due_on!r}") from None
    occurred_on = ctx.clock.local_date(occurred)
    answered = stage in COMPLAINT_ANSWERS
    to_answer = 0
    if answered:
        filed_on = ctx.clock.local_date(filed)
        to_answer = ctx.view.calendar.business_days_between(filed_on, occurred_on, region)
    if stage in DATED_BY_DUE_DATE:
        buckets = ctx.clock.buckets(ctx.clock.period_of(due_on, "DAY"))
    else:
        buckets = ctx.clock.buckets(occurred)
    return COMPLAINT_FACTS.row(
        entity_id=entity,
        event_id=_required_id(event.event_id, "event_id"),
        complaint_id=_required_id(event.complaint_id, "complaint_id"),
        stage=stage,
        channel=event.channel,
        service_id=event.service_id,
        driver=event.driver,
        category=event.category,
        filed_at=filed,
        occurred_at=occurred,
        due_on=due_on,
        term_business_days=min(event.term_business_days, _UINT16_MAX),
        answer_business_days=min(max(to_answer, 0), _UINT16_MAX),
        on_time=int(answered and occurred_on <= due_on),
        **_bucket_and_source(envelope, position, buckets),
    )


def survey_collection_row(
    envelope: envelope_pb2.EventEnvelope, position: Position, ctx: MappingContext
) -> Row:
    """A collection, dated by the end of its period (the surveys service checked its counts)."""
    event = envelope.survey_collection
    entity = _entity(envelope, event.entity_id)
    ctx.view.region(entity)  # unknown entities are refused for every domain alike
    start = seconds(event, "period_start", required=True)
    end = seconds(event, "period_end", required=True)
    return SURVEY_COLLECTION_FACTS.row(
        entity_id=entity,
        event_id=_required_id(event.event_id, "event_id"),
        collection_id=_required_id(event.collection_id, "collection_id"),
        service_id=event.service_id,
        channel=event.channel,
        stage=event.stage,
        period_start=start,
        period_end=end,
        interactions=event.interactions,
        offered=event.offered,
        responses=event.responses,
        **_bucket_and_source(envelope, position, ctx.clock.buckets(end)),
    )


OVERALL = "OVERALL"
"""The ``driver`` of the overall-satisfaction question's answer row."""
ANSWER_STATUSES: Mapping[int, str] = {
    int(number): label.removeprefix("ANSWER_STATUS_")
    for label, number in survey_pb2.AnswerStatus.items()
}


def survey_answer_rows(
    envelope: envelope_pb2.EventEnvelope, position: Position, ctx: MappingContext
) -> tuple[Row, ...]:
    """One row per question of a response, every catalogue driver and the overall question, so
    that a question not asked is a NOT_ASKED row (never a missing or a low score)."""
    event = envelope.survey_response
    entity = _entity(envelope, event.entity_id)
    ctx.view.region(entity)  # unknown entities are refused for every domain alike
    answered = seconds(event, "answered_at", required=True)
    answers = {score.driver: score for score in event.scores}
    unknown = set(answers) - set(ctx.view.drivers)
    if unknown:
        raise PoisonMessage("unknown_driver", f"drivers {sorted(unknown)} are not in the catalogue")
    if event.HasField("overall"):
        answers[OVERALL] = event.overall
    common = {
        "entity_id": entity,
        "event_id": _required_id(event.event_id, "event_id"),
        "response_id": _required_id(event.response_id, "response_id"),
        "collection_id": event.collection_id,
        "service_id": event.service_id,
        "channel": event.channel,
        "answered_at": answered,
        **_bucket_and_source(envelope, position, ctx.clock.buckets(answered)),
    }
    return tuple(
        SURVEY_ANSWER_FACTS.row(driver=driver, **_answer(answers.get(driver), ctx), **common)
        for driver in (*ctx.view.drivers, OVERALL)
    )


def _answer(answer: survey_pb2.DriverScore | None, ctx: MappingContext) -> dict[str, Any]:
    if answer is None:
        return {"status": "NOT_ASKED", "score": 0}
    status = answer_status(answer)
    if status != survey_pb2.ANSWER_STATUS_SCORED:
        return {"status": ANSWER_STATUSES[status], "score": 0}
    low, high = ctx.view.likert
    if not low <= answer.score <= high:
        raise PoisonMessage("score_out_of_range", f"score {answer.score} outside {low}..{high}")
    return {"status": "SCORED", "score": answer.score}
