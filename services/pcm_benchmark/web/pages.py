"""What each page shows, built from the reads (blocking: run in a worker thread). Every table a
page shows is a ``Table``, so its CSV download has exactly the rows on screen."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from markupsafe import Markup
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import Entity, add_months

from pcm_benchmark.assessment import NONE, Outcome
from pcm_benchmark.national import OVERALL
from pcm_benchmark.reads import (
    NOT_APPLICABLE,
    STEADY_POINTS,
    StoredCriterion,
    StoredResult,
    Trend,
)
from pcm_benchmark.web import labels
from pcm_benchmark.web.charts import Bar, Point, bar_chart, line_chart
from pcm_benchmark.web.data import KpiPoint, Reader
from pcm_benchmark.web.periods import (
    GRAINS,
    GROUP_LABELS,
    MalformedPeriod,
    Period,
    previous_assessed,
)
from pcm_benchmark.web.plans import Plan, PlanLister, PlansUnavailable
from pcm_benchmark.web.tables import Cell, Table, badge, number, text

MIN_PEERS_SHOWN = 5
"""A peer group's distribution is shown to an entity only when the group has at least this many
ranked entities: fewer would let it tell its peers' values apart."""
MOVERS = 10
TREND_MONTHS = 12


class NotFound(Exception):
    """The period, entity or standard asked for does not exist (404)."""


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    selected: bool = False


@dataclass(frozen=True)
class OptionGroup:
    label: str
    options: list[Option]


@dataclass(frozen=True)
class Figure:
    chart: Markup
    caption: str


@dataclass
class Page:
    title: str
    template: str
    tables: dict[str, Table] = field(default_factory=dict)
    context: dict[str, object] = field(default_factory=dict)

    def add(self, table: Table) -> Table:
        self.tables[table.key] = table
        return table


# --- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The ranking's filters (GET parameters): peer group, region, sector, government level."""

    grupo: str = ""
    region: str = ""
    sector: str = ""
    gobierno: str = ""

    NAMES = ("grupo", "region", "sector", "gobierno")

    @classmethod
    def of(cls, query: Mapping[str, str], catalogues: Catalogues) -> Filters:
        known = _filter_values(catalogues)
        return cls(
            **{
                name: query.get(name, "") if query.get(name) in known[name] else ""
                for name in cls.NAMES
            }
        )

    def admits(self, entity: Entity) -> bool:
        return (
            (not self.grupo or entity.peer_group == self.grupo)
            and (not self.region or entity.region == self.region)
            and (not self.sector or entity.sector == self.sector)
            and (not self.gobierno or entity.government_level.value == self.gobierno)
        )

    def query(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.NAMES if getattr(self, name)}

    @property
    def active(self) -> bool:
        return bool(self.query())


def _filter_values(catalogues: Catalogues) -> dict[str, dict[str, str]]:
    entities = catalogues.entities
    regions = {r.code: r.name for r in catalogues.regions}
    groups = {g.code: g.name for g in catalogues.peer_groups}
    return {
        "grupo": {e.peer_group: groups.get(e.peer_group, e.peer_group) for e in entities},
        "region": {e.region: regions.get(e.region, e.region) for e in entities},
        "sector": {e.sector: labels.code_label(e.sector) for e in entities},
        "gobierno": {
            e.government_level.value: labels.GOVERNMENT_LEVELS[e.government_level.value]
            for e in entities
        },
    }


def filter_controls(catalogues: Catalogues, filters: Filters) -> list[dict[str, object]]:
    titles = {
        "grupo": "Grupo de pares",
        "region": "Región",
        "sector": "Sector",
        "gobierno": "Nivel de gobierno",
    }
    values = _filter_values(catalogues)
    return [
        {
            "name": name,
            "label": titles[name],
            "options": [Option("", "Todos", not getattr(filters, name))]
            + [
                Option(code, label, getattr(filters, name) == code)
                for code, label in sorted(values[name].items(), key=lambda kv: kv[1])
            ],
        }
        for name in Filters.NAMES
    ]


def chosen_period(reader: Reader, asked: str | None) -> tuple[Period | None, list[Period]]:
    """The period asked for (``periodo``: ``2026-10``, ``2026-T4`` or ``2026``), or by default
    the newest assessed month (the newest period of another grain when no month was assessed).
    A malformed or never assessed period is not found, alike."""
    periods = reader.periods()
    if not asked:
        return (periods[0] if periods else None), periods
    try:
        period = Period.parse(asked)
    except MalformedPeriod as error:
        raise NotFound(f"periodo {asked!r}") from error
    if period not in periods:
        raise NotFound(f"periodo {asked}")
    return period, periods


def period_groups(periods: Sequence[Period], chosen: Period | None) -> list[OptionGroup]:
    """The period selector's choices, one group per grain that has an assessed period."""
    return [
        OptionGroup(
            GROUP_LABELS[grain],
            [Option(p.value, p.label, p == chosen) for p in periods if p.grain == grain],
        )
        for grain in GRAINS
        if any(p.grain == grain for p in periods)
    ]


