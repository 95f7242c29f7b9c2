"""Reading the benchmark results back (``benchmark_results``): what the gRPC service, the
dashboard and the open-data export show. Every read names a grain and a period, the front of the
table's sort key; the catalogue version defaults to the newest one the period was assessed
under."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_driver import Client
from pcm_common.catalogues.models import add_months

from pcm_benchmark.national import OVERALL


@dataclass(frozen=True)
class StoredResult:
    """One row of ``benchmark_results`` (see migration benchmark/0001)."""

    grain: str
    period_start: dt.date
    catalogue_version: str
    standard: str
    peer_group: str
    entity_id: str
    level: str
    score: float
    peer_rank: int
    peer_count: int
    peer_percentile: float
    national_rank: int
    national_count: int
    national_percentile: float
    met: int
    not_met: int
    no_evidence: int
    insufficient_sample: int
    not_applicable: int
    gaps: tuple[str, ...]
    computed_at: dt.datetime

    @property
    def overall(self) -> bool:
        return self.standard == OVERALL


_COLUMNS = ", ".join(
    name if name != "grain" else "toString(grain)" for name in StoredResult.__dataclass_fields__
)


def periods(client: Client, database: str, grain: str = "MONTH") -> list[dt.date]:
    """The periods assessed, newest first."""
    rows = client.execute(
        f"SELECT DISTINCT period_start FROM {database}.benchmark_results "
        "WHERE grain = %(grain)s ORDER BY period_start DESC",
        {"grain": grain},
    )
    return [row[0] for row in rows]


def newest_version(client: Client, database: str, grain: str, period: dt.date) -> str | None:
    """The catalogue version of the period's most recent assessment (two within the same second:
    the greater version string, so that the answer never depends on the merge order)."""
    rows = client.execute(
        "SELECT argMax(catalogue_version, (computed_at, catalogue_version)) "
        f"FROM {database}.benchmark_results "
        "WHERE grain = %(grain)s AND period_start = %(period)s HAVING count() > 0",
        {"grain": grain, "period": period},
    )
    return str(rows[0][0]) if rows else None


def results(
    client: Client,
    database: str,
    grain: str,
    period: dt.date,
    *,
    version: str | None = None,
    standard: str | None = None,
    entity_id: str | None = None,
    peer_group: str | None = None,
) -> list[StoredResult]:
    """The results of a period under one catalogue version (default: the newest), optionally of
    one standard (OVERALL included), entity or peer group; by standard, then national rank."""
    chosen = version or newest_version(client, database, grain, period)
    if chosen is None:
        return []
    filters = ["grain = %(grain)s", "period_start = %(period)s", "catalogue_version = %(version)s"]
    params: dict[str, object] = {"grain": grain, "period": period, "version": chosen}
    for column, value in (
        ("standard", standard),
        ("entity_id", entity_id),
        ("peer_group", peer_group),
    ):
        if value is not None:
            filters.append(f"{column} = %({column})s")
            params[column] = value
    rows = client.execute(
        f"SELECT {_COLUMNS} FROM {database}.benchmark_results FINAL "
        f"WHERE {' AND '.join(filters)} "
        "ORDER BY standard, national_rank = 0, national_rank, entity_id",
        params,
    )
    return [_stored(row) for row in rows]


def _stored(row: Sequence[Any]) -> StoredResult:
    # Positional, in the columns' order (the table's fields): a page reads tens of thousands.
    stored = StoredResult(*row)
    object.__setattr__(stored, "gaps", tuple(stored.gaps))  # an Array comes back as a list
    return stored


NOT_APPLICABLE = "NOT_APPLICABLE"
"""The ``level`` key under which ``level_counts`` counts the entities a standard does not fit."""


def level_counts(
    client: Client,
    database: str,
    grain: str,
    period: dt.date,
    *,
    version: str | None = None,
    entity_ids: Sequence[str] | None = None,
    peer_group: str | None = None,
) -> dict[str, dict[str, int]]:
    """Standard -> level (or NOT_APPLICABLE) -> how many entities, counted by ClickHouse (of the
    given entities or peer group only)."""
    chosen = version or newest_version(client, database, grain, period)
    if chosen is None:
        return {}
    filters = ["grain = %(grain)s", "period_start = %(period)s", "catalogue_version = %(version)s"]
    if entity_ids is not None:
        filters.append("entity_id IN %(entities)s")
    if peer_group is not None:
        filters.append("peer_group = %(peer_group)s")
    rows = client.execute(
        "SELECT standard, if(national_rank = 0 AND standard != %(overall)s, "
        f"%(not_applicable)s, level) AS shown, count() FROM {database}.benchmark_results FINAL "
        f"WHERE {' AND '.join(filters)} GROUP BY standard, shown",
        {
            "grain": grain,
            "period": period,
            "version": chosen,
            "entities": tuple(entity_ids or ()),
            "peer_group": peer_group,
            "overall": OVERALL,
            "not_applicable": NOT_APPLICABLE,
        },
    )
    counts: dict[str, dict[str, int]] = {}
    for standard, level, count in rows:
        counts.setdefault(standard, {})[level] = int(count)
    return counts


@dataclass(frozen=True)
class StoredCriterion:
    """One row of ``benchmark_criteria``: the evidence behind one criterion of a result."""

    entity_id: str
    standard: str
    criterion_id: str
    level: str
    kpi_code: str
    indicator_code: str
    op: str
    threshold: float
    outcome: str
    value: float | None
    numerator: float
    denominator: float
    reason: str
    verified: bool


def criteria(
    client: Client,
    database: str,
    grain: str,
    period: dt.date,
    version: str,
    entity_id: str,
    standard: str | None = None,
) -> list[StoredCriterion]:
    """The evidence behind an entity's results (one standard, or all), by criterion id."""
    columns = ", ".join(StoredCriterion.__dataclass_fields__)
    where = "" if standard is None else " AND standard = %(standard)s"
    rows = client.execute(
        f"SELECT {columns} FROM {database}.benchmark_criteria FINAL "
        "WHERE grain = %(grain)s AND period_start = %(period)s "
        f"AND catalogue_version = %(version)s AND entity_id = %(entity)s{where} "
        "ORDER BY standard, criterion_id",
        {
            "grain": grain,
            "period": period,
            "version": version,
            "entity": entity_id,
            "standard": standard,
        },
    )
    return [_criterion(row) for row in rows]


