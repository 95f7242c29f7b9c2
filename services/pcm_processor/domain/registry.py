"""What the processor adds to an event domain of ``pcm_common.domains``: row mapper, KPI fields.

One entry per domain the processor turns into facts. Name, topic, fact table and columns come
from the domain's one declaration; here is only what computing KPIs needs. The pipeline, the SQL
compiler, the KPI plan and the reference computation are generic over these entries (README,
"Adding an event domain").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pcm.monitoring.v1 import envelope_pb2
from pcm_common import domains
from pcm_common.domains import Column, EventDomain, FactTable, Row

from pcm_processor.domain.buckets import BUCKET_COLUMNS
from pcm_processor.domain.facts import (
    MappingContext,
    Position,
    attention_row,
    complaint_row,
    procedure_row,
    survey_answer_rows,
    survey_collection_row,
)
from pcm_processor.domain.fields import (
    AtMost,
    Both,
    Col,
    Diff,
    Expr,
    IsIn,
    Less,
    Mapped,
    Not,
    Param,
    PeriodSubjectHas,
    SubjectHas,
    columns_of,
)

SURVEY_RESPONDED = "RESPONDED"
"""The activity ``what`` of a survey response (its question rows merge into one fact)."""
ATTENTION_FACTS_LABELS = tuple(domains.ATTENTION_FACTS.labels("kind").values())
PROCEDURE_STAGE_LABELS = tuple(domains.PROCEDURE_STAGE_FACTS.labels("stage").values())
COMPLAINT_STAGE_LABELS = tuple(domains.COMPLAINT_FACTS.labels("stage").values())

RowMapper = Callable[[envelope_pb2.EventEnvelope, Position, MappingContext], Row]
"""One message's fact row; with ``FactDomain.fans_out``, a tuple of rows."""

# Columns every fact table has: identity, buckets and the Kafka position.
REQUIRED_COLUMNS = frozenset(
    {
        "entity_id",
        "event_id",
        "kafka_partition",
        "kafka_offset",
        "first_copy_version",
        *BUCKET_COLUMNS.values(),
    }
)


@dataclass(frozen=True)
class Copy:
    """A derived column copied from a column of the part's table."""

    column: str


@dataclass(frozen=True)
class Label:
    """A derived String column from an enum column of the part's table (its label)."""

    column: str


@dataclass(frozen=True)
class Const:
    value: str


@dataclass(frozen=True)
class Prefixed:
    """``prefix`` + the column: keeps ids of different tables apart."""

    prefix: str
    column: str


Derivation = Copy | Label | Const | Prefixed


@dataclass(frozen=True)
class UnionPart:
    """One stored domain's facts as rows of a derived source: each derived column from the
    part's columns. Read by the SQL compiler (a UNION ALL branch) and by the reference."""

    facts: FactTable
    columns: Mapping[str, Derivation]

    def row(self, fact: Mapping[str, Any]) -> dict[str, Any]:
        """The derived row of one stored fact (Python meaning of ``columns``)."""
        derived: dict[str, Any] = {}
        for name, how in self.columns.items():
            if isinstance(how, Copy | Label):
                derived[name] = fact[how.column]
            elif isinstance(how, Const):
                derived[name] = how.value
            else:
                derived[name] = how.prefix + str(fact[how.column])
        return derived


@dataclass(frozen=True)
class DerivedSource:
    """KPI facts that are no event domain's own: the union of several domains' facts."""

    name: str
    facts: FactTable
    subject_field: str
    parts: tuple[UnionPart, ...]


