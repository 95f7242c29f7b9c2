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

from pcm.monitoring.v1 import envelope_pb2
from pcm_common import domains
from pcm_common.domains import EventDomain, FactTable, Row

from pcm_processor.domain.buckets import BUCKET_COLUMNS
from pcm_processor.domain.facts import (
    MappingContext,
    Position,
    attention_row,
    procedure_row,
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

RowMapper = Callable[[envelope_pb2.EventEnvelope, Position, MappingContext], Row]

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
class FactDomain:
    """One kind of event the processor stores as facts and computes KPIs from."""

    domain: EventDomain
    mapper: RowMapper
    dedup_by: tuple[str, ...]
    """One logical fact per (entity, period, *dedup_by*): duplicates of it change no KPI."""
    fields: Mapping[str, Expr]
    """Every field the KPI catalogue may filter or aggregate on, and what it means here."""
    slice_by: tuple[str, str] = ("channel", "service_id")
    """KPIs are kept for all/all, per first, per second and per both of these fields."""
    tracks_terms: bool = False
    """Its subjects have legal terms: the term tracker (``terms.py``) follows their status."""

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
    tracks_terms=True,
)

DOMAINS: Mapping[str, FactDomain] = MappingProxyType(
    {domain.name: domain for domain in (ATTENTION, PROCEDURE_STAGE)}
)


def fact_domain(name: str) -> FactDomain:
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError(f"no fact domain {name!r}; known: {sorted(DOMAINS)}") from None
