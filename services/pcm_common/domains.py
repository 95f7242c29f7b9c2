"""The event domains of the platform, each declared once.

A domain is one kind of event that flows through the platform. Its ``name`` is its only
spelling: the ``EventEnvelope`` payload field, the topic (``pcm.<name with dashes>.v1``), the
fact table (``<name>_events``), the ``source`` of its KPIs in ``catalogues/kpis.yaml`` and the
``domain`` label of metrics. Everything else (the topic registry, envelopes, the push-service kit,
the processor, the catalogue loader, the demo and the test kit) reads these entries; nothing
else lists domains.

Two kinds of entries: ``EVENT_DOMAINS`` are pushed by entities through a gRPC push RPC;
``PLATFORM_STREAMS`` are produced by the platform itself (KPI values, benchmark results).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from google.protobuf.message import Message
from pcm.monitoring.v1 import (
    attention_pb2,
    benchmark_pb2,
    complaint_pb2,
    envelope_pb2,
    indicator_pb2,
    kpi_pb2,
    procedure_pb2,
    survey_pb2,
)

PROTO_PACKAGE = "pcm.monitoring.v1"

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    """A fact-table column: its name and its ClickHouse type as ``system.columns`` shows it."""

    name: str
    type: str
    labels: Mapping[int, str] | None = None
    """For an enum column: proto enum number -> label (the ClickHouse Enum8 labels)."""

    @classmethod
    def enum(cls, name: str, enum_type: Any, prefix: str) -> Column:
        """An Enum8 column whose labels are a proto enum's names without their type prefix
        (TICKET_SERVED, RESOLVED): the vocabulary of the KPI catalogue's filters."""
        labels = MappingProxyType(
            {
                number: label.removeprefix(prefix)
                for label, number in enum_type.items()
                if number != 0  # *_UNSPECIFIED is never a valid value
            }
        )
        members = ", ".join(f"'{label}' = {number}" for number, label in labels.items())
        return cls(name, f"Enum8({members})", labels)


# Every fact table ends with its period buckets (local hour, day and month starts, computed by
# the processor so that queries need no time-zone functions) and where the message was read.
BUCKET_AND_SOURCE_COLUMNS: tuple[Column, ...] = (
    Column("hour_start", "DateTime"),
    Column("day_start", "DateTime"),
    Column("month_start", "DateTime"),
    Column("received_at", "DateTime"),
    Column("kafka_partition", "UInt16"),
    Column("kafka_offset", "UInt64"),
    # 2^64 - 1 - kafka_offset: ReplacingMergeTree keeps the highest version, so the first copy of
    # an event id wins a merge (an accepted event id is never overwritten by a later message).
    Column("first_copy_version", "UInt64"),
)


@dataclass(frozen=True)
class FactTable:
    """The ClickHouse table a domain's events are stored in, one row per event.

    ``columns`` is the one list of the table's columns: the migrations that create it are checked
    against it (tests/unit/test_fact_tables.py, on current ClickHouse and the 18.16 server), and
    ``row`` builds rows by column name in this order, ready for a columnar insert.
    """

    name: str
    columns: tuple[Column, ...]
    row: Callable[..., Row] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A namedtuple: built by keyword (a missing or unknown column is a TypeError), stored
        # as a plain tuple in column order (the columnar insert transposes tuples).
        object.__setattr__(self, "row", namedtuple(self.name, self.column_names))

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def index(self, column: str) -> int:
        return self.column_names.index(column)

    def labels(self, column: str) -> Mapping[int, str]:
        """Proto enum number -> label of an enum column."""
        labels = self.columns[self.index(column)].labels
        if labels is None:
            raise ValueError(f"{self.name}.{column} is not an enum column")
        return labels

    @property
    def enums(self) -> Mapping[str, tuple[str, ...]]:
        """Labels of every enum column."""
        return MappingProxyType(
            {c.name: tuple(c.labels.values()) for c in self.columns if c.labels is not None}
        )


@dataclass(frozen=True)
class PushRpc:
    """The gRPC method through which entities push a domain's events."""

    service: str  # service name in the proto package, e.g. "IntakeService"
    method: str  # e.g. "PushAttentions"

    @property
    def full_service(self) -> str:
        return f"{PROTO_PACKAGE}.{self.service}"