# --- shared pieces ----------------------------------------------------------------------------


def _standard_names(catalogues: Catalogues) -> dict[str, str]:
    return {s.code: s.name for s in catalogues.standards}


def _standard_codes(catalogues: Catalogues) -> list[str]:
    return [OVERALL, *(s.code for s in catalogues.standards)]


def _ladder(catalogues: Catalogues) -> list[str]:
    return [NONE, *catalogues.standard_levels]


def entity_href(entity_id: str, period: Period) -> str:
    return f"/entidad/{entity_id}?{urlencode({'periodo': period.value})}"


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _score(value: float) -> Cell:
    return number(round(value, 1), labels.number(value))


def _rank(rank: int, count: int) -> Cell:
    return number(rank or None, f"{rank} de {count}" if rank else "—")


def level_counts_of(results: Iterable[StoredResult]) -> dict[str, dict[str, int]]:
    """Standard -> level (or NOT_APPLICABLE) -> entities, of results already read."""
    counts: dict[str, Counter[str]] = {}
    for r in results:
        applies = r.national_rank or r.standard == OVERALL
        counts.setdefault(r.standard, Counter())[r.level if applies else NOT_APPLICABLE] += 1
    return {standard: dict(levels) for standard, levels in counts.items()}


def distribution_table(
    key: str, caption: str, counts: Mapping[str, Mapping[str, int]], catalogues: Catalogues
) -> Table:
    """Per standard, how many entities reached each level (and to how many it does not apply)."""
    ladder = _ladder(catalogues)
    names = _standard_names(catalogues)
    rows = tuple(
        (
            text(code, labels.standard_name(code, names)),
            *(number(levels.get(lv, 0), str(levels.get(lv, 0))) for lv in ladder),
            number(levels.get(NOT_APPLICABLE, 0), str(levels.get(NOT_APPLICABLE, 0))),
        )
        for code in _standard_codes(catalogues)
        if sum((levels := counts.get(code, {})).values())
    )
    return Table(
        key,
        caption,
        ("Estándar", *(labels.level(lv) for lv in ladder), "No aplica"),
        rows,
        csv_headers=("standard", *ladder, NOT_APPLICABLE),
    )


def distribution_figures(table: Table, prefix: str) -> list[Figure]:
    """One bar chart per row of a distribution table (levels are labelled bars)."""
    figures = []
    level_headers = table.headers[1:]
    for i, row in enumerate(table.rows):
        name = row[0].text
        counts = [float(c.value or 0) for c in row[1:]]
        bars = [
            Bar(header, count, f"{count:.0f}")
            for header, count in zip(level_headers, counts, strict=True)
        ]
        description = "; ".join(f"{b.label}: {b.shown}" for b in bars)
        title = f"Entidades por nivel: {name}"
        figures.append(Figure(bar_chart(f"{prefix}-{i}", title, description + ".", bars), title))
    return figures


def ranking_table(
    key: str,
    caption: str,
    results: Sequence[StoredResult],
    catalogues: Catalogues,
    period: Period,
) -> Table:
    groups = {g.code: g.name for g in catalogues.peer_groups}
    regions = {r.code: r.name for r in catalogues.regions}
    rows = []
    for r in results:
        entity = catalogues.entity(r.entity_id)
        applies = bool(r.national_rank) or r.overall
        rows.append(
            (
                _rank(r.national_rank, r.national_count),
                text(r.entity_id, entity.name, entity_href(r.entity_id, period)),
                text(r.peer_group, groups.get(r.peer_group, r.peer_group)),
                text(entity.region, regions.get(entity.region, entity.region)),
                badge(r.level, labels.level(r.level))
                if applies
                else badge("NOT_APPLICABLE", "No aplica"),
                _score(r.score),
                _rank(r.peer_rank, r.peer_count),
                number(
                    round(r.national_percentile, 1) if applies else None,
                    labels.number(r.national_percentile) if applies else "—",
                ),
                number(r.met, str(r.met)),
                number(r.not_met, str(r.not_met)),
                number(r.no_evidence, str(r.no_evidence)),
            )
        )
    return Table(
        key,
        caption,
        (
            "Puesto nacional",
            "Entidad",
            "Grupo de pares",
            "Región",
            "Nivel",
            "Puntaje (0 a 100)",
            "Puesto en su grupo",
            "Percentil nacional",
            "Criterios cumplidos",
            "No cumplidos",
            "Sin evidencia",
        ),
        tuple(rows),
        csv_headers=(
            "national_rank",
            "entity_id",
            "peer_group",
            "region",
            "level",
            "score",
            "peer_rank",
            "national_percentile",
            "met",
            "not_met",
            "no_evidence",
        ),
        row_headers=False,
        empty="Ninguna entidad cumple los filtros elegidos.",
    )


