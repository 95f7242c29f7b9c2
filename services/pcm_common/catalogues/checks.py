"""Rules that span records or files: unique ids and references between catalogues.

Each check raises the ``CatalogueError`` of the referencing record (its file, line and field),
because that is the line an operator has to change.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .calendar import NATIONAL
from .errors import CatalogueError
from .models import (
    ALL,
    Channel,
    ChannelLevel,
    ChannelType,
    ComplaintTerm,
    Criterion,
    Direction,
    Driver,
    Entity,
    Fn,
    Indicator,
    JourneyStage,
    Kpi,
    KpiParameter,
    LikertScale,
    NonWorkingDay,
    Office,
    Op,
    PeerGroup,
    ProcedureRules,
    Region,
    Scoring,
    Service,
    Standard,
    TupaTerm,
    Unit,
    WaitTarget,
)
from .sources import Located, located

T = TypeVar("T")

_LIST_LIMIT = 12  # beyond this many choices, name the file instead of listing them


@dataclass(frozen=True)
class Parsed:
    """Every catalogue file, validated record by record, with where each record came from."""

    paths: dict[str, Path]
    versions: dict[str, str]
    channels: list[Located[Channel]]
    levels: list[Located[ChannelLevel]]
    likert: LikertScale
    drivers: list[Located[Driver]]
    journey_stages: list[Located[JourneyStage]]
    kpis: list[Located[Kpi]]
    kpi_parameters: tuple[KpiParameter, ...]
    procedure_rules: ProcedureRules
    standard_levels: tuple[str, ...]
    scoring: Scoring
    indicators: list[Located[Indicator]]
    standards: list[Located[Standard]]
    regions: list[Located[Region]]
    peer_groups: list[Located[PeerGroup]]
    entities: list[Located[Entity]]
    services: list[Located[Service]]
    complaint_terms: list[Located[ComplaintTerm]]
    wait_targets: list[Located[WaitTarget]]
    offices: list[Located[Office]]
    tupa_terms: list[Located[TupaTerm]]
    non_working_days: list[Located[NonWorkingDay]]


def check_all(parsed: Parsed) -> list[Kpi]:
    """Run every rule; return the KPIs with the per-driver ones derived (checked for clashes)."""
    channels = _check_channels(parsed)
    drivers = unique(parsed.drivers, "code", lambda d: d.code)
    unique(parsed.journey_stages, "code", lambda s: s.code)
    kpis = _check_kpis(parsed, [d.value for d in drivers.values()])
    _check_standards(parsed, kpis, {level.value.rank for level in parsed.levels})
    regions = unique(parsed.regions, "code", lambda r: r.code)
    unique(parsed.regions, "ubigeo", lambda r: r.ubigeo)
    entities = _check_entities(parsed, channels, regions)
    _check_services(parsed, channels, entities)
    _check_complaint_terms(parsed, entities)
    _check_wait_targets(parsed, channels)
    _check_tupa_terms(parsed)
    _check_offices(parsed, entities, regions)
    _check_calendar(parsed, regions)
    return kpis


def unique(
    items: Iterable[Located[T]], field: str, key: Callable[[T], Hashable]
) -> dict[Hashable, Located[T]]:
    """Index records by ``key``; a repeated key is an error naming both lines."""
    seen: dict[Hashable, Located[T]] = {}
    for item in items:
        value = key(item.value)
        first = seen.get(value)
        if first is not None:
            first_line = first.key_lines.get(field, first.line)
            raise item.error(field, f"duplicate '{value}' (first defined at line {first_line})")
        seen[value] = item
    return seen


def known(
    item: Located[T], field: str, value: str, choices: Collection[Hashable], what: str, where: str
) -> None:
    """``value`` must be one of ``choices``; the message lists them when they are few."""
    if value in choices:
        return
    if len(choices) <= _LIST_LIMIT:
        expected = f"expected one of {', '.join(str(c) for c in choices)}"
    else:
        expected = f"not in {where}"
    raise item.error(field, f"unknown {what} '{value}' ({expected})")


def _check_channels(parsed: Parsed) -> dict[Hashable, Located[Channel]]:
    channels = unique(parsed.channels, "code", lambda c: c.code)
    unique(parsed.levels, "code", lambda level: level.code)
    previous: Located[ChannelLevel] | None = None
    for level in parsed.levels:
        if previous is not None and level.value.rank <= previous.value.rank:
            reason = f"levels go from lowest to highest: must be above {previous.value.rank}"
            raise level.error("rank", reason)
        previous = level
    return channels


def _check_kpis(parsed: Parsed, drivers: Sequence[Driver]) -> list[Kpi]:
    unique(parsed.kpis, "code", lambda k: k.code)
    result: list[Located[Kpi]] = []
    for item in parsed.kpis:
        kpi = item.value
        measures = (kpi.aggregate, kpi.numerator, kpi.denominator)
        if any(m is not None and m.fn is Fn.CHANNEL_LEVEL for m in measures) != (
            kpi.unit is Unit.LEVEL
        ):
            raise item.error("unit", "fn channel_level and unit level go together")
        result.append(item)
        if kpi.per_driver:
            derived = [kpi.for_driver(driver) for driver in drivers]
            result.extend(
                Located(k, item.path, item.key_lines.get("per_driver", item.line), {})
                for k in derived
            )
    # A derived code (SATISFACTION_PCT_TIEMPO) must not collide with a hand-written one.
    unique(result, "code", lambda k: k.code)
    return [item.value for item in result]


def _check_standards(parsed: Parsed, kpis: Sequence[Kpi], level_ranks: Collection[int]) -> None:
    indicators = _check_indicators(parsed, kpis)
    unique(parsed.standards, "number", lambda s: s.number)
    unique(parsed.standards, "code", lambda s: s.code)
    by_kpi = {kpi.code: kpi for kpi in kpis}
    criteria: list[Located[Criterion]] = []
    for standard in parsed.standards:
        criteria.extend(_standard_criteria(parsed, standard))
    unique(criteria, "id", lambda c: c.id)
    for item in criteria:
        criterion = item.value
        if criterion.kpi is not None:
            known(item, "kpi", criterion.kpi, by_kpi, "KPI", "kpis.yaml")
            _check_threshold(item, by_kpi[criterion.kpi].unit, level_ranks)
        else:
            known(item, "indicator", criterion.measure, indicators, "indicator", "standards.yaml")
            indicator = indicators[criterion.measure]
            _check_threshold(item, indicator.value.unit, level_ranks)
            _check_indicator_criterion(item, indicator)


def _check_indicators(parsed: Parsed, kpis: Sequence[Kpi]) -> dict[Hashable, Located[Indicator]]:
    indicators = unique(parsed.indicators, "code", lambda i: i.code)
    kpi_codes = {kpi.code for kpi in kpis}
    for indicator in parsed.indicators:
        if indicator.value.code in kpi_codes:
            # One code with two meanings would make reports and criteria ambiguous.
            reason = f"'{indicator.value.code}' is already a KPI code in kpis.yaml"
            raise indicator.error("code", reason)
    return indicators


def _standard_criteria(parsed: Parsed, standard: Located[Standard]) -> list[Located[Criterion]]:
    levels = tuple(standard.value.levels)
    if levels != parsed.standard_levels:
        expected = ", ".join(parsed.standard_levels)
        raise standard.error("levels", f"must list the levels {expected} in that order")
    raw_levels = standard.raw.get("levels") if standard.raw is not None else None
    result: list[Located[Criterion]] = []
    for level, level_criteria in standard.value.levels.items():
        raw = raw_levels.get(level) if isinstance(raw_levels, dict) else None
        found = located(standard.path, level_criteria, raw)
        if not found:
            raise standard.error("levels", f"level {level} has no criteria")
        result.extend(found)
    return result


def _check_indicator_criterion(item: Located[Criterion], indicator: Located[Indicator]) -> None:
    """A criterion on a reported indicator tests a value the indicator accepts, in the
    indicator's direction (``>=`` on a lower-is-better value would reward the worse)."""
    criterion, definition = item.value, indicator.value
    where = f"{definition.code} ({indicator.path.name}:{indicator.line})"
    if not definition.accepts(criterion.threshold):
        reason = f"{criterion.threshold:g} is outside the range {definition.range_text} of {where}"
        raise item.error("threshold", reason)
    wrong = {Op.GE: Direction.LOWER_IS_BETTER, Op.LE: Direction.HIGHER_IS_BETTER}
    if wrong.get(criterion.op) is definition.direction:
        reason = f"'{criterion.op.value}' tests {where}, which is {definition.direction.value}"
        raise item.error("op", reason)


