"""One builder per event domain: a realistic payload that passes the intake's validation, with
any field overridable by keyword.

Tests state only what matters to them (``attention(kind="TICKET_ABANDONED", called_at=None)``)
and get plausible values for everything else. Overrides take the field's own type, plus:

- enum fields accept the catalogue label (``"TICKET_SERVED"``, ``"RESOLVED"``, ``"MONTH"``);
- timestamp fields accept unix seconds or an aware ``datetime``;
- ``None`` leaves a field unset (``called_at=None`` for a ticket never called).

``BUILDERS`` maps every domain of ``pcm_common.domains.EVENT_DOMAINS`` to its builder; a unit
test (tests/unit/test_testkit.py) fails when a domain has none, so a new domain comes with one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import (
    attention_pb2,
    complaint_pb2,
    envelope_pb2,
    indicator_pb2,
    procedure_pb2,
    survey_pb2,
)
from pcm_common.domains import domain_of
from pcm_common.kafka.envelope import occurrence_time, wrap

M = TypeVar("M", bound=Message)
Moment = int | float | dt.datetime | Timestamp
Builder = Callable[..., Message]

LIMA = "America/Lima"
# Default (attention service, TUPA procedure) of an entity, from catalogues/services.csv; every
# other entity offers the generic ones (entity "*").
_OWN_SERVICES = {"RENIEC": ("RENIEC_DNI_DUPLICADO", "RENIEC_DNI_DUPLICADO")}
_GENERIC_SERVICES = ("ORIENTACION", "ACCESO_INFORMACION")
# Codes of catalogues/drivers.yaml with a plausible answer on the 1..5 scale.
_TYPICAL_SCORES = {
    "TRATO_PROFESIONAL": 5,
    "INFORMACION": 4,
    "TIEMPO": 3,
    "ACCESIBILIDAD": 4,
    "RESULTADO": 4,
    "CONFIANZA": 4,
}


def timestamp(moment: Moment) -> Timestamp:
    """A Timestamp from unix seconds, an aware datetime or a Timestamp (returned as is)."""
    if isinstance(moment, Timestamp):
        return moment
    if isinstance(moment, dt.datetime):
        result = Timestamp()
        result.FromDatetime(moment)
        return result
    return Timestamp(seconds=int(moment))


def ago(seconds: float) -> Timestamp:
    """``seconds`` before now (negative: in the future); events the intake accepts are recent."""
    return Timestamp(seconds=int(time.time() - seconds))


def local_time(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, zone: str = LIMA
) -> int:
    """Unix seconds of a wall-clock time in ``zone``: tests write times as people read them."""
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp())


def unique(prefix: str, length: int = 32) -> str:
    """A fresh id, so that tests sharing a topic or the intake's ledger never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:length]}"


def _enum_number(enum: EnumDescriptor, label: str) -> int:
    # Every enum starts with <PREFIX>_UNSPECIFIED = 0 (buf lint): the prefix is what it drops.
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    value = enum.values_by_name.get(label) or enum.values_by_name.get(prefix + label)
    if value is None:
        raise ValueError(f"{enum.name} has no value {label!r}")
    return int(value.number)


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None and isinstance(value, str):
        return _enum_number(field.enum_type, value)
    message = field.message_type
    if message is not None and message.full_name == "google.protobuf.Timestamp":
        return timestamp(value)
    return value