def movers_tables(
    current: Sequence[StoredResult],
    previous: Sequence[StoredResult],
    catalogues: Catalogues,
    period: Period,
    before: Period,
) -> tuple[Table, Table]:
    then = {r.entity_id: r.national_rank for r in previous if r.national_rank}
    moves = [
        (then[r.entity_id] - r.national_rank, r)
        for r in current
        if r.national_rank and r.entity_id in then
    ]
    ups = sorted((m for m in moves if m[0] > 0), key=lambda m: (-m[0], m[1].national_rank))
    downs = sorted((m for m in moves if m[0] < 0), key=lambda m: (m[0], m[1].national_rank))

    def table(key: str, caption: str, picked: list[tuple[int, StoredResult]]) -> Table:
        rows = tuple(
            (
                text(
                    r.entity_id,
                    catalogues.entity(r.entity_id).name,
                    entity_href(r.entity_id, period),
                ),
                number(then[r.entity_id], str(then[r.entity_id])),
                number(r.national_rank, str(r.national_rank)),
                number(
                    change,
                    f"▲ sube {change}" if change > 0 else f"▼ baja {-change}",
                ),
            )
            for change, r in picked[:MOVERS]
        )
        return Table(
            key,
            caption,
            ("Entidad", f"Puesto anterior ({before.label})", "Puesto actual", "Cambio"),
            rows,
            csv_headers=("entity_id", "previous_rank", "rank", "change"),
            empty="Ninguna entidad cambió de puesto en este sentido.",
        )

    return (
        table("suben", "Entidades que más suben en el ranking nacional", ups),
        table("bajan", "Entidades que más bajan en el ranking nacional", downs),
    )


# --- national overview ------------------------------------------------------------------------


def overview(reader: Reader, catalogues: Catalogues, query: Mapping[str, str]) -> Page:
    period, periods = chosen_period(reader, query.get("periodo"))
    filters = Filters.of(query, catalogues)
    standard = query.get("estandar", OVERALL)
    if standard not in _standard_codes(catalogues):
        standard = OVERALL
    names = _standard_names(catalogues)
    page = Page("Panorama nacional", "overview.html")
    page.context |= {
        "period": period,
        "periods": period_groups(periods, period),
        "filters": filter_controls(catalogues, filters),
        "filtered": filters.active,
        "standard": standard,
        "standard_label": labels.standard_name(standard, names),
        "standards": [
            Option(code, labels.standard_name(code, names), code == standard)
            for code in _standard_codes(catalogues)
        ],
    }
    if period is None:
        return page
    admitted_ids = (
        [e.entity_id for e in catalogues.entities if filters.admits(e)] if filters.active else None
    )
    distribution = page.add(
        distribution_table(
            "distribucion",
            f"Entidades por nivel alcanzado y estándar, {period.label}",
            reader.level_counts(period, entity_ids=admitted_ids),
            catalogues,
        )
    )
    page.context["distribution_figures"] = distribution_figures(distribution, "dist")
    chosen = [
        r
        for r in reader.results(period, standard=standard)
        if filters.admits(catalogues.entity(r.entity_id))
    ]
    page.add(
        ranking_table(
            "ranking",
            f"Ranking: {labels.standard_name(standard, names)}, {period.label}",
            chosen,
            catalogues,
            period,
        )
    )
    before = previous_assessed(period, periods)
    page.context["previous"] = before
    if before is not None:
        previous = reader.results(before, standard=standard)
        up, down = movers_tables(chosen, previous, catalogues, period, before)
        page.add(up)
        page.add(down)
    return page


# --- a standard -------------------------------------------------------------------------------


def standard_page(
    reader: Reader, catalogues: Catalogues, code: str, query: Mapping[str, str]
) -> Page:
    try:
        standard = catalogues.standard(code)
    except KeyError as error:
        raise NotFound(f"estándar {code}") from error
    period, periods = chosen_period(reader, query.get("periodo"))
    filters = Filters.of(query, catalogues)
    page = Page(f"Estándar {standard.number}: {standard.name}", "standard.html")
    page.context |= {
        "standard": standard,
        "period": period,
        "periods": period_groups(periods, period),
        "filters": filter_controls(catalogues, filters),
        "filtered": filters.active,
    }
    rows = []
    for level, criteria in standard.levels.items():
        for criterion in criteria:
            rows.append(
                (
                    text(criterion.id),
                    badge(level, labels.level(level)),
                    text(criterion.description),
                    text(criterion.measure, _measure_name(catalogues, criterion.measure)),
                    text(
                        f"{criterion.op.value} {criterion.threshold:g}",
                        f"{labels.OPS[criterion.op.value]} {labels.number(criterion.threshold)}",
                    ),
                    text(
                        "reported" if criterion.reported else "kpi",
                        "Autorreportado" if criterion.reported else "Calculado (KPI)",
                    ),
                )
            )
    page.add(
        Table(
            "criterios",
            "Criterios del estándar por nivel",
            ("Criterio", "Nivel", "Descripción", "Medida", "Condición", "Fuente"),
            tuple(rows),
            csv_headers=("criterion_id", "level", "description", "measure", "condition", "source"),
        )
    )
    if period is None:
        return page
    admitted = [
        r
        for r in reader.results(period, standard=code)
        if filters.admits(catalogues.entity(r.entity_id))
    ]
    distribution = page.add(
        distribution_table(
            "distribucion",
            f"Entidades por nivel, {period.label}",
            level_counts_of(admitted),
            catalogues,
        )
    )
    page.context["distribution_figures"] = distribution_figures(distribution, "dist")
    page.add(
        ranking_table(
            "ranking",
            f"Ranking del estándar, {period.label}",
            admitted,
            catalogues,
            period,
        )
    )
    return page


