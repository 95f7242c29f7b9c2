"""Which catalogue KPIs a fact domain computes, and how a KPI value follows from aggregates (pure).

Each KPI is defined once, in ``catalogues/kpis.yaml``, as ``fn(field) where filters`` or a ratio of
two such measures. A ``KpiPlan`` turns the domain's KPIs into the distinct aggregates (``Agg``)
needed per (entity, grain, period, slice); the ClickHouse adapter computes them in SQL, the
reference in Python, and ``KpiPlan.finalize`` turns either into KPI values with the same code.
KPIs the stream cannot compute (another domain's facts, state at period close) are listed in
``KpiPlan.skipped`` with the reason, and logged at start.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NamedTuple

from pcm_common.catalogues import Catalogues, Kpi, Measure

from pcm_processor.domain.buckets import GRAINS
from pcm_processor.domain.facts import catalogue_maps, catalogue_params
from pcm_processor.domain.fields import Col, Lookup, SubjectHas, lookups_of, params_of
from pcm_processor.domain.registry import FactDomain

ALL = ""
"""Slice value meaning "all channels" / "all services" (as in kpi.proto)."""

PERCENTILE = 90
"""Level of the ``p90`` aggregate, by the nearest-rank method (``percentile_method`` in
catalogues/kpis.yaml): the value at 1-based rank ceil(90 * n / 100) of the sorted values, a
value that was observed. Computed in integers, so no float rounding moves a rank."""


def nearest_rank(count: int, percentile: int = PERCENTILE) -> int:
    """1-based rank of the ``percentile``-th percentile of ``count`` values (0 when none)."""
    return (percentile * count + 99) // 100


# The version of a KPI row is (distinct facts of its entity and period) << 32 | unix seconds: a
# computation that saw more facts always wins, whatever the clocks of two processors racing
# through a rebalance; for the same facts the later computation wins.
_VERSION_SHIFT = 32
_SECONDS_MASK = (1 << _VERSION_SHIFT) - 1


def kpi_version(events: int, computed_at: int) -> int:
    """Version of the KPI rows of one (entity, grain, period) computed from ``events`` facts."""
    return (int(events) << _VERSION_SHIFT) | (computed_at & _SECONDS_MASK)


Where = tuple[tuple[str, tuple[Any, ...]], ...]
Measured = tuple[float, float, float]  # value, numerator, denominator


_CHANNEL_FNS = frozenset({"channel_level", "channel_types"})


@dataclass(frozen=True)
class CatalogueChannels:
    """Channel rules of the catalogue, on the channels active in a period: only those the entity
    declares count, by their type (seed 000's four kinds)."""

    catalogues: Catalogues

    def types(self, entity: str, active: Iterable[str]) -> frozenset[str]:
        return self.catalogues.channel_types(active, entity)

    def level(self, entity: str, active: Iterable[str]) -> int | None:
        level = self.catalogues.channel_level(active, entity)
        return None if level is None else level.rank


@dataclass(frozen=True)
class Agg:
    """One aggregate over the logical facts of a slice: ``fn(field)`` where all filters hold."""

    fn: str  # count | uniq | sum | max | p90 | collect
    field: str | None
    where: Where


KpiKey = tuple[str, str, str, int, str, str]
"""(entity, KPI, grain, period start, channel, service): what a KPI row is the value of."""


class KpiRow(NamedTuple):
    """A KPI value for one entity, grain, period and slice. A tuple rather than a dataclass: a
    processor makes tens of thousands a second at national scale, and a tuple is made and
    turned into columns several times cheaper."""

    entity_id: str
    kpi_code: str
    grain: str
    period_start: int
    channel: str
    service_id: str
    value: float
    numerator: float
    denominator: float
    unit: str
    insufficient_sample: bool = False
    """Fewer observations (the denominator) than the KPI's ``min_sample``: not for ranking."""

    @property
    def key(self) -> KpiKey:
        return self[:6]

    @property
    def measured(self) -> Measured:
        """Value, numerator and denominator."""
        return self[6:9]


@dataclass(frozen=True)
class SliceKey:
    entity_id: str
    grain: str
    period_start: int
    channel: str
    service_id: str


def p90(values: list[Any]) -> Any:
    """Nearest-rank 90th percentile: the value at 1-based rank ceil(0.9 n) of the sorted values."""
    if not values:
        return 0
    return sorted(values)[nearest_rank(len(values)) - 1]


def aggregate(agg: Agg, facts: Iterable[Mapping[str, Any]]) -> Any:
    """One aggregate over facts (dicts of field values) in Python: the reference computation,
    and the term tracker's, whose facts are procedure statuses rather than table rows."""
    chosen = [f for f in facts if all(f[name] in values for name, values in agg.where)]
    if agg.fn == "count":
        return len(chosen)
    values = [f[agg.field] for f in chosen if agg.field is not None]
    if agg.fn == "uniq":
        return len(set(values))
    if agg.fn == "sum":
        return sum(values)
    if agg.fn == "max":
        return max(values, default=0)
    if agg.fn == "p90":
        return p90(values)
    if agg.fn == "collect":
        return set(values)
    raise ValueError(f"unknown aggregate {agg.fn!r}")


@dataclass(frozen=True)
class MeasureSpec:
    """A measure compiled against the plan's aggregate list (positions, not lookups: hot path)."""

    fn: str
    main: int
    count: int | None  # position of the matching count, for means, p90 and max

    def evaluate(
        self, values: Sequence[Any], channels: CatalogueChannels, entity: str
    ) -> Measured | None:
        """Value, numerator and denominator; None where the measure is undefined (no data)."""
        result = values[self.main]
        if self.count is None:
            if self.fn not in _CHANNEL_FNS:  # count, count_distinct, sum
                return float(result), float(result), 1.0
            active = channels.types(entity, result)
            if not active:
                return None
            if self.fn == "channel_types":
                return float(len(active)), float(len(active)), 1.0
            # Active channels that meet no level (no in-person channel) rank 0: below básico.
            return float(channels.level(entity, result) or 0), float(len(active)), 1.0
        count = int(values[self.count])
        if count == 0:
            return None
        if self.fn == "mean":
            return int(result) / count, float(result), float(count)
        return float(result), float(result), float(count)  # p90, max


@dataclass(frozen=True)
class PlannedKpi:
    kpi: Kpi
    grains: tuple[str, ...]
    aggregated_slices: frozenset[str]
    """Slice fields this KPI aggregates over (ACTIVE_CHANNELS counts channels): not kept on the
    slices that fix them, where the value would be trivially 1."""
    measures: tuple[MeasureSpec, ...]
    """One spec for an aggregate KPI; numerator and denominator specs for a ratio."""

    @cached_property
    def inputs(self) -> frozenset[int]:
        """Positions of the aggregates the value is computed from."""
        positions = [m.main for m in self.measures]
        positions += [m.count for m in self.measures if m.count is not None]
        return frozenset(positions)

    def value(
        self, values: Sequence[Any], channels: CatalogueChannels, entity: str
    ) -> Measured | None:
        if len(self.measures) == 1:
            return self.measures[0].evaluate(values, channels, entity)
        numerator = self.measures[0].evaluate(values, channels, entity)
        denominator = self.measures[1].evaluate(values, channels, entity)
        if numerator is None or denominator is None or denominator[0] == 0:
            return None
        return numerator[0] / denominator[0] * self.kpi.scale, numerator[0], denominator[0]


def _where(measure: Measure) -> Where:
    def values(value: Any) -> tuple[Any, ...]:
        return tuple(value) if isinstance(value, tuple | list) else (value,)

    return tuple(sorted((name, values(value)) for name, value in measure.where.items()))


def measure_aggs(measure: Measure) -> tuple[Agg, ...]:
    """The aggregates a measure needs (a mean needs a sum and a count, ...)."""
    where = _where(measure)
    count = Agg("count", None, where)
    fn = measure.fn.value
    if fn == "count":
        return (count,)
    if fn == "count_distinct":
        return (Agg("uniq", measure.field, where),)
    if fn == "sum":
        return (Agg("sum", measure.field, where),)
    if fn == "mean":
        return (Agg("sum", measure.field, where), count)
    if fn in {"p90", "max"}:
        return (Agg(fn, measure.field, where), count)
    if fn in _CHANNEL_FNS:
        return (Agg("collect", measure.field, where),)
    raise ValueError(f"unsupported measure function {fn!r}")


def _measures(kpi: Kpi) -> tuple[Measure, ...]:
    return tuple(m for m in (kpi.aggregate, kpi.numerator, kpi.denominator) if m is not None)


def _unusable_reason(kpi: Kpi, domain: FactDomain) -> str | None:
    for measure in _measures(kpi):
        if measure.source is not None and measure.source != domain.name:
            return f"needs {measure.source} facts (cross-domain KPI)"
        for name in (measure.field, *measure.where):
            if name is not None and name not in domain.fields:
                return f"field {name!r} is not known when an event arrives (snapshot KPI)"
    if not set(kpi.grains) & set(GRAINS):
        return f"grains {[g.value for g in kpi.grains]}: the processor keeps {list(GRAINS)}"
    return None


def _check_enum_filters(kpi: Kpi, domain: FactDomain) -> None:
    """A typo in a catalogue filter (TICKET_SEVED) would silently count nothing: refuse it."""
    for measure in _measures(kpi):
        for name, value in measure.where.items():
            expr = domain.fields[name]
            if isinstance(expr, Col) and expr.column in domain.enums:
                allowed = domain.enums[expr.column]
                for item in value if isinstance(value, tuple | list) else (value,):
                    if item not in allowed:
                        raise ValueError(
                            f"KPI {kpi.code}: {name}={item!r} is not one of {list(allowed)}"
                        )


@dataclass(frozen=True)
class KpiPlan:
    domain: FactDomain
    kpis: tuple[PlannedKpi, ...]
    skipped: tuple[tuple[str, str], ...]
    aggregates: tuple[Agg, ...]
    lookups: tuple[Lookup, ...]
    """Fields answered from the subject's other facts: sets computed before aggregating."""
    prefilter: tuple[str, tuple[str, ...]] | None
    """(column, labels): only facts with one of these labels can change a KPI of this domain."""
    channels: CatalogueChannels
    params: Mapping[str, Any] = field(default_factory=dict)
    """Catalogue values the fields use: parameters (``Param``) and maps (``Mapped``), by name."""

    @property
    def subject_lookups(self) -> tuple[SubjectHas, ...]:
        """Lookups across periods: a fact of the subject dirties its other periods."""
        return tuple(lookup for lookup in self.lookups if isinstance(lookup, SubjectHas))

    @property
    def grains(self) -> tuple[str, ...]:
        used = {grain for planned in self.kpis for grain in planned.grains}
        return tuple(grain for grain in GRAINS if grain in used)

    def split(self) -> tuple[KpiPlan, KpiPlan]:
        """(incremental, recomputed): the KPIs whose aggregates are sums over subjects (counts,
        sums, distinct subjects), which a state can follow by adding what a batch changed, and
        the others (percentiles, maxima, channel sets), recomputed from the facts."""
        incremental: list[PlannedKpi] = []
        recomputed: list[PlannedKpi] = []
        for planned in self.kpis:
            needs = {a for m in _measures(planned.kpi) for a in measure_aggs(m)}
            summable = all(self._summable(agg) for agg in needs)
            (incremental if summable else recomputed).append(planned)
        return self._subset(incremental), self._subset(recomputed)

    def _summable(self, agg: Agg) -> bool:
        if agg.fn in {"count", "sum"}:
            return True
        # Distinct subjects add up over subjects; distinct other values need not.
        return agg.fn == "uniq" and agg.field == self.domain.subject

    def _subset(self, kpis: Sequence[PlannedKpi]) -> KpiPlan:
        chosen = [(p.kpi, p.grains, p.aggregated_slices) for p in kpis]
        aggregates, planned = plan_measures(chosen)
        return replace(
            self,
            kpis=planned,
            aggregates=aggregates,
            prefilter=_prefilter(self.domain, planned),
            lookups=_lookups(self.domain, aggregates),
        )

    def relevant(self, label: str) -> bool:
        return self.prefilter is None or label in self.prefilter[1]

    def finalize(
        self, key: SliceKey, values: Sequence[Any], moved: Collection[int] | None = None
    ) -> list[KpiRow]:
        """Every KPI value of one slice, from its aggregates (in ``aggregates`` order); with
        ``moved`` (positions of the aggregates that changed), only the KPIs computed from them.
        """
        kpis: Iterable[PlannedKpi] = self.kpis
        if moved is not None:
            kpis = [planned for planned in self.kpis if not planned.inputs.isdisjoint(moved)]
        return kpi_rows(kpis, self.domain.slice_by, key, values, self.channels)


def kpi_rows(
    kpis: Iterable[PlannedKpi],
    slice_by: tuple[str, str],
    key: SliceKey,
    values: Sequence[Any],
    channels: CatalogueChannels,
) -> list[KpiRow]:
    """The KPI values of one slice from its aggregates (for any source of facts)."""
    rows = []
    channel_fixed = key.channel != ALL
    service_fixed = key.service_id != ALL
    first, second = slice_by
    for planned in kpis:
        if key.grain not in planned.grains:
            continue
        blocked = planned.aggregated_slices
        if (channel_fixed and first in blocked) or (service_fixed and second in blocked):
            continue
        measured = planned.value(values, channels, key.entity_id)
        if measured is not None:
            rows.append(
                KpiRow(
                    key.entity_id,
                    planned.kpi.code,
                    key.grain,
                    key.period_start,
                    key.channel,
                    key.service_id,
                    *measured,
                    planned.kpi.unit.value,
                    measured[2] < planned.kpi.min_sample,
                )
            )
    return rows


def _prefilter(
    domain: FactDomain, kpis: Iterable[PlannedKpi]
) -> tuple[str, tuple[str, ...]] | None:
    """An enum column every measure filters on: facts with other labels cannot move a KPI."""
    measures = [m for planned in kpis for m in _measures(planned.kpi)]
    if not measures:
        return None
    for column in domain.enums:
        labels: set[str] = set()
        for measure in measures:
            names = [n for n in measure.where if domain.fields[n] == Col(column)]
            if not names:
                break
            value = measure.where[names[0]]
            labels.update(value if isinstance(value, tuple | list) else (str(value),))
        else:
            return column, tuple(sorted(labels))
    return None


def _compile(measure: Measure, position: Mapping[Agg, int]) -> MeasureSpec:
    first, *rest = measure_aggs(measure)
    return MeasureSpec(measure.fn.value, position[first], position[rest[0]] if rest else None)


def plan_measures(
    chosen: Sequence[tuple[Kpi, tuple[str, ...], frozenset[str]]],
) -> tuple[tuple[Agg, ...], tuple[PlannedKpi, ...]]:
    """The distinct aggregates the KPIs need, and each KPI compiled against their positions."""
    aggregates = tuple(
        dict.fromkeys(a for kpi, _, _ in chosen for m in _measures(kpi) for a in measure_aggs(m))
    )
    position = {agg: index for index, agg in enumerate(aggregates)}
    planned = tuple(
        PlannedKpi(kpi, grains, blocked, tuple(_compile(m, position) for m in _measures(kpi)))
        for kpi, grains, blocked in chosen
    )
    return aggregates, planned


def build_plan(domain: FactDomain, catalogues: Catalogues) -> KpiPlan:
    chosen: list[tuple[Kpi, tuple[str, ...], frozenset[str]]] = []
    skipped: list[tuple[str, str]] = []
    for kpi in catalogues.kpis:
        if kpi.source != domain.name:
            continue
        if kpi.basis != "events" and not (kpi.basis == "due_date" and domain.due_dated):
            skipped.append((kpi.code, f"computed by the term tracker ({kpi.basis})"))
            continue
        reason = _unusable_reason(kpi, domain)
        if reason is not None:
            skipped.append((kpi.code, reason))
            continue
        _check_enum_filters(kpi, domain)
        fields_used = {m.field for m in _measures(kpi) if m.field is not None}
        grains = tuple(g for g in GRAINS if g in {grain.value for grain in kpi.grains})
        chosen.append((kpi, grains, frozenset(fields_used & set(domain.slice_by))))
    aggregates, planned = plan_measures(chosen)
    names = _field_names(aggregates)
    params = _params(domain, names, catalogues)

    return KpiPlan(
        domain=domain,
        kpis=planned,
        skipped=tuple(skipped),
        aggregates=aggregates,
        lookups=_lookups(domain, aggregates),
        prefilter=_prefilter(domain, planned),
        channels=CatalogueChannels(catalogues),
        params=params,
    )


def _field_names(aggregates: Iterable[Agg]) -> set[str]:
    return {n for a in aggregates for n in (a.field, *(w for w, _ in a.where)) if n is not None}


def _lookups(domain: FactDomain, aggregates: Iterable[Agg]) -> tuple[Lookup, ...]:
    """The lookups the aggregates' fields need, each once."""
    names = sorted(_field_names(aggregates))
    return tuple(dict.fromkeys(s for n in names for s in lookups_of(domain.fields[n])))


def _params(domain: FactDomain, names: Iterable[str], catalogues: Catalogues) -> dict[str, Any]:
    """The catalogue values the used fields read (parameters and maps); a missing one stops
    here."""
    # Every field of the domain may be evaluated (the reference evaluates them all).
    needed = set().union(*(params_of(expr) for expr in domain.fields.values()))
    values: dict[str, Any] = {p.code: p.value for p in catalogues.kpi_parameters.values()}
    values.update(catalogue_params(catalogues))
    values.update(catalogue_maps(catalogues))
    missing = needed - set(values)
    if missing:
        raise ValueError(f"{domain.name}: the catalogue lacks {sorted(missing)}")
    return {name: values[name] for name in sorted(needed)}