def build(message_type: type[M], defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> M:
    """``message_type`` from ``defaults`` updated by ``overrides`` (None: leave unset)."""
    fields = message_type.DESCRIPTOR.fields_by_name
    values = {**defaults, **overrides}
    unknown = sorted(values.keys() - fields.keys())
    if unknown:
        raise TypeError(f"{message_type.__name__} has no field {', '.join(unknown)}")
    return message_type(
        **{
            name: _field_value(cast(FieldDescriptor, fields[name]), value)
            for name, value in values.items()
            if value is not None
        }
    )


def _attention_service(entity_id: str) -> str:
    return _OWN_SERVICES.get(entity_id, _GENERIC_SERVICES)[0]


def _procedure_service(entity_id: str) -> str:
    return _OWN_SERVICES.get(entity_id, _GENERIC_SERVICES)[1]


def attention(entity_id: str = "RENIEC", **overrides: Any) -> attention_pb2.AttentionEvent:
    """A served ticket at a counter: issued 20 min ago, called 8 min later, served in 6 min."""
    defaults = {
        "event_id": unique("evt"),
        "entity_id": entity_id,
        "ticket_id": unique("T", 8),
        "kind": "TICKET_SERVED",
        "channel": "PRESENCIAL",
        "service_id": _attention_service(entity_id),
        "office_id": "LIMA-CENTRO",
        "issued_at": ago(1200),
        "called_at": ago(720),
        "finished_at": ago(360),
    }
    return build(attention_pb2.AttentionEvent, defaults, overrides)


def procedure_stage(
    entity_id: str = "RENIEC", **overrides: Any
) -> procedure_pb2.ProcedureStageEvent:
    """A TUPA procedure resolved an hour ago, filed online three days earlier."""
    defaults = {
        "event_id": unique("evt"),
        "entity_id": entity_id,
        "procedure_id": unique("EXP", 12),
        "service_id": _procedure_service(entity_id),
        "stage": "RESOLVED",
        "channel": "VIRTUAL",
        "unit_id": "UNIDAD-TRAMITE",
        "sequence": 3,
        "filed_at": ago(3 * 86_400),
        "occurred_at": ago(3600),
    }
    return build(procedure_pb2.ProcedureStageEvent, defaults, overrides)


def complaint(entity_id: str = "RENIEC", **overrides: Any) -> complaint_pb2.ComplaintEvent:
    """A reclamo registered two hours ago in the Libro de Reclamaciones, about waiting time."""
    filed = ago(7200)
    defaults = {
        "event_id": unique("evt"),
        "entity_id": entity_id,
        "complaint_id": unique("RECLAMO", 10),
        "stage": "REGISTERED",
        "channel": "PRESENCIAL",
        "service_id": _attention_service(entity_id),
        "driver": "TIEMPO",
        "filed_at": filed,
        "occurred_at": filed,
        # Only a keyed hash (HMAC-SHA256) of the complainant leaves the entity (complaint.proto).
        "complainant_hash": hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
    }
    return build(complaint_pb2.ComplaintEvent, defaults, overrides)


def survey_collection(entity_id: str = "RENIEC", **overrides: Any) -> survey_pb2.SurveyCollection:
    """Last week's survey run at the counters: 1,200 attentions, 300 offered, 96 answered."""
    defaults = {
        "event_id": unique("evt"),
        "entity_id": entity_id,
        "collection_id": unique("ENC", 10),
        "service_id": _attention_service(entity_id),
        "channel": "PRESENCIAL",
        "stage": "ATENCION",
        "period_start": ago(8 * 86_400),
        "period_end": ago(86_400),
        "interactions": 1_200,
        "offered": 300,
        "responses": 96,
        "questionnaire_version": "NT002-2021-v1",
        "mode": "IN_PERSON",
        "language": "SPANISH",
    }
    return build(survey_pb2.SurveyCollection, defaults, overrides)


def driver_scores(scores: Mapping[str, int]) -> list[survey_pb2.DriverScore]:
    """Driver code -> 1..5 (0: no answer), as the repeated ``scores`` field."""
    return [survey_pb2.DriverScore(driver=code, score=score) for code, score in scores.items()]


def survey_response(entity_id: str = "RENIEC", **overrides: Any) -> survey_pb2.SurveyResponse:
    """One citizen's answers yesterday on the six drivers; ``scores`` may be a mapping."""
    scores = overrides.pop("scores", _TYPICAL_SCORES)
    defaults = {
        "event_id": unique("evt"),
        "entity_id": entity_id,
        "collection_id": unique("ENC", 10),
        "response_id": unique("RESP", 12),
        "service_id": _attention_service(entity_id),
        "channel": "PRESENCIAL",
        "answered_at": ago(86_400),
        "scores": driver_scores(scores) if isinstance(scores, Mapping) else scores,
    }
    return build(survey_pb2.SurveyResponse, defaults, overrides)


def indicator_value(entity_id: str = "RENIEC", **overrides: Any) -> indicator_pb2.IndicatorValue:
    """Last month's share of trained staff (catalogues/standards.yaml), reported an hour ago."""
    today = dt.datetime.now(ZoneInfo(LIMA)).replace(hour=0, minute=0, second=0, microsecond=0)
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    defaults = {
        "event_id": unique("evt"),
        "entity_id": entity_id,
        "indicator_code": "STAFF_TRAINED_PCT",
        "grain": "MONTH",
        "period_start": last_month,
        "value": 82.5,
        "unit": "percent",
        "reported_at": ago(3600),
    }
    value = build(indicator_pb2.IndicatorValue, defaults, overrides)
    if "evidence" not in overrides:
        url = "https://www.gob.pe/institucion/reniec/informes-publicaciones/capacitacion"
        digest = hashlib.sha256(url.encode()).hexdigest()
        value.evidence.add(url=url, sha256=digest)
    return value


BUILDERS: Mapping[str, Builder] = MappingProxyType(
    {
        "attention": attention,
        "procedure_stage": procedure_stage,
        "complaint": complaint,
        "survey_collection": survey_collection,
        "survey_response": survey_response,
        "indicator_value": indicator_value,
    }
)
"""Domain name -> builder of its payload, for every domain entities push."""


def enveloped(
    payload: Message, received_at: Moment | None = None, source: str | None = None
) -> envelope_pb2.EventEnvelope:
    """The payload in its envelope, as the intake would store it; received when it occurred
    unless told otherwise (deterministic, so a seeded stream stays reproducible)."""
    domain = domain_of(payload)
    received = occurrence_time(payload, domain) if received_at is None else timestamp(received_at)
    return wrap(payload, getattr(payload, domain.key_field), received, source)


def attention_event(
    entity_id: str,
    ticket_id: str,
    kind: str,
    service_id: str,
    channel: str,
    issued: int,
    called: int = 0,
    finished: int = 0,
    preferential: bool = False,
    event_id: str | None = None,
) -> envelope_pb2.EventEnvelope:
    """Shorthand for hand-computed KPI cases, one ticket step per line: the enveloped
    ``attention`` with these fields only (no office), times in unix seconds (0: unset) and a
    stable event id, so the same line sent twice is the same event."""
    payload = attention(
        entity_id,
        event_id=event_id or f"{ticket_id}-{kind}",
        ticket_id=ticket_id,
        kind=kind,
        service_id=service_id,
        channel=channel,
        issued_at=issued,
        called_at=called or None,
        finished_at=finished or None,
        preferential=preferential,
        office_id=None,
    )
    return enveloped(payload)


def procedure_stage_event(
    entity_id: str,
    procedure_id: str,
    stage: str,
    service_id: str,
    channel: str,
    filed: int,
    occurred: int,
    sequence: int = 1,
    event_id: str | None = None,
) -> envelope_pb2.EventEnvelope:
    """Shorthand like ``attention_event`` for one procedure stage (``stage`` as RESOLVED)."""
    payload = procedure_stage(
        entity_id,
        event_id=event_id or f"{procedure_id}-{stage}-{sequence}",
        procedure_id=procedure_id,
        stage=stage,
        service_id=service_id,
        channel=channel,
        filed_at=filed,
        occurred_at=occurred,
        sequence=sequence,
        unit_id=None,
    )
    return enveloped(payload)