def _check_threshold(item: Located[Criterion], unit: Unit, level_ranks: Collection[int]) -> None:
    criterion = item.value
    if unit is Unit.PERCENT and not 0 <= criterion.threshold <= 100:
        raise item.error("threshold", "a percentage threshold must be between 0 and 100")
    if unit is Unit.BOOLEAN and (criterion.op is not Op.EQ or criterion.threshold not in {0, 1}):
        raise item.error("threshold", "a yes/no indicator is tested with op '==' and 1 or 0")
    if unit is Unit.LEVEL and criterion.threshold not in level_ranks:
        ranks = ", ".join(str(rank) for rank in sorted(level_ranks))
        raise item.error("threshold", f"must be a channel level rank ({ranks})")


def _check_entities(
    parsed: Parsed,
    channels: Collection[Hashable],
    regions: Collection[Hashable],
) -> dict[Hashable, Located[Entity]]:
    peer_groups = unique(parsed.peer_groups, "code", lambda g: g.code)
    entities = unique(parsed.entities, "entity_id", lambda e: e.entity_id)
    for item in parsed.entities:
        entity = item.value
        known(item, "region", entity.region, regions, "region", "regions.csv")
        known(item, "peer_group", entity.peer_group, peer_groups, "peer group", "peer_groups.csv")
        group = peer_groups[entity.peer_group].value
        if group.government_level is not entity.government_level:
            reason = (
                f"'{entity.government_level.value}' does not match peer group "
                f"'{group.code}' ({group.government_level.value})"
            )
            raise item.error("government_level", reason)
        if entity.municipal_type != group.municipal_type:
            expected = group.municipal_type or "none (not a municipal peer group)"
            reason = (
                f"{entity.municipal_type or 'empty'} does not match peer group "
                f"'{group.code}' (municipal type {expected})"
            )
            raise item.error("municipal_type", reason)
        _check_channel_list(item, entity.channels, channels)
    return entities


