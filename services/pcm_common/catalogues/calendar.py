"""Business days (días hábiles) for legal terms: TUPA procedures and complaints.

Not business days: Saturdays, Sundays, Peru's national holidays (from the ``holidays``
package, so movable ones such as Holy Thursday need no upkeep) and the days declared
non-working by decree (``catalogues/calendar/non_working_days.csv``), national or for one
region. Terms count from the day *after* the start (filing) date, as the complaint rule and
the administrative procedure law (TUO Ley 27444 art. 145) do.

Stream processors ask for every event, so each (year, region) is computed once into a
cumulative count of business days; a lookup is then an index and a subtraction, and
``add_business_days`` a binary search, instead of walking day by day.
"""

from __future__ import annotations

import datetime as dt
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import holidays

from .models import NonWorkingDay

NATIONAL = "NACIONAL"
"""Scope of a decreed day that applies to the whole country."""

_WEEKEND = frozenset({5, 6})  # Monday is 0


@dataclass(frozen=True)
class _Year:
    """Business-day counts of one calendar year for one region."""

    first: int  # ordinal of 1 January
    cumulative: array[int]  # cumulative[i]: business days from 1 January through day i

    @property
    def total(self) -> int:
        return self.cumulative[-1]

    def index(self, day: dt.date) -> int:
        return day.toordinal() - self.first

    def through(self, day: dt.date) -> int:
        return self.cumulative[self.index(day)]


class BusinessCalendar:
    """Peru's public-sector business days, national or for one region (department code)."""

    def __init__(
        self,
        decreed: Iterable[NonWorkingDay] = (),
        regions: Iterable[str] | None = None,
    ) -> None:
        self._decreed: dict[str, dict[dt.date, str]] = {}
        for day in decreed:
            self._decreed.setdefault(day.scope, {})[day.date] = (
                f"{day.description} ({day.reference})"
            )
        self._regions = frozenset(regions) if regions is not None else None
        self._years: dict[tuple[int, str | None], _Year] = {}
        self._closed: dict[tuple[int, str | None], Mapping[dt.date, str]] = {}
        self._lock = threading.Lock()

    @property
    def decreed_years(self) -> tuple[int, int] | None:
        """First and last year that the decreed-days file covers (None when it is empty)."""
        years = [day.year for days in self._decreed.values() for day in days]
        return (min(years), max(years)) if years else None

    def closed_days(self, year: int, region: str | None = None) -> Mapping[dt.date, str]:
        """Weekday holidays and decreed days of ``year`` with their names (weekends aside)."""
        key = (year, self._region(region))
        closed = self._closed.get(key)
        if closed is None:
            closed = self._build_closed(year, key[1])
            with self._lock:
                self._closed[key] = closed
        return closed

    def is_business_day(self, day: dt.date, region: str | None = None) -> bool:
        year = self._year(day.year, region)
        index = year.index(day)
        before = year.cumulative[index - 1] if index else 0
        return year.cumulative[index] > before

    def non_business_reason(self, day: dt.date, region: str | None = None) -> str | None:
        """Why ``day`` is not a business day (for explanations in reports), None if it is."""
        if day.weekday() in _WEEKEND:
            return "sábado" if day.weekday() == 5 else "domingo"
        return self.closed_days(day.year, region).get(day)

    def add_business_days(self, start: dt.date, days: int, region: str | None = None) -> dt.date:
        """The ``days``-th business day after ``start`` (``start`` itself never counts).

        E.g. the answer deadline of a complaint filed on ``start`` with a 30-day term is
        ``add_business_days(start, 30)``; ``days == 0`` returns ``start``.
        """
        if days < 0:
            raise ValueError(f"days must be >= 0, got {days}")
        if days == 0:
            return start
        year_number = start.year
        year = self._year(year_number, region)
        target = year.through(start) + days
        while target > year.total:
            target -= year.total
            year_number += 1
            year = self._year(year_number, region)
        # First day whose running count reaches the target: that day is a business day.
        return dt.date.fromordinal(year.first + bisect_left(year.cumulative, target))

    def business_days_between(self, start: dt.date, end: dt.date, region: str | None = None) -> int:
        """Business days after ``start`` up to and including ``end`` (negative if end < start).

        A term is met when ``business_days_between(filed, answered) <= term``; it is the
        inverse of ``add_business_days``: ``between(s, add_business_days(s, n)) == n``.
        """
        if end < start:
            return -self.business_days_between(end, start, region)
        first = self._year(start.year, region)
        if start.year == end.year:
            return first.through(end) - first.through(start)
        count = first.total - first.through(start)
        for year in range(start.year + 1, end.year):
            count += self._year(year, region).total
        return count + self._year(end.year, region).through(end)

    def _region(self, region: str | None) -> str | None:
        if region is None or region == NATIONAL:
            return None
        if self._regions is not None and region not in self._regions:
            known = ", ".join(sorted(self._regions))
            raise ValueError(f"unknown region {region!r} (expected one of {known})")
        return region

    def _year(self, year: int, region: str | None) -> _Year:
        key = (year, self._region(region))
        cached = self._years.get(key)
        if cached is None:
            cached = self._build_year(year, key[1])
            with self._lock:  # a dict write is atomic; the lock keeps the intent explicit
                self._years[key] = cached
        return cached

    def _build_closed(self, year: int, region: str | None) -> Mapping[dt.date, str]:
        closed: dict[dt.date, str] = dict(
            holidays.country_holidays("PE", years=year, language="es")
        )
        for scope in (NATIONAL, region):
            if scope is not None:
                closed.update(
                    (day, name)
                    for day, name in self._decreed.get(scope, {}).items()
                    if day.year == year
                )
        return MappingProxyType(closed)

    def _build_year(self, year: int, region: str | None) -> _Year:
        closed = self.closed_days(year, region)
        first = dt.date(year, 1, 1)
        days_in_year = (dt.date(year + 1, 1, 1) - first).days
        cumulative = array("H")
        running = 0
        for offset in range(days_in_year):
            day = first + dt.timedelta(days=offset)
            if day.weekday() not in _WEEKEND and day not in closed:
                running += 1
            cumulative.append(running)
        return _Year(first.toordinal(), cumulative)