def _measure_name(catalogues: Catalogues, code: str) -> str:
    try:
        return catalogues.kpi(code).name
    except KeyError:
        pass
    try:
        return catalogues.indicator(code).name
    except KeyError:
        return code


# --- an entity --------------------------------------------------------------------------------

_REASONS = (
    (re.compile(r"^no KPI value$"), "no hay valor del KPI en el periodo"),
    (re.compile(r"^never reported$"), "nunca se reportó"),
    (re.compile(r"^the reported value was rejected$"), "el valor reportado fue observado"),
    (re.compile(r"^expired on (.+)$"), r"venció el \1"),
    (
        re.compile(r"^reported for a later period \(from (.+)\)$"),
        r"reportado para un periodo posterior (que empieza el \1)",
    ),
    (
        re.compile(r"^sample (\S+) below the KPI's minimum$"),
        r"muestra de \1, menor que el mínimo del KPI",
    ),
    (
        re.compile(r"^the entity offers no such service$"),
        "la entidad no ofrece ese tipo de servicio",
    ),
)


def reason_es(reason: str) -> str:
    for pattern, spanish in _REASONS:
        if pattern.match(reason):
            return pattern.sub(spanish, reason)
    return reason


def _condition(c: StoredCriterion) -> str:
    return f"{labels.OPS.get(c.op, c.op)} {labels.number(c.threshold)}"


def entity_page(
    reader: Reader,
    catalogues: Catalogues,
    entity_id: str,
    query: Mapping[str, str],
    *,
    national: bool,
    plan_lister: PlanLister,
) -> Page:
    try:
        entity = catalogues.entity(entity_id)
    except KeyError as error:
        raise NotFound(f"entidad {entity_id}") from error
    period, periods = chosen_period(reader, query.get("periodo"))
    names = _standard_names(catalogues)
    groups = {g.code: g.name for g in catalogues.peer_groups}
    page = Page(entity.name, "entity.html")
    page.context |= {
        "entity": entity,
        "peer_group": groups.get(entity.peer_group, entity.peer_group),
        "region": catalogues.region(entity.region).name,
        "sector": labels.code_label(entity.sector),
        "government_level": labels.GOVERNMENT_LEVELS[entity.government_level.value],
        "period": period,
        "periods": period_groups(periods, period),
        "national": national,
    }
    try:
        plans, plans_failed = plan_lister(entity_id), False
    except PlansUnavailable:
        plans, plans_failed = [], True
    if period is None:
        _plans(page, reader, entity_id, None, None, plans, plans_failed)
        return page
    own = reader.results(period, entity_id=entity_id)
    by_standard = {r.standard: r for r in own}
    overall = by_standard.get(OVERALL)
    page.context["overall"] = overall
    if overall is not None:
        page.context["overall_level"] = labels.level(overall.level)
    page.add(_results_table(own, catalogues, names))
    page.add(_changes_table(reader.score_trends(period, entity_id), names, period))
    version = overall.catalogue_version if overall else (own[0].catalogue_version if own else "")
    criteria = reader.criteria(period, version, entity_id) if version else []
    sections = []
    for standard in catalogues.standards:
        result = by_standard.get(standard.code)
        mine = [c for c in criteria if c.standard == standard.code]
        evidence = page.add(_evidence_table(standard.code, standard.name, mine, catalogues))
        gaps, next_level = _gaps_table(standard.code, standard.name, result, mine, catalogues)
        page.add(gaps)
        sections.append(
            {
                "standard": standard,
                "result": result,
                "level": labels.level(result.level) if result else "—",
                "applies": bool(result and result.national_rank),
                "next_level": labels.level(next_level) if next_level else None,
                "evidence": evidence,
                "gaps": gaps,
            }
        )
    page.context["sections"] = sections
    # KPIs are computed per month only: the sections built on them show the period's months.
    month = period.closing_month(periods)
    page.context["monthly_note"] = (
        ""
        if period.grain == "MONTH"
        else f"Los KPI se calculan solo por mes: para el {period.label} esta sección muestra "
        f"los {TREND_MONTHS} meses hasta {labels.month(month)}, su mes más reciente."
    )
    _trends(page, reader, catalogues, entity_id, period, month)
    _overdue(page, reader, entity_id, period, month)
    _satisfaction(page, reader, catalogues, entity_id, period, month)
    _peers(page, reader, catalogues, entity, period, by_standard)
    _plans(page, reader, entity_id, period, month, plans, plans_failed)
    return page