def _check_channel_list(
    item: Located[T], codes: Sequence[str], channels: Collection[Hashable]
) -> None:
    for code in codes:
        known(item, "channels", code, channels, "channel", "channels.yaml")
    repeated = sorted({code for code in codes if codes.count(code) > 1})
    if repeated:
        raise item.error("channels", f"channel '{repeated[0]}' listed twice")


def _check_services(
    parsed: Parsed,
    channels: Collection[Hashable],
    entities: dict[Hashable, Located[Entity]],
) -> None:
    unique(parsed.services, "service_id", lambda s: s.service_id)
    for item in parsed.services:
        service = item.value
        _check_channel_list(item, service.channels, channels)
        if service.is_generic:
            continue  # offered by every entity, on the channels each one has
        known(item, "entity_id", service.entity_id, entities, "entity", "entities.csv")
        owner = entities[service.entity_id]
        for code in service.channels:
            if code not in owner.value.channels:
                reason = (
                    f"channel '{code}' is not offered by entity '{service.entity_id}' "
                    f"({owner.path.name}:{owner.line})"
                )
                raise item.error("channels", reason)


def _check_complaint_terms(parsed: Parsed, entities: Collection[Hashable]) -> None:
    terms = unique(parsed.complaint_terms, "category", lambda t: f"{t.entity_id},{t.category}")
    for item in parsed.complaint_terms:
        if item.value.entity_id != ALL:
            known(item, "entity_id", item.value.entity_id, entities, "entity", "entities.csv")
    if f"{ALL},{ALL}" not in terms:
        reason = "needs a default row '*,*' (the term of every other complaint)"
        raise CatalogueError(parsed.paths["complaint_terms.csv"], None, None, reason)


def _check_wait_targets(parsed: Parsed, channels: Collection[Hashable]) -> None:
    unique(parsed.wait_targets, "channel", lambda t: f"{t.service_id},{t.channel}")
    services = {item.value.service_id for item in parsed.services}
    types = {channel_type.value for channel_type in ChannelType}
    for item in parsed.wait_targets:
        target = item.value
        if target.service_id != ALL:
            known(item, "service_id", target.service_id, services, "service", "services.csv")
        if target.channel not in types:
            known(item, "channel", target.channel, channels, "channel", "channels.yaml")


def _check_offices(
    parsed: Parsed, entities: Collection[Hashable], regions: Collection[Hashable]
) -> None:
    unique(parsed.offices, "office_id", lambda o: f"{o.entity_id},{o.office_id}")
    for item in parsed.offices:
        office = item.value
        known(item, "entity_id", office.entity_id, entities, "entity", "entities.csv")
        known(item, "region", office.region, regions, "region", "regions.csv")


def _check_tupa_terms(parsed: Parsed) -> None:
    unique(parsed.tupa_terms, "valid_from", lambda t: f"{t.service_id},{t.valid_from}")
    procedures = {
        item.value.service_id: item.value
        for item in parsed.services
        if item.value.legal_term_business_days is not None
    }
    for item in parsed.tupa_terms:
        known(
            item, "service_id", item.value.service_id, procedures, "TUPA procedure", "services.csv"
        )


def _check_calendar(parsed: Parsed, regions: Collection[Hashable]) -> None:
    unique(parsed.non_working_days, "date", lambda d: f"{d.date} {d.scope}")
    for item in parsed.non_working_days:
        scope = item.value.scope
        if scope != NATIONAL and scope not in regions:
            reason = (
                f"unknown scope '{scope}' (expected {NATIONAL} or a region code of regions.csv)"
            )
            raise item.error("scope", reason)