@dataclass(frozen=True)
class FactDomain:
    """One kind of event the processor stores as facts and computes KPIs from."""

    domain: EventDomain | DerivedSource
    mapper: RowMapper | None
    """None for a derived source: its rows come from the parts' facts."""
    dedup_by: tuple[str, ...]
    """One logical fact per (entity, period, *dedup_by*): duplicates of it change no KPI."""
    fields: Mapping[str, Expr]
    """Every field the KPI catalogue may filter or aggregate on, and what it means here."""
    slice_by: tuple[str, str] = ("channel", "service_id")
    """KPIs are kept for all/all, per first, per second and per both of these fields."""
    due_dated: bool = False
    """Its mapper dates term outcomes by their due date (the complaints service computes the
    term): its ``basis: due_date`` KPIs are computed from its facts like event KPIs."""
    fans_out: bool = False
    """Its mapper returns several rows per message (a survey response: one per question)."""

    def __post_init__(self) -> None:
        if self.domain.facts is None:
            raise ValueError(f"{self.name}: the domain declares no fact table")
        missing = REQUIRED_COLUMNS - set(self.columns)
        if missing:
            raise ValueError(f"{self.name}: fact table lacks columns {sorted(missing)}")
        if self.subject not in self.dedup_by:
            raise ValueError(f"{self.name}: subject {self.subject!r} must be in dedup_by")
        used = set().union(*(columns_of(expr) for expr in self.fields.values()))
        unknown = (used | set(self.dedup_by)) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.name}: fields read unknown columns {sorted(unknown)}")
        # Enum8 values compare by number in ClickHouse but by label in Python: only group by
        # enum columns, never aggregate them.
        aggregated_enums = (used & set(self.enums)) - set(self.dedup_by)
        if aggregated_enums:
            raise ValueError(f"{self.name}: enum columns {aggregated_enums} must be in dedup_by")
        for name in self.slice_by:
            if not isinstance(self.fields.get(name), Col):
                raise ValueError(f"{self.name}: slice field {name!r} must be a plain column")

    @property
    def name(self) -> str:
        """The domain's one spelling: topic, table, KPI ``source``."""
        return self.domain.name

    def map(
        self, envelope: envelope_pb2.EventEnvelope, position: Position, ctx: MappingContext
    ) -> Row:
        """The fact row of one message (event domains of one row per message)."""
        if self.mapper is None:
            raise TypeError(f"{self.name} is derived: its rows come from its parts' facts")
        if self.fans_out:
            raise TypeError(f"{self.name} has several rows per message: use rows()")
        return self.mapper(envelope, position, ctx)

    def rows(
        self, envelope: envelope_pb2.EventEnvelope, position: Position, ctx: MappingContext
    ) -> tuple[Row, ...]:
        """The fact rows of one message, whatever the domain."""
        if self.fans_out:
            assert self.mapper is not None  # a derived source never fans out
            return tuple(self.mapper(envelope, position, ctx))
        return (self.map(envelope, position, ctx),)

    @property
    def parts(self) -> tuple[UnionPart, ...]:
        """For a derived source, the stored domains it unites (empty for an event domain)."""
        return self.domain.parts if isinstance(self.domain, DerivedSource) else ()

    @property
    def subject(self) -> str:
        """Column identifying the thing the events are about (ticket, procedure)."""
        return self.domain.subject_field

    @property
    def facts(self) -> FactTable:
        assert self.domain.facts is not None  # checked at construction
        return self.domain.facts

    @property
    def enums(self) -> Mapping[str, tuple[str, ...]]:
        """Labels of Enum8 columns: catalogue filters on them are checked at start."""
        return self.facts.enums

    @property
    def table(self) -> str:
        return self.facts.name

    @property
    def columns(self) -> tuple[str, ...]:
        return self.facts.column_names

    def index(self, column: str) -> int:
        return self.facts.index(column)


_TICKET_SERVED = PeriodSubjectHas(IsIn(Col("kind"), ("TICKET_SERVED",)))