def _month_of(period: Period, month: dt.date) -> str:
    """The month standing for the period, named; for a quarter or a year, said to be so."""
    if period.grain == "MONTH":
        return labels.month(month)
    return f"{labels.month(month)} (el mes más reciente del {period.label})"


def _results_table(
    own: Sequence[StoredResult], catalogues: Catalogues, names: dict[str, str]
) -> Table:
    order = {code: i for i, code in enumerate(_standard_codes(catalogues))}
    rows = []
    for r in sorted(own, key=lambda r: order.get(r.standard, 99)):
        applies = bool(r.national_rank) or r.overall
        rows.append(
            (
                text(r.standard, labels.standard_name(r.standard, names)),
                badge(r.level, labels.level(r.level))
                if applies
                else badge("NOT_APPLICABLE", "No aplica"),
                _score(r.score),
                _rank(r.peer_rank, r.peer_count),
                _rank(r.national_rank, r.national_count),
                number(r.met, str(r.met)),
                number(r.not_met, str(r.not_met)),
                number(r.no_evidence, str(r.no_evidence)),
                number(r.insufficient_sample, str(r.insufficient_sample)),
                number(r.not_applicable, str(r.not_applicable)),
            )
        )
    return Table(
        "resultados",
        "Nivel y puntaje por estándar",
        (
            "Estándar",
            "Nivel",
            "Puntaje (0 a 100)",
            "Puesto en su grupo",
            "Puesto nacional",
            "Cumple",
            "No cumple",
            "Sin evidencia",
            "Muestra insuficiente",
            "No aplica",
        ),
        tuple(rows),
        csv_headers=(
            "standard",
            "level",
            "score",
            "peer_rank",
            "national_rank",
            "met",
            "not_met",
            "no_evidence",
            "insufficient_sample",
            "not_applicable",
        ),
    )


DIRECTIONS = {
    "IMPROVING": "Mejora",
    "FALLING_BEHIND": "Retrocede",
    "STEADY": "Estable",
    "UNKNOWN": "Sin dato previo",
}


def _change(change: float | None) -> Cell:
    if change is None:
        return number(None, "—")
    shown = labels.number(change)
    return number(round(change, 1), f"+{shown}" if change > 0 else shown)


def _changes_table(trends: Sequence[Trend], names: dict[str, str], period: Period) -> Table:
    """Score changes against the period before (month, quarter or year) and the same period a
    year before; for a year the two are the same year."""
    rows = tuple(
        (
            text(t.standard, labels.standard_name(t.standard, names)),
            _score(t.score),
            _change(t.period_over_period),
            badge(
                Trend.direction(t.period_over_period),
                DIRECTIONS[Trend.direction(t.period_over_period)],
            ),
            _change(t.year_over_year),
            badge(
                Trend.direction(t.year_over_year),
                DIRECTIONS[Trend.direction(t.year_over_year)],
            ),
        )
        for t in trends
    )
    return Table(
        "cambios",
        f"Cambio de puntaje frente al periodo anterior ({period.previous().label}) y al mismo "
        f"periodo del año anterior ({period.year_before().label}); más de "
        f"{labels.number(STEADY_POINTS)} puntos: mejora o retrocede",
        (
            "Estándar",
            "Puntaje",
            "Cambio frente al periodo anterior",
            "Tendencia frente al periodo anterior",
            "Cambio frente al año anterior",
            "Tendencia frente al año anterior",
        ),
        rows,
        # One spelling for every grain, so a CSV reader need not know which one it got.
        csv_headers=(
            "standard",
            "score",
            "change_vs_previous",
            "trend_vs_previous",
            "change_vs_year_before",
            "trend_vs_year_before",
        ),
    )


def _evidence_table(
    code: str, name: str, criteria: Sequence[StoredCriterion], catalogues: Catalogues
) -> Table:
    described = {
        c.id: c.description
        for s in catalogues.standards
        if s.code == code
        for level in s.levels.values()
        for c in level
    }
    rows = tuple(
        (
            text(c.criterion_id),
            badge(c.level, labels.level(c.level)),
            text(described.get(c.criterion_id, "")),
            text(
                c.kpi_code or c.indicator_code,
                _measure_name(catalogues, c.kpi_code or c.indicator_code),
            ),
            text(f"{c.op} {c.threshold:g}", _condition(c)),
            number(c.value, labels.number(c.value)),
            badge(c.outcome, labels.outcome(c.outcome)),
            text(
                "yes" if c.verified else "no",
                "Sí" if c.verified else ("No" if c.indicator_code else "—"),
            ),
            text(c.reason, reason_es(c.reason)),
        )
        for c in criteria
    )
    return Table(
        f"evidencia-{code}",
        f"Evidencia por criterio: {name}",
        (
            "Criterio",
            "Nivel",
            "Descripción",
            "Medida",
            "Condición",
            "Valor",
            "Resultado",
            "Verificado",
            "Motivo",
        ),
        rows,
        csv_headers=(
            "criterion_id",
            "level",
            "description",
            "measure",
            "condition",
            "value",
            "outcome",
            "verified",
            "reason",
        ),
    )


