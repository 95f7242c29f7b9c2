"""Complaint KPIs at period close: open complaints past their due date, and that per 1,000
complaints registered in the twelve months before.

A snapshot is about every complaint of an entity, not about the events of a period, so it is
computed from each complaint's summary (filing, due date, when its term stopped: answered or
ended otherwise), read from the complaint facts. Like the procedure term tracker (``terms.py``)
it runs in the pipeline's flush (a late fact retakes the recent closed periods it may change)
and on the period-close timer (each closed period once, recorded in ``period_closes`` under
``complaint:<grain>`` after its values are written). Everything is derived from the facts, so a
replay or a crash only computes the same values again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pcm_common.catalogues import Catalogues
from pcm_common.domains import COMPLAINT_FACTS, Row

from pcm_processor.adapters.kpi_sql import literals
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.kpis import (
    ALL,
    CatalogueChannels,
    KpiRow,
    SliceKey,
    aggregate,
    kpi_rows,
    plan_measures,
)
from pcm_processor.pipeline import Store
from pcm_processor.terms import (
    GRAINS,
    PERIOD_CLOSES,
    SLICE_BY,
    closed_since,
    entity_versions,
    no_values,
    recent_closed,
    slices_of,
)

OPENINGS = ("REGISTERED", "RESOLVED_AT_DESK")
ENDINGS = ("ANSWERED", "RESOLVED_AT_DESK", "NOT_A_RECLAMO", "TRANSFERRED", "WITHDRAWN")
"""Stages that stop a complaint's term: it is no longer open."""
CLOSE_PREFIX = "complaint:"
"""``period_closes.grain`` of complaint snapshots (the procedure tracker's are bare grains)."""
_ENTITY = COMPLAINT_FACTS.index("entity_id")
_DATES = [COMPLAINT_FACTS.index(c) for c in ("filed_at", "occurred_at")]
_DUE = COMPLAINT_FACTS.index("due_on")

Versioned = list[tuple[KpiRow, int]]
Key = tuple[str, str, int]  # (grain, entity, period start)


@dataclass(frozen=True)
class Summary:
    """One complaint as its facts tell it."""

    complaint_id: str
    channel: str
    service_id: str
    filed_on: dt.date
    due_on: dt.date
    stopped_on: dt.date | None
    """When its term stopped (answered or ended otherwise); None: still open."""

    def fields(self, last: dt.date) -> dict[str, Any] | None:
        """What the catalogue's period-close fields mean for it at the end of ``last``."""
        if self.filed_on > last:
            return None
        open_then = self.stopped_on is None or self.stopped_on > last
        return {
            "complaint_id": self.complaint_id,
            "channel": self.channel,
            "service_id": self.service_id,
            "overdue_at_close": open_then and self.due_on <= last,
            "registered_last_12_months": self.filed_on > _year_before(last),
        }


