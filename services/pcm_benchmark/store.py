"""Benchmark results written to ClickHouse (``benchmark_results``, migration benchmark/0001)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from clickhouse_driver import Client

from pcm_benchmark.assessment import Outcome
from pcm_benchmark.distributions import PeerDistribution
from pcm_benchmark.national import OVERALL, Result
from pcm_benchmark.reads import StoredResult

COLUMNS = ", ".join(StoredResult.__dataclass_fields__)

CRITERIA_COLUMNS = (
    "grain, period_start, catalogue_version, entity_id, standard, criterion_id, level, kpi_code, "
    "indicator_code, op, threshold, outcome, value, numerator, denominator, reason, verified, "
    "computed_at"
)


def write_results(
    client: Client,
    database: str,
    grain: str,
    period_start: dt.date,
    results: Sequence[Result],
    computed_at: dt.datetime,
) -> None:
    """A period's results and the evidence behind each criterion, one insert each (a rerun of
    the period and catalogue version replaces them at the next merge)."""
    rows = [_row(stored_of(r, grain, period_start, computed_at)) for r in results]
    client.execute(f"INSERT INTO {database}.benchmark_results ({COLUMNS}) VALUES", rows)
    criteria = [
        (
            grain,
            period_start,
            r.catalogue_version,
            r.entity_id,
            r.standard,
            c.criterion.id,
            c.level,
            c.criterion.kpi or "",
            c.criterion.indicator or "",
            c.criterion.op.value,
            c.criterion.threshold,
            c.outcome.value,
            c.value,
            c.numerator or 0.0,
            c.denominator or 0.0,
            c.reason,
            int(c.verified),
            computed_at,
        )
        for r in results
        if r.standard != OVERALL
        for c in r.assessments[0].criteria
    ]
    client.execute(
        f"INSERT INTO {database}.benchmark_criteria ({CRITERIA_COLUMNS}) VALUES", criteria
    )


def write_distributions(
    client: Client,
    database: str,
    grain: str,
    period_start: dt.date,
    catalogue_version: str,
    found: Sequence[PeerDistribution],
    computed_at: dt.datetime,
) -> None:
    """A period's peer distributions (``benchmark_distributions``), one insert."""
    rows = [
        (
            grain,
            period_start,
            catalogue_version,
            d.peer_group,
            d.measure_kind,
            d.measure,
            d.values.count,
            d.values.p10,
            d.values.p25,
            d.values.p50,
            d.values.p75,
            d.values.p90,
            d.values.mean,
            computed_at,
        )
        for d in found
    ]
    client.execute(
        f"INSERT INTO {database}.benchmark_distributions (grain, period_start, "
        "catalogue_version, peer_group, measure_kind, measure, count, p10, p25, p50, p75, p90, "
        "mean, computed_at) VALUES",
        rows,
    )


def stored_of(
    result: Result, grain: str, period: dt.date, computed_at: dt.datetime
) -> StoredResult:
    """A fresh result as the row it is stored as (one shape to publish and to read back)."""
    counts = [result.outcomes.get(outcome, 0) for outcome in Outcome]
    met, not_met, no_evidence, insufficient, not_applicable = counts
    return StoredResult(
        grain,
        period,
        result.catalogue_version,
        result.standard,
        result.peer_group,
        result.entity_id,
        result.level,
        result.score,
        result.in_peer_group.rank,
        result.in_peer_group.peer_count,
        result.in_peer_group.percentile,
        result.national.rank,
        result.national.peer_count,
        result.national.percentile,
        met,
        not_met,
        no_evidence,
        insufficient,
        not_applicable,
        _gaps(result),
        computed_at,
    )


def _row(stored: StoredResult) -> tuple[object, ...]:
    values = [getattr(stored, name) for name in StoredResult.__dataclass_fields__]
    return tuple(list(v) if isinstance(v, tuple) else v for v in values)


def _gaps(result: Result) -> tuple[str, ...]:
    """What the standard misses for its next level (none listed for OVERALL)."""
    if result.standard == OVERALL:
        return ()
    return tuple(f"{gap.criterion_id}: {gap.needed}" for a in result.assessments for gap in a.gaps)