def _gaps_table(
    code: str,
    name: str,
    result: StoredResult | None,
    criteria: Sequence[StoredCriterion],
    catalogues: Catalogues,
) -> tuple[Table, str | None]:
    """What is missing for the next level: every applicable criterion up to it not met."""
    ladder = _ladder(catalogues)
    next_level: str | None = None
    if result is not None and result.level in ladder and result.national_rank:
        following = ladder.index(result.level) + 1
        next_level = ladder[following] if following < len(ladder) else None
    rows: tuple[tuple[Cell, ...], ...] = ()
    if next_level is not None:
        upto = set(ladder[1 : ladder.index(next_level) + 1])
        rows = tuple(
            (
                text(c.criterion_id),
                badge(c.level, labels.level(c.level)),
                text(
                    c.kpi_code or c.indicator_code,
                    _measure_name(catalogues, c.kpi_code or c.indicator_code),
                ),
                text(f"{c.op} {c.threshold:g}", _condition(c)),
                number(c.value, labels.number(c.value)),
                badge(c.outcome, labels.outcome(c.outcome)),
                text(_needed(c), _needed_es(c)),
            )
            for c in criteria
            if c.level in upto
            and c.outcome not in (Outcome.MET.value, Outcome.NOT_APPLICABLE.value)
        )
    empty = (
        "Alcanzó el nivel más alto: no tiene brechas."
        if result is not None and result.national_rank and next_level is None
        else "El estándar no aplica a la entidad."
        if next_level is None
        else "Sin brechas."
    )
    table = Table(
        f"brechas-{code}",
        f"Brechas para el nivel {labels.level(next_level)}: {name}"
        if next_level
        else f"Brechas: {name}",
        ("Criterio", "Nivel", "Medida", "Se requiere", "Valor actual", "Resultado", "Qué falta"),
        rows,
        csv_headers=("criterion_id", "level", "measure", "condition", "value", "outcome", "needed"),
        empty=empty,
    )
    return table, next_level


def _needed(c: StoredCriterion) -> str:
    return f"{c.kpi_code or c.indicator_code} {c.op} {c.threshold:g}"


def _needed_es(c: StoredCriterion) -> str:
    target = f"valor {_condition(c)}"
    if c.outcome == Outcome.NOT_MET.value:
        return f"Llevar el valor de {labels.number(c.value)} a {_condition(c)}"
    if c.outcome == Outcome.INSUFFICIENT_SAMPLE.value:
        return f"Un {target} con una muestra suficiente ({reason_es(c.reason)})"
    if c.indicator_code:
        return f"Reportar {c.indicator_code} con {target} ({reason_es(c.reason)})"
    return f"Datos del KPI con {target} ({reason_es(c.reason)})"


def _short_month(day: dt.date) -> str:
    return f"{labels.MONTHS[day.month - 1][:3]} {day:%y}"


def _trends(
    page: Page,
    reader: Reader,
    catalogues: Catalogues,
    entity_id: str,
    period: Period,
    month: dt.date,
) -> None:
    """The KPIs' monthly series over the 12 months up to ``month`` (the period's, when it is a
    quarter or a year: there are no quarterly or yearly KPI values to chart)."""
    first = add_months(month, -(TREND_MONTHS - 1))
    months = [add_months(first, i) for i in range(TREND_MONTHS)]
    series = reader.kpi_series(entity_id, labels.TREND_KPIS, "MONTH", first, add_months(month, 1))
    figures = []
    columns: list[dict[dt.date, KpiPoint]] = []
    for i, code in enumerate(labels.TREND_KPIS):
        values = {p.period: p for p in series.get(code, [])}
        columns.append(values)
        kpi = catalogues.kpi(code)
        points = [
            Point(
                _short_month(m),
                values[m].value if m in values else None,
                labels.number(values[m].value, 0) if m in values else "s/d",
            )
            for m in months
        ]
        known = [p for p in points if p.value is not None]
        described = "; ".join(f"{p.label}: {p.shown} %" for p in known) if known else "sin datos"
        title = (
            f"{kpi.name} (%), últimos {TREND_MONTHS} meses"
            if period.grain == "MONTH"
            else f"{kpi.name} (%), {TREND_MONTHS} meses hasta {labels.month(month)}"
        )
        caption = (
            title
            if period.grain == "MONTH"
            else f"{title}: serie mensual, porque los KPI se calculan por mes y no por "
            f"{period.noun}"
        )
        figures.append(
            Figure(
                line_chart(
                    f"tendencia-{i}", title, f"Valores mensuales: {described}.", points, 100, ""
                ),
                caption,
            )
        )
    page.context["trend_figures"] = figures
    rows = tuple(
        (
            text(f"{m:%Y-%m}", labels.month(m)),
            *(
                number(
                    _rounded(col[m].value if m in col else None, 2),
                    (
                        labels.number(col[m].value)
                        + (" (muestra insuficiente)" if col[m].insufficient_sample else "")
                    )
                    if m in col
                    else "—",
                )
                for col in columns
            ),
        )
        for m in months
    )
    page.add(
        Table(
            "tendencias",
            "KPI mensuales (% del total de la entidad)",
            ("Mes", *(catalogues.kpi(code).name for code in labels.TREND_KPIS)),
            rows,
            csv_headers=("month", *labels.TREND_KPIS),
        )
    )