@dataclass(frozen=True)
class EventDomain:
    name: str
    """The one spelling: envelope payload field, topic, table, KPI source, metric label."""
    message: type[Message]
    subject_field: str
    """Field naming what the events are about (ticket, procedure, complaint...): CloudEvents
    ``subject``."""
    time_fields: tuple[str, ...]
    """Occurrence time: the first of these set on the payload (CloudEvents ``time``)."""
    partitions: int
    retention_days: int
    description: str
    push: PushRpc | None = None
    """None for streams the platform produces itself."""
    facts: FactTable | None = None
    """None while no processor stores this domain's events."""
    key_field: str = "entity_id"
    """Kafka key: one entity's events stay ordered in one partition."""

    @property
    def payload_field(self) -> str:
        return self.name

    @property
    def topic_base_name(self) -> str:
        return f"pcm.{self.name.replace('_', '-')}.v1"

    @property
    def message_name(self) -> str:
        return str(self.message.DESCRIPTOR.name)


ATTENTION_FACTS = FactTable(
    "attention_events",
    (
        Column("entity_id", "String"),
        Column("event_id", "String"),
        Column("ticket_id", "String"),
        Column.enum("kind", attention_pb2.AttentionEventKind, "ATTENTION_EVENT_KIND_"),
        Column("channel", "String"),
        Column("service_id", "String"),
        Column("office_id", "String"),
        Column("preferential", "UInt8"),
        Column("digital", "UInt8"),
        Column("target_wait_s", "UInt32"),
        Column("issued_at", "DateTime"),
        Column("called_at", "DateTime"),
        Column("finished_at", "DateTime"),
        *BUCKET_AND_SOURCE_COLUMNS,
        # Added after the first release (processor/0004), hence after the shared tail.
        Column("target_service_s", "UInt32"),
    ),
)

PROCEDURE_STAGE_FACTS = FactTable(
    "procedure_stage_events",
    (
        Column("entity_id", "String"),
        Column("event_id", "String"),
        Column("procedure_id", "String"),
        Column("service_id", "String"),
        Column.enum("stage", procedure_pb2.ProcedureStage, "PROCEDURE_STAGE_"),
        Column("channel", "String"),
        Column("unit_id", "String"),
        Column("sequence", "UInt32"),
        Column("filed_at", "DateTime"),
        Column("occurred_at", "DateTime"),
        Column("legal_term_days", "UInt16"),
        Column("business_days_elapsed", "UInt16"),
        *BUCKET_AND_SOURCE_COLUMNS,
        # Added after the first release (processor/0007), hence after the shared tail.
        Column("office_id", "String"),
    ),
)

COMPLAINT_FACTS = FactTable(
    "complaint_events",
    (
        Column("entity_id", "String"),
        Column("event_id", "String"),
        Column("complaint_id", "String"),
        Column.enum("stage", complaint_pb2.ComplaintStage, "COMPLAINT_STAGE_"),
        Column("channel", "String"),
        Column("service_id", "String"),
        Column("driver", "String"),
        Column("category", "String"),
        Column("filed_at", "DateTime"),
        Column("occurred_at", "DateTime"),
        Column("due_on", "Date"),
        Column("term_business_days", "UInt16"),
        Column("answer_business_days", "UInt16"),
        Column("on_time", "UInt8"),
        *BUCKET_AND_SOURCE_COLUMNS,
    ),
)

SURVEY_COLLECTION_FACTS = FactTable(
    "survey_collection_events",
    (
        Column("entity_id", "String"),
        Column("event_id", "String"),
        Column("collection_id", "String"),
        Column("service_id", "String"),
        Column("channel", "String"),
        Column("stage", "String"),
        Column("period_start", "DateTime"),
        Column("period_end", "DateTime"),
        Column("interactions", "UInt64"),
        Column("offered", "UInt64"),
        Column("responses", "UInt64"),
        *BUCKET_AND_SOURCE_COLUMNS,
    ),
)

SURVEY_ANSWER_FACTS = FactTable(
    "survey_response_events",
    # One row per question of a response: each catalogue driver and the overall question
    # (driver OVERALL), so every response has the same rows and a question it did not ask is a
    # NOT_ASKED row, told apart from SKIPPED, DOES_NOT_APPLY and from low scores. The free-text
    # comment is never published, hence never stored here.
    (
        Column("entity_id", "String"),
        Column("event_id", "String"),
        Column("response_id", "String"),
        Column("collection_id", "String"),
        Column("service_id", "String"),
        Column("channel", "String"),
        Column("driver", "String"),
        Column("status", "String"),
        Column("score", "UInt8"),
        Column("answered_at", "DateTime"),
        *BUCKET_AND_SOURCE_COLUMNS,
    ),
)