def _criterion(row: Sequence[Any]) -> StoredCriterion:
    fields: dict[str, Any] = dict(zip(StoredCriterion.__dataclass_fields__, row, strict=True))
    fields["verified"] = bool(fields["verified"])  # a UInt8
    return StoredCriterion(**fields)


@dataclass(frozen=True)
class StoredDistribution:
    """One row of ``benchmark_distributions`` (peer group '' = national)."""

    peer_group: str
    measure_kind: str
    measure: str
    count: int
    p10: float
    p25: float
    p50: float
    p75: float
    p90: float
    mean: float


def distributions(
    client: Client,
    database: str,
    grain: str,
    period: dt.date,
    version: str,
    peer_group: str | None = None,
    measure_kind: str | None = None,
) -> list[StoredDistribution]:
    """A period's peer distributions (of one peer group, '' national; of one kind)."""
    filters = [
        "grain = %(grain)s",
        "period_start = %(period)s",
        "catalogue_version = %(version)s",
    ]
    if peer_group is not None:
        filters.append("peer_group = %(peer_group)s")
    if measure_kind is not None:
        filters.append("measure_kind = %(kind)s")
    columns = ", ".join(
        name if name != "measure_kind" else "toString(measure_kind)"
        for name in StoredDistribution.__dataclass_fields__
    )
    rows = client.execute(
        f"SELECT {columns} FROM {database}.benchmark_distributions FINAL "
        f"WHERE {' AND '.join(filters)} ORDER BY peer_group, measure_kind, measure",
        {
            "grain": grain,
            "period": period,
            "version": version,
            "peer_group": peer_group,
            "kind": measure_kind,
        },
    )
    return [StoredDistribution(*row) for row in rows]


STEADY_POINTS = 5.0
"""A score change within this many points either way is steady, beyond it improving or falling
behind (a criterion of a three-criterion standard is 33 points: any single criterion counts)."""


@dataclass(frozen=True)
class Trend:
    """An entity's score on a standard (or OVERALL) now, the period before and a year before
    (each period under its newest catalogue version); None where it was not assessed."""

    standard: str
    score: float
    previous: float | None
    """The score of the period before (month, quarter or year)."""
    year_before: float | None

    @staticmethod
    def direction(change: float | None) -> str:
        if change is None:
            return "UNKNOWN"
        if change > STEADY_POINTS:
            return "IMPROVING"
        if change < -STEADY_POINTS:
            return "FALLING_BEHIND"
        return "STEADY"

    @property
    def period_over_period(self) -> float | None:
        return None if self.previous is None else self.score - self.previous

    @property
    def year_over_year(self) -> float | None:
        return None if self.year_before is None else self.score - self.year_before


def previous_start(grain: str, period: dt.date) -> dt.date:
    """The start of the period of ``grain`` before the one starting on ``period``."""
    return add_months(period, -{"MONTH": 1, "QUARTER": 3}.get(grain, 12))


def trends(
    client: Client, database: str, grain: str, period: dt.date, entity_id: str
) -> list[Trend]:
    """Score changes of an entity by standard against the period before (the month, quarter or
    year before) and the same period a year before."""
    before = previous_start(grain, period)
    year_before = period.replace(year=period.year - 1)
    rows = client.execute(
        "SELECT period_start, standard, argMax(score, (computed_at, catalogue_version)) "
        f"FROM {database}.benchmark_results WHERE grain = %(grain)s "
        "AND entity_id = %(entity)s AND period_start IN %(periods)s "
        "GROUP BY period_start, standard",
        {"grain": grain, "entity": entity_id, "periods": (period, before, year_before)},
    )
    scores = {(start, standard): float(score) for start, standard, score in rows}
    return [
        Trend(
            standard,
            score,
            scores.get((before, standard)),
            scores.get((year_before, standard)),
        )
        for (start, standard), score in sorted(scores.items())
        if start == period
    ]