def _overdue(page: Page, reader: Reader, entity_id: str, period: Period, month: dt.date) -> None:
    """The overdue complaints at each day's close in ``month`` and at each month's close."""
    end = add_months(month, 1)
    first = add_months(month, -(TREND_MONTHS - 1))
    daily = reader.kpi_series(entity_id, [labels.OVERDUE_KPI], "DAY", month, end)[
        labels.OVERDUE_KPI
    ]
    monthly = reader.kpi_series(entity_id, [labels.OVERDUE_KPI], "MONTH", first, end)[
        labels.OVERDUE_KPI
    ]
    values = {p.period: p.value for p in daily}
    days = [month + dt.timedelta(days=i) for i in range((end - month).days)]
    points = [Point(f"{d.day}", values.get(d), labels.number(values.get(d), 0)) for d in days]
    known = [(d, values[d]) for d in days if values.get(d) is not None]
    described = "; ".join(f"día {d.day}: {labels.number(v, 0)}" for d, v in known) or "sin datos"
    title = f"Reclamos pendientes vencidos al cierre de cada día, {_month_of(period, month)}"
    page.context["overdue_figure"] = Figure(
        line_chart("vencidos", title, f"{described}.", points, None, "", step=18, label_every=5),
        title,
    )
    page.add(
        Table(
            "vencidos-dia",
            f"Reclamos pendientes vencidos por día, {_month_of(period, month)}",
            ("Día", "Reclamos vencidos"),
            tuple(
                (
                    text(f"{d:%Y-%m-%d}", f"{d.day} de {labels.month(d)}"),
                    number(v, labels.number(v, 0)),
                )
                for d, v in known
            ),
            csv_headers=("day", labels.OVERDUE_KPI),
        )
    )
    page.add(
        Table(
            "vencidos-mes",
            "Reclamos pendientes vencidos al cierre de cada mes",
            ("Mes", "Reclamos vencidos"),
            tuple(
                (
                    text(f"{p.period:%Y-%m}", labels.month(p.period)),
                    number(p.value, labels.number(p.value, 0)),
                )
                for p in monthly
            ),
            csv_headers=("month", labels.OVERDUE_KPI),
        )
    )


def _satisfaction(
    page: Page,
    reader: Reader,
    catalogues: Catalogues,
    entity_id: str,
    period: Period,
    month: dt.date,
) -> None:
    codes = [
        f"SATISFACTION_{kind}_{d.code}" for d in catalogues.drivers for kind in ("MEAN", "PCT")
    ]
    found = reader.kpi_series(entity_id, codes, "MONTH", month, add_months(month, 1))
    rows = []
    bars = []
    for driver in catalogues.drivers:
        mean = next(iter(found.get(f"SATISFACTION_MEAN_{driver.code}", [])), None)
        pct = next(iter(found.get(f"SATISFACTION_PCT_{driver.code}", [])), None)
        if mean is None and pct is None:
            continue
        rows.append(
            (
                text(driver.code, driver.name),
                number(
                    round(mean.value, 2) if mean and mean.value is not None else None,
                    labels.number(mean.value, 2) if mean else "—",
                ),
                number(
                    round(pct.value, 1) if pct and pct.value is not None else None,
                    labels.number(pct.value) if pct else "—",
                ),
                number(
                    pct.denominator if pct else None,
                    labels.number(pct.denominator, 0) if pct else "—",
                ),
            )
        )
        if pct is not None and pct.value is not None:
            bars.append(Bar(driver.name, pct.value, f"{labels.number(pct.value)} %"))
    title = f"Personas satisfechas por conductor (%), {_month_of(period, month)}"
    page.context["satisfaction_figure"] = (
        Figure(
            bar_chart(
                "satisfaccion",
                title,
                "; ".join(f"{b.label}: {b.shown}" for b in bars) + ".",
                bars,
                100,
            ),
            title,
        )
        if bars
        else None
    )
    page.add(
        Table(
            "satisfaccion",
            f"Satisfacción por conductor, {_month_of(period, month)}",
            ("Conductor", "Media (1 a 5)", "% satisfechos", "Respuestas"),
            tuple(rows),
            csv_headers=("driver", "mean", "satisfied_pct", "responses"),
        )
    )