ATTENTION = EventDomain(
    name="attention",
    message=attention_pb2.AttentionEvent,
    subject_field="ticket_id",
    time_fields=("finished_at", "called_at", "issued_at"),
    partitions=6,
    retention_days=14,
    description="Attention lifecycle: ticket issued, called, served or abandoned.",
    push=PushRpc("IntakeService", "PushAttentions"),
    facts=ATTENTION_FACTS,
)
PROCEDURE_STAGE = EventDomain(
    name="procedure_stage",
    message=procedure_pb2.ProcedureStageEvent,
    subject_field="procedure_id",
    time_fields=("occurred_at",),
    partitions=6,
    retention_days=14,
    description="Procedure (TUPA trámite) stage changes.",
    push=PushRpc("IntakeService", "PushProcedureStages"),
    facts=PROCEDURE_STAGE_FACTS,
)
COMPLAINT = EventDomain(
    name="complaint",
    message=complaint_pb2.ComplaintEvent,
    subject_field="complaint_id",
    time_fields=("occurred_at",),
    partitions=3,
    retention_days=30,
    description="Libro de Reclamaciones lifecycle events.",
    push=PushRpc("ComplaintsService", "PushComplaintEvents"),
    facts=COMPLAINT_FACTS,
)
SURVEY_COLLECTION = EventDomain(
    name="survey_collection",
    message=survey_pb2.SurveyCollection,
    subject_field="collection_id",
    time_fields=("period_end",),
    partitions=3,
    retention_days=30,
    description="Survey collection runs (interactions, offered, responses).",
    push=PushRpc("SurveysService", "PushSurveyCollections"),
    facts=SURVEY_COLLECTION_FACTS,
)
SURVEY_RESPONSE = EventDomain(
    name="survey_response",
    message=survey_pb2.SurveyResponse,
    subject_field="response_id",
    time_fields=("answered_at",),
    partitions=3,
    retention_days=30,
    description="Survey answers on the six drivers.",
    push=PushRpc("SurveysService", "PushSurveyResponses"),
    facts=SURVEY_ANSWER_FACTS,
)
INDICATOR_VALUE = EventDomain(
    name="indicator_value",
    message=indicator_pb2.IndicatorValue,
    subject_field="indicator_code",
    time_fields=("reported_at",),
    partitions=3,
    retention_days=30,
    description="Self-reported indicator values with evidence.",
    push=PushRpc("IndicatorsService", "ReportIndicatorValues"),
)
KPI_VALUE = EventDomain(
    name="kpi_value",
    message=kpi_pb2.KpiValue,
    subject_field="kpi_code",
    time_fields=("computed_at",),
    partitions=6,
    retention_days=7,
    description="KPI values computed by the processors.",
)
BENCHMARK_RESULT = EventDomain(
    name="benchmark_result",
    message=benchmark_pb2.BenchmarkResult,
    subject_field="standard_code",
    time_fields=("computed_at",),
    partitions=3,
    retention_days=30,
    description="Benchmark results of the national service.",
)

EVENT_DOMAINS: tuple[EventDomain, ...] = (
    ATTENTION,
    PROCEDURE_STAGE,
    COMPLAINT,
    SURVEY_COLLECTION,
    SURVEY_RESPONSE,
    INDICATOR_VALUE,
)
"""Domains entities push."""
PLATFORM_STREAMS: tuple[EventDomain, ...] = (KPI_VALUE, BENCHMARK_RESULT)
"""Streams the platform derives and publishes itself."""
ALL_DOMAINS: tuple[EventDomain, ...] = EVENT_DOMAINS + PLATFORM_STREAMS

_BY_NAME: Mapping[str, EventDomain] = MappingProxyType({d.name: d for d in ALL_DOMAINS})
_BY_MESSAGE: Mapping[str, EventDomain] = MappingProxyType({d.message_name: d for d in ALL_DOMAINS})
EVENT_DOMAIN_NAMES: tuple[str, ...] = tuple(d.name for d in EVENT_DOMAINS)

ACTIVITY = "activity"
"""Not an event domain: everything an entity did, across the stored domains (attentions,
procedure stages...), by channel and service. The ``source`` of KPIs that span domains (digital
take-up counts procedures filed online too; channel levels count every channel with activity).
The processor builds it from the fact tables (``pcm_processor.domain.registry.ACTIVITY``)."""
KPI_SOURCES: tuple[str, ...] = (*EVENT_DOMAIN_NAMES, ACTIVITY)


def domain(name: str) -> EventDomain:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no domain {name!r}; known: {sorted(_BY_NAME)}") from None


def domain_of(message: Message) -> EventDomain:
    """The domain of a payload message (by its proto type)."""
    return _BY_MESSAGE[message.DESCRIPTOR.name]


def _check_envelope() -> None:
    """Each domain's name is a payload field of EventEnvelope carrying its message."""
    fields = envelope_pb2.EventEnvelope.DESCRIPTOR.fields_by_name
    for entry in ALL_DOMAINS:
        found = fields.get(entry.name)
        if found is None or found.message_type is not entry.message.DESCRIPTOR:
            raise ValueError(f"EventEnvelope has no payload field {entry.name!r} of its message")


_check_envelope()
