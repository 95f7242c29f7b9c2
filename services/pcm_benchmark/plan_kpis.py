"""The KPI values improvement plans are measured against: for an entity and a KPI, its newest
MONTH value at entity level (all channels, all services) from ClickHouse ``kpi_values``, the
newest version of each month. The month in progress counts (its value so far); a month whose
value is undefined (NaN: nothing to divide by) is skipped for the month before it."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clickhouse_driver import Client


@dataclass(frozen=True)
class LatestKpi:
    period_start: dt.date
    """First day (local) of the month the value is for."""
    value: float
    insufficient_sample: bool


def latest_kpis(
    client: Client,
    database: str,
    wanted: Iterable[tuple[str, str]],
    time_zone: str = "America/Lima",
) -> dict[tuple[str, str], LatestKpi]:
    """(entity, KPI code) -> its newest usable MONTH value; pairs without one are left out."""
    pairs = set(wanted)
    if not pairs:
        return {}
    rows = client.execute(
        "SELECT entity_id, kpi_code, toUInt32(period_start), argMax(value, version), "
        "argMax(insufficient_sample, version) "
        f"FROM {database}.kpi_values WHERE grain = 'MONTH' AND channel = '' AND service_id = '' "
        "AND entity_id IN %(entities)s AND kpi_code IN %(codes)s "
        "GROUP BY entity_id, kpi_code, period_start",
        {
            "entities": tuple(sorted({entity for entity, _ in pairs})),
            "codes": tuple(sorted({code for _, code in pairs})),
        },
    )
    zone = ZoneInfo(time_zone)
    found: dict[tuple[str, str], LatestKpi] = {}
    for entity_id, code, seconds, value, insufficient in rows:
        key = (entity_id, code)
        if key not in pairs or value is None or math.isnan(value):
            continue
        month = dt.datetime.fromtimestamp(seconds, zone).date()
        newest = found.get(key)
        if newest is None or month > newest.period_start:
            found[key] = LatestKpi(month, float(value), bool(insufficient))
    return found