def _peers(
    page: Page,
    reader: Reader,
    catalogues: Catalogues,
    entity: Entity,
    period: Period,
    mine: Mapping[str, StoredResult],
) -> None:
    """The peer group, anonymised: how many reached each level, score quartiles, and where the
    entity stands; no other entity's name or value."""
    names = _standard_names(catalogues)
    ladder = _ladder(catalogues)
    counts = reader.level_counts(period, peer_group=entity.peer_group)
    ranked = {
        code: sum(n for level, n in counts.get(code, {}).items() if level != NOT_APPLICABLE)
        for code in _standard_codes(catalogues)
    }
    size = max(ranked.values(), default=0)
    page.context["peer_count"] = size
    page.context["peers_hidden"] = size < MIN_PEERS_SHOWN
    rows = []
    version = next(iter(mine.values())).catalogue_version if mine else None
    spread = reader.score_distributions(period, version, entity.peer_group) if version else {}
    if size >= MIN_PEERS_SHOWN:
        for code, members in ranked.items():
            scores = spread.get(code)
            if members < MIN_PEERS_SHOWN or scores is None:
                continue
            levels = counts.get(code, {})
            q1, median, q3 = scores.p25, scores.p50, scores.p75
            own = mine.get(code)
            rows.append(
                (
                    text(code, labels.standard_name(code, names)),
                    number(members, str(members)),
                    *(number(levels.get(lv, 0), str(levels.get(lv, 0))) for lv in ladder),
                    _score(q1),
                    _score(median),
                    _score(q3),
                    _rank(own.peer_rank, own.peer_count) if own else number(None, "—"),
                )
            )
    page.add(
        Table(
            "pares",
            "Su grupo de pares (anónimo): entidades por nivel y cuartiles de puntaje",
            (
                "Estándar",
                "Entidades",
                *(labels.level(lv) for lv in ladder),
                "Cuartil 1",
                "Mediana",
                "Cuartil 3",
                "Su puesto",
            ),
            tuple(rows),
            csv_headers=(
                "standard",
                "entities",
                *ladder,
                "score_q1",
                "score_median",
                "score_q3",
                "own_peer_rank",
            ),
            empty=(
                f"El grupo tiene menos de {MIN_PEERS_SHOWN} entidades evaluadas: su distribución "
                "no se muestra para no identificarlas."
            ),
        )
    )


def _plans(
    page: Page,
    reader: Reader,
    entity_id: str,
    period: Period | None,
    month: dt.date | None,
    plans: list[Plan] | None,
    failed: bool,
) -> None:
    """The entity's improvement plans, each with its KPI's value in the month shown (the
    period's, for a quarter or a year) and how far that value went from the plan's baseline to
    its target."""
    page.context["plans_available"] = plans is not None
    latest: dict[str, float | None] = {}
    codes = sorted({p.kpi_code for p in plans or [] if p.kpi_code})
    if month is not None and codes:
        series = reader.kpi_series(entity_id, codes, "MONTH", month, add_months(month, 1))
        latest = {code: points[-1].value for code, points in series.items() if points}
    rows = []
    for p in plans or []:
        value = latest.get(p.kpi_code)
        share = None
        if value is not None and p.target != p.baseline:
            share = min(100.0, max(0.0, 100.0 * (value - p.baseline) / (p.target - p.baseline)))
        rows.append(
            (
                text(p.plan_id, p.title),
                text(p.standard, p.standard or "—"),
                text(p.criterion_id, p.criterion_id or "—"),
                text(p.kpi_code, p.kpi_code or "—"),
                text(p.stage, p.stage_label),
                number(p.baseline, labels.number(p.baseline)),
                number(p.target, labels.number(p.target)),
                number(value, labels.number(value)),
                number(None if share is None else round(share, 1), labels.number(share)),
                text(p.registered_on.isoformat()),
                text(p.deadline.isoformat()),
            )
        )
    page.add(
        Table(
            "planes",
            "Planes de mejora registrados",
            (
                "Plan",
                "Estándar",
                "Criterio",
                "KPI",
                "Etapa",
                "Línea base",
                "Meta",
                "Valor del mes"
                if period is None or month is None or period.grain == "MONTH"
                else f"Valor en {labels.month(month)}",
                "Avance hacia la meta (%)",
                "Registrado",
                "Plazo",
            ),
            tuple(rows),
            csv_headers=(
                "title",
                "standard",
                "criterion_id",
                "kpi_code",
                "stage",
                "baseline",
                "target",
                "value",
                "progress_pct",
                "registered_on",
                "deadline",
            ),
            empty=(
                "No se pudieron leer los planes: la base de planes no responde."
                if failed
                else "Sin planes registrados."
            ),
        )
    )
