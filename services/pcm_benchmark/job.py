"""One assessment run (the composition root): read the evidence of a month, assess and rank every
entity, write the results to ClickHouse, print a summary."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from zoneinfo import ZoneInfo

from pcm.monitoring.v1 import indicator_pb2
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.catalogues.models import period_end, period_start
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_indicators.client import IndicatorsClient

from pcm_benchmark.assessment import NONE
from pcm_benchmark.distributions import peer_distributions
from pcm_benchmark.evidence import evidence_of, period_kpis, reported
from pcm_benchmark.national import Result, benchmark
from pcm_benchmark.reads import StoredResult
from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.store import stored_of, write_distributions, write_results

Reports = Callable[[str], Iterable[indicator_pb2.IndicatorValue]]
"""An entity's current reported values (the indicators service's ListIndicatorValues)."""


def assessed_month(settings: BenchmarkSettings) -> dt.date:
    if settings.benchmark_month:
        return dt.date.fromisoformat(f"{settings.benchmark_month}-01")
    today = dt.datetime.now(ZoneInfo(settings.benchmark_time_zone)).date()
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def assess_month(
    settings: BenchmarkSettings, catalogues: Catalogues, month: dt.date, reports: Reports
) -> list[Result]:
    """Assess and rank every entity on the month's evidence; write the results."""
    return assess_period(settings, catalogues, "MONTH", month, reports)


def assess_period(
    settings: BenchmarkSettings,
    catalogues: Catalogues,
    grain: str,
    start: dt.date,
    reports: Reports,
    through: dt.date | None = None,
) -> list[Result]:
    """Assess and rank every entity on the evidence of the period of ``grain`` (MONTH, QUARTER,
    YEAR) starting on ``start``, a quarter or year on its months up to ``through`` (default:
    all of them); write the results and the peer distributions."""
    client = connect(settings, database="default")
    migrate(client, settings.clickhouse_database)
    db = settings.clickhouse_database
    last_day = period_end(start, grain)
    kpis = period_kpis(
        client, catalogues, db, grain, start, through or last_day, settings.benchmark_time_zone
    )
    reported_by_entity = {
        e.entity_id: reported(reports(e.entity_id), catalogues, settings.benchmark_time_zone)
        for e in catalogues.entities
    }
    results = benchmark(catalogues, evidence_of(kpis, reported_by_entity), last_day)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    write_results(client, db, grain, start, results, now)
    version = catalogues.versions["standards"]
    found = peer_distributions(catalogues, results, kpis)
    write_distributions(client, db, grain, start, version, found, now)
    return results


def summary(results: Sequence[StoredResult], catalogues: Catalogues, shown: int = 5) -> list[str]:
    """Levels per standard, and the best and last entities overall."""
    levels = [NONE, *catalogues.standard_levels]
    lines = [f"{'standard':<28}" + "".join(f"{level.lower():>12}" for level in levels)]
    for standard in catalogues.standards:
        counts = Counter(r.level for r in results if r.standard == standard.code)
        lines.append(f"{standard.code:<28}" + "".join(f"{counts[lv]:>12}" for lv in levels))
    overall = sorted((r for r in results if r.overall), key=lambda r: r.national_rank)
    for title, picked in (("best", overall[:shown]), ("last", overall[-shown:])):
        names = ", ".join(f"{r.entity_id} {r.score:.0f}" for r in picked)
        lines.append(f"overall {title}: {names}")
    return lines


def period_label(grain: str, start: dt.date) -> str:
    """2026-10, 2026-T4 (trimestre), 2026."""
    if grain == "MONTH":
        return f"{start:%Y-%m}"
    if grain == "QUARTER":
        return f"{start.year}-T{(start.month - 1) // 3 + 1}"
    return str(start.year)


def run(settings: BenchmarkSettings) -> None:
    catalogues = load_catalogues(settings.catalogue_dir)
    month = assessed_month(settings)
    grain = settings.benchmark_grain
    start = period_start(month, grain)
    client = IndicatorsClient(
        settings.benchmark_indicators_target, settings.benchmark_token.get_secret_value()
    )
    try:
        results = assess_period(
            settings, catalogues, grain, start, client.list_indicator_values, through=month
        )
    finally:
        client.close()
    label = period_label(grain, start)
    if period_end(start, grain) > period_end(month, "MONTH"):
        label += f" (hasta {month:%Y-%m})"
    print(f"Benchmark of {label} (standards catalogue {catalogues.versions['standards']})")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for line in summary([stored_of(r, grain, start, now) for r in results], catalogues):
        print(f"  {line}")
