"""The loaded catalogues: immutable records plus the lookups services need."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from .calendar import BusinessCalendar
from .models import (
    ALL,
    Channel,
    ChannelLevel,
    ComplaintTerm,
    Driver,
    Entity,
    Indicator,
    JourneyStage,
    Kpi,
    KpiParameter,
    LikertScale,
    Office,
    PeerGroup,
    ProcedureRules,
    Region,
    Scoring,
    Service,
    Standard,
    TupaTerm,
    WaitTarget,
)

R = TypeVar("R")


def _index(records: Iterable[R], key: Callable[[R], str]) -> Mapping[str, R]:
    return MappingProxyType({key(record): record for record in records})


def _get(index: Mapping[str, R], key: str, what: str) -> R:
    try:
        return index[key]
    except KeyError:
        raise KeyError(f"unknown {what} {key!r}") from None


@dataclass(frozen=True)
class ComplaintDue:
    """When a complaint must be answered: its term, the deadline and the rule behind them."""

    term_business_days: int
    due_on: dt.date
    """The last business day to answer (terms count from the day after filing)."""
    basis: str
    """The ``legal_basis`` of the complaint_terms.csv row that applied."""


@dataclass(frozen=True, eq=False)
class Catalogues:
    """Everything in ``catalogues/``, validated; build it with ``load_catalogues()``."""

    directory: Path
    versions: Mapping[str, str]
    channels: tuple[Channel, ...]
    channel_levels: tuple[ChannelLevel, ...]
    likert: LikertScale
    drivers: tuple[Driver, ...]
    kpis: tuple[Kpi, ...]
    """Every KPI, including the per-driver ones derived from ``per_driver: true``."""
    kpi_parameters: Mapping[str, KpiParameter]
    """Thresholds KPI rules use (``parameters`` of kpis.yaml), by code."""
    indicators: tuple[Indicator, ...]
    standard_levels: tuple[str, ...]
    scoring: Scoring
    """How the benchmark scores, ranks and compares (standards.yaml ``scoring``)."""
    standards: tuple[Standard, ...]
    regions: tuple[Region, ...]
    peer_groups: tuple[PeerGroup, ...]
    entities: tuple[Entity, ...]
    services: tuple[Service, ...]
    complaint_terms: tuple[ComplaintTerm, ...]
    wait_targets: tuple[WaitTarget, ...]
    procedure_rules: ProcedureRules
    tax_calendar: BusinessCalendar
    """The calendar of tax procedures: decreed days kept business days for tax purposes count."""
    offices: tuple[Office, ...]
    tupa_terms: tuple[TupaTerm, ...]
    """Versions of procedures' legal terms (tupa_terms.csv), ordered by ``valid_from``."""
    calendar: BusinessCalendar
    journey_stages: tuple[JourneyStage, ...] = ()
    """Stages of the citizen's journey a survey may be about (drivers.yaml ``stages``)."""
    _channels: Mapping[str, Channel] = field(init=False, repr=False)
    _drivers: Mapping[str, Driver] = field(init=False, repr=False)
    _kpis: Mapping[str, Kpi] = field(init=False, repr=False)
    _indicators: Mapping[str, Indicator] = field(init=False, repr=False)
    _indicator_standards: Mapping[str, tuple[Standard, ...]] = field(init=False, repr=False)
    _standards: Mapping[str, Standard] = field(init=False, repr=False)
    _regions: Mapping[str, Region] = field(init=False, repr=False)
    _peer_groups: Mapping[str, PeerGroup] = field(init=False, repr=False)
    _entities: Mapping[str, Entity] = field(init=False, repr=False)
    _services: Mapping[str, Service] = field(init=False, repr=False)
    _office_regions: Mapping[tuple[str, str], str] = field(init=False, repr=False)

    @property
    def version_label(self) -> str:
        """Every catalogue file's version in one line, e.g. ``channels=2015.1 kpis=2026.2``:
        stored with each computed value, so a result says which rules produced it."""
        return " ".join(f"{name}={version}" for name, version in sorted(self.versions.items()))

    def __post_init__(self) -> None:
        # Indexes are derived once; the dataclass stays frozen for callers.
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("_channels", _index(self.channels, lambda c: c.code))
        put("_drivers", _index(self.drivers, lambda d: d.code))
        put("_kpis", _index(self.kpis, lambda k: k.code))
        put("_indicators", _index(self.indicators, lambda i: i.code))
        served = {
            indicator.code: tuple(
                standard
                for standard in self.standards
                if any(
                    criterion.indicator == indicator.code
                    for criteria in standard.levels.values()
                    for criterion in criteria
                )
            )
            for indicator in self.indicators
        }
        put("_indicator_standards", MappingProxyType(served))
        put("_standards", _index(self.standards, lambda s: s.code))
        put("_regions", _index(self.regions, lambda r: r.code))
        put("_peer_groups", _index(self.peer_groups, lambda g: g.code))
        put("_entities", _index(self.entities, lambda e: e.entity_id))
        put("_services", _index(self.services, lambda s: s.service_id))
        put("_office_regions", {(o.entity_id, o.office_id): o.region for o in self.offices})

    def entity(self, entity_id: str) -> Entity:
        return _get(self._entities, entity_id, "entity")

    def service(self, service_id: str) -> Service:
        return _get(self._services, service_id, "service")

    def services_for(self, entity_id: str) -> tuple[Service, ...]:
        """The entity's own services plus the generic (``*``) ones every entity offers."""
        self.entity(entity_id)  # an unknown entity is a caller bug, not an empty list
        return tuple(s for s in self.services if s.entity_id in {entity_id, ALL})

    def offered_service_ids(self) -> dict[str, frozenset[str]]:
        """Per entity, the ids of the services it offers (``services_for``): what a pushed
        event's ``service_id`` is checked against."""
        return {
            e.entity_id: frozenset(s.service_id for s in self.services_for(e.entity_id))
            for e in self.entities
        }

    def service_channels(self, service_id: str, entity_id: str) -> tuple[str, ...]:
        """Channels on which ``entity_id`` offers the service.

        A generic service lists every channel it may use; an entity offers it only on the
        channels that entity has (e.g. ORIENTACION is not itinerant where there is no MOVIL).
        """
        service = self.service(service_id)
        entity = self.entity(entity_id)
        if not service.is_generic and service.entity_id != entity_id:
            raise KeyError(f"service {service_id!r} is not offered by entity {entity_id!r}")
        return tuple(code for code in service.channels if code in entity.channels)

    def channel(self, code: str) -> Channel:
        return _get(self._channels, code, "channel")

    def channel_types(
        self, active_channels: Iterable[str], entity_id: str | None = None
    ) -> frozenset[str]:
        """The types of the active channels; with ``entity_id``, only of the channels the entity
        declares (entities.csv ``channels``: a code, or a type covering all its channels)."""
        channels = [self.channel(code) for code in active_channels]
        if entity_id is not None:
            declared = set(self.entity(entity_id).channels)
            channels = [c for c in channels if c.code in declared or c.type.value in declared]
        return frozenset(channel.type.value for channel in channels)

    def channel_level(
        self, active_channels: Iterable[str], entity_id: str | None = None
    ) -> ChannelLevel | None:
        """Highest level whose rule the active channel types meet (None: not even the lowest:
        no in-person channel). See ``channel_types`` for ``entity_id``."""
        active = self.channel_types(active_channels, entity_id)
        for level in reversed(self.channel_levels):
            if level.rule.holds(active):
                return level
        return None

    def driver(self, code: str) -> Driver:
        return _get(self._drivers, code, "driver")

    def kpi(self, code: str) -> Kpi:
        return _get(self._kpis, code, "KPI")

    def indicator(self, code: str) -> Indicator:
        return _get(self._indicators, code, "indicator")

    def indicator_standards(self, code: str) -> tuple[Standard, ...]:
        """The standards whose criteria test this indicator, in catalogue order (none: an item
        reported for the record, e.g. one line of the accessibility checklist)."""
        return _get(self._indicator_standards, code, "indicator")

    def standard(self, code: str) -> Standard:
        return _get(self._standards, code, "standard")

    def region(self, code: str) -> Region:
        return _get(self._regions, code, "region")

    def peer_group(self, code: str) -> PeerGroup:
        return _get(self._peer_groups, code, "peer group")

    def complaint_term(self, entity_id: str, category: str | None = None) -> ComplaintTerm:
        """The most specific complaint-answer term: entity+category, entity, category, default."""
        wanted = category or ALL
        for entity, cat in ((entity_id, wanted), (entity_id, ALL), (ALL, wanted), (ALL, ALL)):
            for term in self.complaint_terms:
                if term.entity_id == entity and term.category == cat:
                    return term
        raise KeyError("no default complaint term ('*,*')")  # the loader guarantees one

    def complaint_due(
        self,
        entity_id: str,
        category: str | None,
        filed_on: dt.date,
        override_days: int = 0,
    ) -> ComplaintDue:
        """The answer deadline of a complaint filed on ``filed_on``: the most specific term of
        complaint_terms.csv, or ``override_days`` (0: none) where the row allows shortening it
        (``max_override_business_days``), counted in business days from the day after filing
        with the non-working days of the entity's region.

        Raises ``ValueError`` for an override the row does not allow, ``KeyError`` for an
        unknown entity.
        """
        term = self.complaint_term(entity_id, category)
        region = self.region_of(entity_id)
        days = term.legal_term_business_days
        if override_days < 0:
            raise ValueError(f"override_days must be >= 0 (0: no override), got {override_days}")
        if override_days > 0:
            row = f"complaint_terms.csv row '{term.entity_id},{term.category}'"
            limit = term.max_override_business_days
            if limit == 0:
                raise ValueError(
                    f"category {category or ALL} of entity {entity_id} does not allow a term "
                    f"override ({row})"
                )
            if override_days > limit:
                raise ValueError(
                    f"category {category or ALL} of entity {entity_id} may shorten the term to "
                    f"at most {limit} business days, not {override_days} ({row})"
                )
            days = override_days
        due_on = self.calendar.add_business_days(filed_on, days, region)
        return ComplaintDue(term_business_days=days, due_on=due_on, basis=term.legal_basis)

    def target_wait_s(self, service: Service, channel_code: str) -> int | None:
        """The wait target of a service on a channel, most specific first: this service on this
        channel, on its type; every service on this channel, on its type; else the service's
        ``target_wait_minutes``."""
        channel_type = self.channel(channel_code).type.value
        for service_id, on in (
            (service.service_id, channel_code),
            (service.service_id, channel_type),
            (ALL, channel_code),
            (ALL, channel_type),
        ):
            for target in self.wait_targets:
                if target.service_id == service_id and target.channel == on:
                    return target.target_wait_seconds
        minutes = service.target_wait_minutes
        return None if minutes is None else minutes * 60

    def region_of(self, entity_id: str, office_id: str = "") -> str:
        """The region whose non-working days apply: the office's (offices.csv), else the
        entity's (an office not registered yet must not block the term)."""
        region = self._office_regions.get((entity_id, office_id))
        return region if region is not None else self.entity(entity_id).region

    def calendar_for(self, service: Service) -> BusinessCalendar:
        """The business days a service's legal term counts."""
        return self.tax_calendar if service.calendar == "TRIBUTARIO" else self.calendar

    def legal_term(self, service: Service, filed_on: dt.date) -> int | None:
        """The procedure's legal term in force on its filing date: the latest TUPA version
        valid from that date or before, else the term in services.csv."""
        term = service.legal_term_business_days
        for version in self.tupa_terms:
            if version.service_id == service.service_id and version.valid_from <= filed_on:
                term = version.legal_term_business_days
        return term

    @property
    def kpi_definitions(self) -> tuple[Kpi, ...]:
        """KPIs as written in kpis.yaml, without the derived per-driver ones."""
        return tuple(k for k in self.kpis if k.parent is None)

    def summary(self) -> str:
        """One line of counts, e.g. for ``pcm-catalogues check``."""
        years = self.calendar.decreed_years
        calendar = f"{years[0]}\N{EN DASH}{years[1]} calendar" if years else "no decreed days"
        derived = len(self.kpis) - len(self.kpi_definitions)
        return (
            f"{len(self.entities)} entities, {len(self.services)} services, "
            f"{len(self.channels)} channels, {len(self.drivers)} drivers, "
            f"{len(self.standards)} standards, {len(self.kpi_definitions)} KPIs "
            f"(+{derived} per driver), {calendar}"
        )