ATTENTION = FactDomain(
    domain=domains.ATTENTION,
    mapper=attention_row,
    dedup_by=("ticket_id", "kind"),
    fields=MappingProxyType(
        {
            "ticket_id": Col("ticket_id"),
            "kind": Col("kind"),
            "channel": Col("channel"),
            "service_id": Col("service_id"),
            "office_id": Col("office_id"),
            "preferential": Col("preferential"),
            # Catalogue values by the fact's columns, looked up when KPIs are computed: a
            # recomputation applies the catalogue in force (digital flag, wait and service
            # targets per service and channel).
            "channel_digital": Mapped("channel_digital", ("channel",)),
            "wait_s": Diff("called_at", "issued_at"),
            "service_s": Diff("finished_at", "called_at"),
            "within_target": AtMost(
                Diff("called_at", "issued_at"), Mapped("target_wait_s", ("service_id", "channel"))
            ),
            "within_service_target": AtMost(
                Diff("finished_at", "called_at"), Mapped("target_service_s", ("service_id",))
            ),
            # Per ticket, by its final state in its period (all of a ticket's facts share the
            # period of its issue time): served at some point, or given up within the
            # catalogue's short-abandon threshold and never served (not real demand).
            "served": _TICKET_SERVED,
            "short_abandoned": Both(
                PeriodSubjectHas(
                    Both(
                        IsIn(Col("kind"), ("TICKET_ABANDONED",)),
                        Less(Diff("finished_at", "issued_at"), Param("SHORT_ABANDON_MAX_S")),
                    )
                ),
                Not(_TICKET_SERVED),
            ),
        }
    ),
)

PROCEDURE_STAGE = FactDomain(
    domain=domains.PROCEDURE_STAGE,
    mapper=procedure_row,
    dedup_by=("procedure_id", "stage"),
    fields=MappingProxyType(
        {
            "procedure_id": Col("procedure_id"),
            "stage": Col("stage"),
            "channel": Col("channel"),
            "service_id": Col("service_id"),
            "business_days": Col("business_days_elapsed"),
            "within_term": AtMost(Col("business_days_elapsed"), Col("legal_term_days")),
            # Returned to the citizen at least once, whenever that happened (RESUBMITTED implies
            # an observation even if the OBSERVED event itself never reached us).
            "reworked": SubjectHas("stage", ("OBSERVED", "RESUBMITTED")),
        }
    ),
)

COMPLAINT = FactDomain(
    domain=domains.COMPLAINT,
    mapper=complaint_row,
    dedup_by=("complaint_id", "stage"),
    fields=MappingProxyType(
        {
            "complaint_id": Col("complaint_id"),
            "stage": Col("stage"),
            "channel": Col("channel"),
            "service_id": Col("service_id"),
            "driver": Col("driver"),
            "category": Col("category"),
            # Business days from the day after filing to the answer (answers only).
            "answer_business_days": Col("answer_business_days"),
            # Answered on or before the due date the complaints service set.
            "within_term": Col("on_time"),
        }
    ),
    due_dated=True,
)

SURVEY_COLLECTION = FactDomain(
    domain=domains.SURVEY_COLLECTION,
    mapper=survey_collection_row,
    dedup_by=("collection_id",),
    fields=MappingProxyType(
        {
            "collection_id": Col("collection_id"),
            "channel": Col("channel"),
            "service_id": Col("service_id"),
            "stage": Col("stage"),
            "interactions": Col("interactions"),
            "offered": Col("offered"),
            "responses": Col("responses"),
        }
    ),
)

SURVEY_RESPONSE = FactDomain(
    domain=domains.SURVEY_RESPONSE,
    mapper=survey_answer_rows,
    dedup_by=("response_id", "driver"),
    fields=MappingProxyType(
        {
            "response_id": Col("response_id"),
            "collection_id": Col("collection_id"),
            "channel": Col("channel"),
            "service_id": Col("service_id"),
            # A catalogue driver code, or OVERALL for the overall-satisfaction question.
            "driver": Col("driver"),
            # SCORED, NOT_ASKED, SKIPPED or DOES_NOT_APPLY: never mistaken for a low score.
            "status": Col("status"),
            "score": Col("score"),
            "valid": IsIn(Col("status"), ("SCORED",)),
            # Top-2-box: a valid answer at or above the catalogue's satisfied_min.
            "satisfied": Both(
                IsIn(Col("status"), ("SCORED",)), AtMost(Param("SATISFIED_MIN"), Col("score"))
            ),
        }
    ),
    fans_out=True,
)

