"""The period a page shows: a grain (month, quarter or year) and its first day. The ``periodo``
parameter spells it as the assessment job labels it (``2026-10``, ``2026-T4``, ``2026``), so a
URL, a CSV file name and the job's output name a period alike; a page shows it in Spanish
(``octubre de 2026``, ``4.º trimestre de 2026``, ``año 2026``). Pure."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pcm_common.catalogues.models import add_months

from pcm_benchmark.job import period_label
from pcm_benchmark.reads import previous_start
from pcm_benchmark.web import labels

GRAINS = ("MONTH", "QUARTER", "YEAR")
"""The grains the dashboard shows, in the order the period selector lists them."""
MONTHS_IN = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
QUARTER_ORDINALS = ("1.er", "2.º", "3.er", "4.º")
GROUP_LABELS = {"MONTH": "Meses", "QUARTER": "Trimestres", "YEAR": "Años"}
NOUNS = {"MONTH": "mes", "QUARTER": "trimestre", "YEAR": "año"}

# ASCII digits only: \d also matches other scripts' digits, which int() reads as well.
_SPELLING = re.compile(r"(?P<year>[0-9]{4})(?:-(?P<month>[0-9]{2})|-T(?P<quarter>[1-4]))?")


class MalformedPeriod(ValueError):
    """The text does not spell a month, quarter or year."""


@dataclass(frozen=True)
class Period:
    grain: str
    start: dt.date
    """The local first day of the period."""

    @classmethod
    def parse(cls, spelled: str) -> Period:
        """``2026-10`` (a month), ``2026-T4`` (a quarter), ``2026`` (a year)."""
        found = _SPELLING.fullmatch(spelled)
        if found is None:
            raise MalformedPeriod(spelled)
        year = int(found["year"])
        try:
            if found["month"] is not None:
                return cls("MONTH", dt.date(year, int(found["month"]), 1))
            if found["quarter"] is not None:
                return cls("QUARTER", dt.date(year, 3 * int(found["quarter"]) - 2, 1))
            return cls("YEAR", dt.date(year, 1, 1))
        except ValueError as error:  # month 13, year 0000
            raise MalformedPeriod(spelled) from error

    @property
    def value(self) -> str:
        """Its ``periodo`` parameter (and CSV file name suffix)."""
        return period_label(self.grain, self.start)

    @property
    def label(self) -> str:
        """In Spanish, as a page shows it."""
        if self.grain == "MONTH":
            return labels.month(self.start)
        if self.grain == "QUARTER":
            return f"{QUARTER_ORDINALS[(self.start.month - 1) // 3]} trimestre de {self.start.year}"
        return f"año {self.start.year}"

    @property
    def noun(self) -> str:
        """'mes', 'trimestre' or 'año'."""
        return NOUNS[self.grain]

    @property
    def last_month(self) -> dt.date:
        return add_months(self.start, MONTHS_IN[self.grain] - 1)

    def previous(self) -> Period:
        """The period of the same grain just before, as the score trends compare with it."""
        return Period(self.grain, previous_start(self.grain, self.start))

    def year_before(self) -> Period:
        return Period(self.grain, self.start.replace(year=self.start.year - 1))

    def holds(self, month: dt.date) -> bool:
        return self.start <= month <= self.last_month

    def closing_month(self, assessed: Iterable[Period]) -> dt.date:
        """The month that stands for this period where only monthly figures exist (the KPI
        charts, the satisfaction and overdue complaints): its newest assessed month, since a
        quarter or year still going on is assessed on its months so far; its last month when
        none of its months was assessed on its own."""
        held = [p.start for p in assessed if p.grain == "MONTH" and self.holds(p.start)]
        return max(held, default=self.last_month)


def ordered(periods: Iterable[Period]) -> list[Period]:
    """Months, then quarters, then years; each newest first."""
    return sorted(periods, key=lambda p: (GRAINS.index(p.grain), -p.start.toordinal()))


def previous_assessed(period: Period, assessed: Iterable[Period]) -> Period | None:
    """The newest assessed period of the same grain before ``period`` (what the ranking's
    movers compare with: the period just before may not have been assessed)."""
    earlier = [p for p in assessed if p.grain == period.grain and p.start < period.start]
    return max(earlier, key=lambda p: p.start, default=None)
