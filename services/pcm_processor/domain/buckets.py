"""Hour, day and month buckets of an instant, in the platform's local time zone (pure).

A KPI "per day" means a day in Peru, not in UTC: a ticket issued at 23:30 in Lima belongs to that
day although it is already tomorrow in UTC. Buckets are stored as the UTC instant at which the
local period starts (ClickHouse DateTime is an instant), so queries compare plain integers and
need no timezone-aware functions (absent from ClickHouse 18.16).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

# Every real UTC offset since 1970 is a multiple of 15 minutes and transitions happen on that grid,
# so all instants of one 15-minute UTC slot share their local hour, day and month.
_SLOT_SECONDS = 15 * 60
_CACHE_LIMIT = 200_000

GRAINS: tuple[str, ...] = ("HOUR", "DAY", "MONTH")
"""Grains the processor keeps, finest first (catalogue names, also the ClickHouse enum labels)."""

BUCKET_COLUMNS: dict[str, str] = {
    "HOUR": "hour_start",
    "DAY": "day_start",
    "MONTH": "month_start",
}
"""Fact-table column holding each grain's period start."""


@dataclass(frozen=True, slots=True)
class Buckets:
    """Starts (unix seconds) of the local hour, day and month containing an instant."""

    hour_start: int
    day_start: int
    month_start: int
    local_date: dt.date

    def start(self, grain: str) -> int:
        if grain == "HOUR":
            return self.hour_start
        if grain == "DAY":
            return self.day_start
        if grain == "MONTH":
            return self.month_start
        raise ValueError(f"unknown grain {grain!r}")


class BucketClock:
    """Computes buckets in one time zone, memoised per 15-minute slot (hot path: every event)."""

    def __init__(self, time_zone: str) -> None:
        self.time_zone = time_zone
        self._zone = ZoneInfo(time_zone)
        self._cache: dict[int, Buckets] = {}

    def buckets(self, unix_seconds: int) -> Buckets:
        slot = unix_seconds // _SLOT_SECONDS
        found = self._cache.get(slot)
        if found is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # long replays of old data: start over, never grow unbounded
            found = self._cache[slot] = self._compute(slot * _SLOT_SECONDS)
        return found

    def _compute(self, unix_seconds: int) -> Buckets:
        local = dt.datetime.fromtimestamp(unix_seconds, self._zone)
        hour = local.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)
        month = day.replace(day=1)
        return Buckets(
            hour_start=int(hour.timestamp()),
            day_start=int(day.timestamp()),
            month_start=int(month.timestamp()),
            local_date=local.date(),
        )

    def local_date(self, unix_seconds: int) -> dt.date:
        return self.buckets(unix_seconds).local_date

    def period_of(self, day: dt.date, grain: str) -> int:
        """Start (unix seconds) of the local day or month containing a local date."""
        first = day.replace(day=1) if grain == "MONTH" else day
        if grain not in ("DAY", "MONTH"):
            raise ValueError(f"a date has no {grain!r} period")
        return int(dt.datetime.combine(first, dt.time(), self._zone).timestamp())

    def period_dates(self, start: int, grain: str) -> tuple[dt.date, dt.date]:
        """First and last local date of the DAY or MONTH period starting at ``start``."""
        first = self.local_date(start)
        if grain == "DAY":
            return first, first
        following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return first, following - dt.timedelta(days=1)