def _year_before(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


class ComplaintCloses:
    """The pipeline's ``Terms`` for complaints (see the module docstring)."""

    def __init__(
        self, catalogues: Catalogues, clock: BucketClock, store: Store, database: str
    ) -> None:
        self._clock = clock
        self._store = store
        self._db = database
        self._channels = CatalogueChannels(catalogues)
        chosen = [
            (kpi, tuple(g.value for g in kpi.grains if g.value in GRAINS), frozenset[str]())
            for kpi in catalogues.kpis
            if kpi.source == "complaint" and kpi.basis == "period_close"
        ]
        self._aggregates, self._planned = plan_measures(chosen)
        self._touched: dict[str, dt.date] = {}
        self._pending_closes: list[tuple[str, int]] = []

    @property
    def pending(self) -> bool:
        return bool(self._touched) and bool(self._planned)

    def touch(self, rows: Sequence[Row]) -> None:
        """Per entity, the earliest date the stored facts place a complaint on."""
        for row in rows:
            dates = [self._clock.local_date(int(row[i])) for i in _DATES if row[i]]
            earliest = min([*dates, row[_DUE]])
            entity = row[_ENTITY]
            self._touched[entity] = min(earliest, self._touched.get(entity, earliest))

    async def flush(self, computed_at: int) -> Versioned:
        """Retake the recent closed periods the touched entities' new facts may change."""
        touched, self._touched = self._touched, {}
        if not touched or not self._planned:
            return []
        today = self._today()
        keys = {
            (grain, entity, start)
            for entity, since in touched.items()
            for grain in GRAINS
            for start in recent_closed(self._clock, grain, since, today)
        }
        if not keys:
            return []
        entities = sorted(touched)
        books = await self._books(entities)
        versions = await entity_versions(
            self._store, self._db, "complaint_events", entities, computed_at
        )
        return self.values(keys, books, versions)

    async def close_periods(self, computed_at: int, since: dt.date | None = None) -> Versioned:
        """Snapshots of every closed period not taken yet (with ``since``: every one from that
        date), for every entity with complaints."""
        if not self._planned:
            return []
        books = await self._books(None)
        if not books:
            return []
        today = self._today()
        done = await self._closed_already() if since is None else set()
        first = since or min(c.filed_on for book in books.values() for c in book)
        keys: set[Key] = set()
        due: list[tuple[str, int]] = []
        for grain in GRAINS:
            for start in closed_since(self._clock, grain, first, today):
                if (grain, start) not in done:
                    due.append((grain, start))
                    keys |= {(grain, entity, start) for entity in books}
        if not due:
            return []
        versions = await entity_versions(
            self._store, self._db, "complaint_events", sorted(books), computed_at
        )
        self._pending_closes = due
        return self.values(keys, books, versions)

    async def record_closes(self) -> None:
        due, self._pending_closes = self._pending_closes, []
        if due:
            now = int(time.time())
            rows = [(CLOSE_PREFIX + grain, start, now) for grain, start in due]
            await self._store.insert_facts(
                PERIOD_CLOSES, ("grain", "period_start", "closed_at"), rows
            )

    def values(
        self, keys: Iterable[Key], books: dict[str, list[Summary]], versions: dict[str, int]
    ) -> Versioned:
        result: Versioned = []
        for grain, entity, start in sorted(keys):
            last = self._clock.period_dates(start, grain)[1]
            facts = [f for c in books.get(entity, []) if (f := c.fields(last)) is not None]
            for channel, service in slices_of(facts):
                members = [
                    f
                    for f in facts
                    if channel in (ALL, f["channel"]) and service in (ALL, f["service_id"])
                ]
                values = [aggregate(agg, members) for agg in self._aggregates]
                key = SliceKey(entity, grain, start, channel, service)
                rows = kpi_rows(self._planned, SLICE_BY, key, values, self._channels)
                rows += no_values(self._planned, key, {row.kpi_code for row in rows})
                result += [(row, versions.get(entity, 0)) for row in rows]
        return result

    async def _books(self, entities: Sequence[str] | None) -> dict[str, list[Summary]]:
        """Every complaint of these entities (None: of all), from the first copy of each of
        its events."""
        where = f"entity_id IN ({literals(entities)})" if entities is not None else "1"
        found = await self._store.query(
            "complaint books",
            f"""
            SELECT entity_id, complaint_id,
                argMinIf(channel, first_offset, stage IN ({literals(OPENINGS)})),
                argMinIf(service_id, first_offset, stage IN ({literals(OPENINGS)})),
                min(filed_at), max(due_on),
                countIf(stage IN ({literals(ENDINGS)})),
                minIf(occurred_at, stage IN ({literals(ENDINGS)}))
            FROM (
                SELECT entity_id, complaint_id, event_id,
                    argMin(stage, kafka_offset) AS stage,
                    argMin(channel, kafka_offset) AS channel,
                    argMin(service_id, kafka_offset) AS service_id,
                    argMin(filed_at, kafka_offset) AS filed_at,
                    argMin(due_on, kafka_offset) AS due_on,
                    argMin(occurred_at, kafka_offset) AS occurred_at,
                    min(kafka_offset) AS first_offset
                FROM {self._db}.complaint_events WHERE {where}
                GROUP BY entity_id, complaint_id, event_id
            )
            GROUP BY entity_id, complaint_id
            HAVING countIf(stage IN ({literals(OPENINGS)})) > 0
            """,
        )
        books: dict[str, list[Summary]] = defaultdict(list)
        for entity, code, channel, service, filed, due, stops, stopped in found:
            books[entity].append(
                Summary(
                    code,
                    channel,
                    service,
                    self._local(filed),
                    due,
                    self._local(stopped) if stops else None,
                )
            )
        return books

    async def _closed_already(self) -> set[tuple[str, int]]:
        found = await self._store.query(
            "complaint period closes",
            f"SELECT DISTINCT grain, toUInt32(period_start) FROM {self._db}.{PERIOD_CLOSES} "
            f"WHERE grain LIKE {literals([CLOSE_PREFIX + '%'])}",
        )
        return {(str(grain).removeprefix(CLOSE_PREFIX), int(start)) for grain, start in found}

    def _local(self, moment: Any) -> dt.date:
        seconds = int(moment.timestamp()) if isinstance(moment, dt.datetime) else int(moment)
        return self._clock.local_date(seconds)

    def _today(self) -> dt.date:
        return self._clock.local_date(int(time.time()))
