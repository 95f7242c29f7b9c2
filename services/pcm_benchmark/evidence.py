"""Where the assessment's evidence comes from: the KPIs the processor stored in ClickHouse, and the
values entities reported to the indicators service (read through its public API)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from clickhouse_driver import Client
from pcm.monitoring.v1 import common_pb2, indicator_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import period_end

from pcm_benchmark.assessment import Evidence, KpiEvidence, ReportedEvidence, Review
from pcm_benchmark.rollup import months_of, period_evidence

_GRAINS = {
    common_pb2.GRAIN_MONTH: "MONTH",
    common_pb2.GRAIN_QUARTER: "QUARTER",
    common_pb2.GRAIN_YEAR: "YEAR",
}
_REVIEWS = {
    indicator_pb2.INDICATOR_STATUS_REPORTED: Review.REPORTED,
    indicator_pb2.INDICATOR_STATUS_VERIFIED: Review.VERIFIED,
    indicator_pb2.INDICATOR_STATUS_REJECTED: Review.REJECTED,
}


def month_kpis(
    client: Client, database: str, month: dt.date, time_zone: str = "America/Lima"
) -> dict[str, dict[str, KpiEvidence]]:
    """Entity -> KPI code -> its MONTH value for all channels and services, newest version."""
    by_month = monthly_kpis(client, database, [month], time_zone)
    return {
        entity_id: {code: months[month] for code, months in codes.items()}
        for entity_id, codes in by_month.items()
    }


def period_kpis(
    client: Client,
    catalogues: Catalogues,
    database: str,
    grain: str,
    start: dt.date,
    through: dt.date,
    time_zone: str = "America/Lima",
) -> dict[str, dict[str, KpiEvidence]]:
    """Entity -> KPI code -> its value for the period of ``grain`` starting on ``start``: the
    MONTH value itself, or a QUARTER's or YEAR's rolled up from its months up to ``through``
    (``rollup.py``)."""
    if grain == "MONTH":
        return month_kpis(client, database, start, time_zone)
    months = months_of(grain, start, through)
    by_month = monthly_kpis(client, database, months, time_zone)
    return period_evidence(catalogues, by_month, months[-1])


def monthly_kpis(
    client: Client, database: str, months: Sequence[dt.date], time_zone: str = "America/Lima"
) -> dict[str, dict[str, dict[dt.date, KpiEvidence]]]:
    """Entity -> KPI code -> month -> its MONTH value for all channels and services (newest
    version of each)."""
    zone = ZoneInfo(time_zone)
    starts = {dt.datetime.combine(m.replace(day=1), dt.time(), zone): m for m in months}
    rows = client.execute(
        "SELECT entity_id, kpi_code, period_start AS start, argMax(value, version), "
        "argMax(numerator, version), argMax(denominator, version), "
        "argMax(insufficient_sample, version) "
        f"FROM {database}.kpi_values WHERE grain = 'MONTH' AND period_start IN %(starts)s "
        "AND channel = '' AND service_id = '' GROUP BY entity_id, kpi_code, start",
        {"starts": tuple(starts)},
    )
    found: dict[str, dict[str, dict[dt.date, KpiEvidence]]] = {}
    for entity_id, code, start, value, numerator, denominator, insufficient in rows:
        month = start.replace(tzinfo=dt.UTC).astimezone(zone).date()
        usable = None if math.isnan(value) else float(value)
        found.setdefault(entity_id, {}).setdefault(code, {})[month] = KpiEvidence(
            usable, numerator, denominator, bool(insufficient)
        )
    return found


def reported(
    values: Iterable[indicator_pb2.IndicatorValue],
    catalogues: Catalogues,
    time_zone: str = "America/Lima",
) -> dict[str, ReportedEvidence]:
    """Indicator code -> the newest current value of each (as ``ListIndicatorValues`` answers:
    superseded values are history, not evidence)."""
    zone = ZoneInfo(time_zone)
    found: dict[str, tuple[dt.date, ReportedEvidence]] = {}
    for value in values:
        review = _REVIEWS.get(value.status)
        grain = _GRAINS.get(value.grain)
        if review is None or grain is None:
            continue
        start = dt.datetime.fromtimestamp(value.period_start.seconds, zone).date()
        try:
            until = catalogues.indicator(value.indicator_code).valid_until(period_end(start, grain))
        except KeyError:
            continue  # an indicator the catalogue no longer has
        newest = found.get(value.indicator_code)
        if newest is None or start > newest[0]:
            found[value.indicator_code] = (
                start,
                ReportedEvidence(value.value, review, start, until),
            )
    return {code: evidence for code, (_, evidence) in found.items()}


def evidence_of(
    kpis: Mapping[str, Mapping[str, KpiEvidence]],
    reports: Mapping[str, Mapping[str, ReportedEvidence]],
) -> dict[str, Evidence]:
    """Per entity, both kinds of evidence."""
    return {
        entity_id: Evidence(kpis.get(entity_id, {}), reports.get(entity_id, {}))
        for entity_id in set(kpis) | set(reports)
    }