ACTIVITY_FACTS = FactTable(
    domains.ACTIVITY,
    (
        Column("entity_id", "String"),
        Column("event_id", "String"),
        Column("source", "String"),
        Column("subject", "String"),
        Column(
            "what",
            "String",
            MappingProxyType(
                dict(
                    enumerate(
                        # A label may repeat (NOTIFIED): facts are told apart by ``source``.
                        (
                            *ATTENTION_FACTS_LABELS,
                            *PROCEDURE_STAGE_LABELS,
                            *COMPLAINT_STAGE_LABELS,
                            SURVEY_RESPONDED,
                        ),
                        start=1,
                    )
                )
            ),
        ),
        Column("channel", "String"),
        Column("service_id", "String"),
        *domains.BUCKET_AND_SOURCE_COLUMNS,
    ),
)


def _part(facts: FactTable, subject: str, what: Label | Const) -> UnionPart:
    shared = {
        name: Copy(name)
        for name in (
            "entity_id",
            "channel",
            "service_id",
            *(column.name for column in domains.BUCKET_AND_SOURCE_COLUMNS),
        )
    }
    return UnionPart(
        facts,
        MappingProxyType(
            {
                **shared,
                # Event ids are unique per domain only: kept apart by the domain's name.
                "event_id": Prefixed(f"{facts.name}:", "event_id"),
                "source": Const(facts.name),
                "subject": Copy(subject),
                "what": what,
            }
        ),
    )


ACTIVITY = FactDomain(
    domain=DerivedSource(
        domains.ACTIVITY,
        ACTIVITY_FACTS,
        "subject",
        (
            _part(domains.ATTENTION_FACTS, "ticket_id", Label("kind")),
            _part(domains.PROCEDURE_STAGE_FACTS, "procedure_id", Label("stage")),
            _part(domains.COMPLAINT_FACTS, "complaint_id", Label("stage")),
            # A response's question rows share subject and what: one activity fact each.
            _part(domains.SURVEY_ANSWER_FACTS, "response_id", Const(SURVEY_RESPONDED)),
        ),
    ),
    mapper=None,
    # One logical fact per ticket step, procedure or complaint stage, or survey response.
    dedup_by=("source", "subject", "what"),
    fields=MappingProxyType(
        {
            "source": Col("source"),
            "subject": Col("subject"),
            "what": Col("what"),
            "channel": Col("channel"),
            "service_id": Col("service_id"),
            "channel_digital": Mapped("channel_digital", ("channel",)),
        }
    ),
)

DOMAINS: Mapping[str, FactDomain] = MappingProxyType(
    {
        domain.name: domain
        for domain in (ATTENTION, PROCEDURE_STAGE, COMPLAINT, SURVEY_COLLECTION, SURVEY_RESPONSE)
    }
)
"""The event domains the processor consumes (by topic)."""

DERIVED: Mapping[str, FactDomain] = MappingProxyType({ACTIVITY.name: ACTIVITY})
"""KPI sources across domains, recomputed by the pipeline of each domain they unite."""


def derived_for(name: str) -> tuple[FactDomain, ...]:
    """The derived sources a domain's facts feed (its pipeline recomputes them too)."""
    return tuple(
        derived
        for derived in DERIVED.values()
        if any(part.facts.name == fact_domain(name).table for part in derived.parts)
    )


def fact_domain(name: str) -> FactDomain:
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError(f"no fact domain {name!r}; known: {sorted(DOMAINS)}") from None
