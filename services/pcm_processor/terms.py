"""The term tracker: procedures against their legal terms, and the KPIs that need it.

Some KPIs are not about when events happened. "Within term" is about the procedures whose due
date fell in a period (an open overdue case counts against); "open and overdue" and "backlog age"
are snapshots at a period's close. Both need each procedure's status (``domain/procedures.py``:
deemed receipt, term in force at filing, clock stopped while the file waits on the citizen),
which depends on all of its stages and on the calendar, so it is computed here, in Python, and
kept in ClickHouse (``procedure_status``, newest version wins).

Exactness follows the pipeline's rule: everything is derived from the stage facts, written with
versions that grow with the facts seen, before the flush releases its messages. A replay
recomputes the same statuses and values. Snapshots of closed periods are taken by
``close_periods`` (a timer of the processor): once per period, recorded in ``period_closes``
after the values are written, so a crash only means taking the same snapshot again; a late stage
that changes a recent closed period retakes it too.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pcm_common.catalogues import Catalogues
from pcm_common.domains import PROCEDURE_STAGE_FACTS, Column, FactTable, Row
from pcm_common.logging import get_logger

from pcm_processor.adapters.kpi_sql import literal, literals
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.kpis import (
    ALL,
    CatalogueChannels,
    KpiRow,
    PlannedKpi,
    SliceKey,
    aggregate,
    kpi_rows,
    plan_measures,
)
from pcm_processor.domain.procedures import ProcedureStatus, StageFact, procedure_status
from pcm_processor.pipeline import Store, chunks

log = get_logger(__name__)

GRAINS = ("DAY", "MONTH")
SLICE_BY = ("channel", "service_id")
_VERSION_SHIFT = 32
_SECONDS_MASK = (1 << _VERSION_SHIFT) - 1
_NO_DATE = dt.date(1970, 1, 1)  # ClickHouse Date has no NULL here: "not resolved"
RECENT_CLOSES = {"DAY": 31, "MONTH": 13}
"""How many closed periods back a late stage retakes the snapshots of (older ones stay)."""

PROCEDURE_STATUS = FactTable(
    "procedure_status",
    (
        Column("entity_id", "String"),
        Column("procedure_id", "String"),
        Column("service_id", "String"),
        Column("channel", "String"),
        Column("region", "String"),
        Column("received_on", "Date"),
        Column("term_days", "UInt16"),
        Column("paused_days", "UInt16"),
        Column("waiting_on_citizen", "UInt8"),
        Column("due_on", "Date"),
        Column("resolved", "UInt8"),
        Column("resolved_on", "Date"),
        Column("stage_events", "UInt32"),
        Column("catalogue_version", "String"),
        Column("version", "UInt64"),
    ),
)

PERIOD_CLOSES = "period_closes"
_ENTITY = PROCEDURE_STAGE_FACTS.index("entity_id")
_PROCEDURE = PROCEDURE_STAGE_FACTS.index("procedure_id")

Key = tuple[str, str, int]  # (grain, entity, period start)
Versioned = list[tuple[KpiRow, int]]


@dataclass(frozen=True)
class Tracked:
    """A procedure's latest status with what the KPIs slice it by."""

    entity_id: str
    procedure_id: str
    service_id: str
    channel: str
    region: str
    """Whose non-working days apply: the handling office's, else the entity's."""
    status: ProcedureStatus


class TermTracker:
    def __init__(
        self, catalogues: Catalogues, clock: BucketClock, store: Store, database: str
    ) -> None:
        self._catalogues = catalogues
        self._clock = clock
        self._store = store
        self._db = database
        self._channels = CatalogueChannels(catalogues)
        self._plans = {basis: _plan(catalogues, basis) for basis in ("due_date", "period_close")}
        self._touched: set[tuple[str, str]] = set()
        self._pending_closes: list[tuple[str, int]] = []

    @property
    def active(self) -> bool:
        return any(planned for _, planned in self._plans.values())

    @property
    def pending(self) -> bool:
        """Procedures touched since the last flush."""
        return bool(self._touched) and self.active

    def touch(self, rows: Iterable[Row]) -> None:
        """Procedures whose stages were just stored: their status may have changed."""
        self._touched.update((row[_ENTITY], row[_PROCEDURE]) for row in rows)

    def touch_subjects(self, procedures: Iterable[tuple[str, str]]) -> None:
        """Recompute these (entity, procedure) at the next flush (``recompute.py``)."""
        self._touched.update(procedures)

    # --- on each flush ---------------------------------------------------------------------

    async def flush(self, computed_at: int) -> Versioned:
        """Recompute the touched procedures' statuses, then every KPI they can change."""
        touched, self._touched = self._touched, set()
        if not touched or not self.active:
            return []
        changed: dict[str, set[dt.date]] = defaultdict(set)
        previous: list[Tracked] = []
        for part in chunks(sorted(touched), 400):
            dates, before = await self._refresh(part, computed_at)
            previous += before
            for entity, days in dates.items():
                changed[entity] |= days
        return await self._recompute(changed, previous, computed_at)

    async def _refresh(
        self, procedures: Sequence[tuple[str, str]], computed_at: int
    ) -> tuple[dict[str, set[dt.date]], list[Tracked]]:
        """Write the new statuses; return per entity the dates whose KPIs they may change, and
        the statuses they replace."""
        stages = await self._stages(procedures)
        before = await self._statuses(procedures)
        rows: list[Row] = []
        dates: dict[str, set[dt.date]] = defaultdict(set)
        for (entity, procedure), facts in stages.items():
            tracked = self._status(entity, procedure, facts)
            rows.append(self._row(tracked, len(facts), computed_at))
            for old_or_new in (before.get((entity, procedure)), tracked):
                if old_or_new is not None:
                    dates[entity] |= _dates(old_or_new.status)
        if rows:
            await self._store.insert_facts(
                PROCEDURE_STATUS.name, PROCEDURE_STATUS.column_names, rows
            )
        return dates, list(before.values())

    def _status(self, entity: str, procedure: str, facts: list[tuple[Any, ...]]) -> Tracked:
        # Columns of _stages: stage, service, channel, filed_at, occurred_at, office (first
        # copies of each event).
        first = facts[0]
        service = self._catalogues.service(first[1])
        office = next((f[5] for f in facts if f[5]), "")
        region = self._catalogues.region_of(entity, office)
        status = procedure_status(
            (StageFact(f[0], self._local(f[3]), self._local(f[4])) for f in facts),
            self._catalogues.procedure_rules,
            self._catalogues.calendar_for(service),
            region,
            lambda filed_on: self._catalogues.legal_term(service, filed_on) or 0,
        )
        return Tracked(entity, procedure, first[1], first[2], region, status)

    def _row(self, tracked: Tracked, events: int, computed_at: int) -> Row:
        status = tracked.status
        return PROCEDURE_STATUS.row(
            entity_id=tracked.entity_id,
            procedure_id=tracked.procedure_id,
            service_id=tracked.service_id,
            channel=tracked.channel,
            region=tracked.region,
            received_on=status.received_on,
            term_days=min(status.term_days, 2**16 - 1),
            paused_days=min(status.paused_days, 2**16 - 1),
            waiting_on_citizen=int(status.waiting_on_citizen),
            due_on=status.due_on,
            resolved=int(status.resolved_on is not None),
            resolved_on=status.resolved_on or _NO_DATE,
            stage_events=events,
            catalogue_version=self._catalogues.version_label,
            version=(events << _VERSION_SHIFT) | (computed_at & _SECONDS_MASK),
        )

    async def _recompute(
        self, changed: dict[str, set[dt.date]], previous: list[Tracked], computed_at: int
    ) -> Versioned:
        today = self._today()
        due_keys: set[Key] = set()
        close_keys: set[Key] = set()
        # Only due dates hold within-term values; every date a status sets may change a snapshot.
        due_dates: dict[str, set[dt.date]] = defaultdict(set)
        for item in previous:
            due_dates[item.entity_id].add(item.status.due_on)
        statuses = await self.latest(sorted(changed))
        for entity, items in statuses.items():
            due_dates[entity] |= {t.status.due_on for t in items} & changed[entity]
        for entity, dates in changed.items():
            for grain in GRAINS:
                due_keys |= {
                    (grain, entity, self._clock.period_of(d, grain)) for d in due_dates[entity]
                }
                close_keys |= self._recent_closed(grain, entity, min(dates), today)
        versions = await self._entity_versions(sorted(changed), computed_at)
        # A case whose due date moved leaves its old period: that period's slices are
        # recomputed (and emptied) from the statuses before the change too.
        vacated = {e: [t for t in previous if t.entity_id == e] for e in changed}
        return [
            *self.values("due_date", due_keys, statuses, versions, today, vacated),
            *self.values("period_close", close_keys, statuses, versions, today, vacated),
        ]

    def _recent_closed(self, grain: str, entity: str, since: dt.date, today: dt.date) -> set[Key]:
        return {(grain, entity, start) for start in recent_closed(self._clock, grain, since, today)}

    # --- period close (a timer) --------------------------------------------------------------

    async def close_periods(self, computed_at: int, since: dt.date | None = None) -> Versioned:
        """Snapshots of every closed period not taken yet, for every tracked entity; with
        ``since``, of every closed period from that date, taken or not (after a catalogue
        change)."""
        if not self._plans["period_close"][1]:
            return []
        today = self._today()
        done = await self._closed_already() if since is None else set()
        statuses = await self.latest(None)
        if not statuses:
            return []
        first = since or min(t.status.received_on for items in statuses.values() for t in items)
        keys: set[Key] = set()
        due: list[tuple[str, int]] = []
        for grain in GRAINS:
            for start in self._closed_since(grain, first, today):
                if (grain, start) not in done:
                    due.append((grain, start))
                    keys |= {(grain, entity, start) for entity in statuses}
        if not due:
            return []
        versions = await self._entity_versions(sorted(statuses), computed_at)
        rows = self.values("period_close", keys, statuses, versions, today)
        self._pending_closes = due
        return rows

    async def record_closes(self) -> None:
        """After the snapshot values are written: never take those snapshots again."""
        due, self._pending_closes = self._pending_closes, []
        if due:
            now = int(time.time())
            rows = [(grain, start, now) for grain, start in due]
            await self._store.insert_facts(
                PERIOD_CLOSES, ("grain", "period_start", "closed_at"), rows
            )

    def _closed_since(self, grain: str, first: dt.date, today: dt.date) -> list[int]:
        return closed_since(self._clock, grain, first, today)

    # --- values ------------------------------------------------------------------------------

    def values(
        self,
        basis: str,
        keys: Iterable[Key],
        statuses: dict[str, list[Tracked]],
        versions: dict[str, int],
        today: dt.date,
        vacated: dict[str, list[Tracked]] | None = None,
    ) -> Versioned:
        aggregates, planned = self._plans[basis]
        result: Versioned = []
        for grain, entity, start in sorted(keys):
            first, last = self._clock.period_dates(start, grain)
            facts = self._facts(statuses.get(entity, []), basis, first, last, today)
            before = self._facts((vacated or {}).get(entity, []), basis, first, last, today)
            for channel, service in slices_of([*facts, *before]):
                members = [
                    f
                    for f in facts
                    if channel in (ALL, f["channel"]) and service in (ALL, f["service_id"])
                ]
                values = [aggregate(agg, members) for agg in aggregates]
                key = SliceKey(entity, grain, start, channel, service)
                rows = kpi_rows(planned, SLICE_BY, key, values, self._channels)
                rows += no_values(planned, key, {row.kpi_code for row in rows})
                result += [(row, versions.get(entity, 0)) for row in rows]
        return result

    def _facts(
        self,
        tracked: Iterable[Tracked],
        basis: str,
        first: dt.date,
        last: dt.date,
        today: dt.date,
    ) -> list[dict[str, Any]]:
        return [
            fact
            for item in tracked
            if (fact := _fields(item, basis, first, last, today, self._age)) is not None
        ]

    def _age(self, tracked: Tracked, day: dt.date) -> int:
        calendar = self._catalogues.calendar_for(self._catalogues.service(tracked.service_id))
        return calendar.business_days_between(tracked.status.received_on, day, tracked.region)

    # --- reading ClickHouse ------------------------------------------------------------------

    async def _stages(
        self, procedures: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
        """Every stored stage of these procedures (first copy of each event)."""
        entities = literals(sorted({e for e, _ in procedures}))
        pairs = ", ".join(f"({literal(e)}, {literal(p)})" for e, p in procedures)
        first = ", ".join(
            f"argMin({column}, kafka_offset)"
            for column in ("stage", "service_id", "channel", "filed_at", "occurred_at", "office_id")
        )
        found = await self._store.query(
            "procedure stages",
            f"SELECT entity_id, procedure_id, {first} FROM {self._db}.procedure_stage_events "
            f"WHERE entity_id IN ({entities}) AND (entity_id, procedure_id) IN ({pairs}) "
            "GROUP BY entity_id, procedure_id, event_id",
        )
        stages: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
        for entity, procedure, *columns in found:
            stages[(entity, procedure)].append(tuple(columns))
        return stages

    async def _statuses(self, procedures: Sequence[tuple[str, str]]) -> dict[Any, Tracked]:
        entities = sorted({e for e, _ in procedures})
        pairs = ", ".join(f"({literal(e)}, {literal(p)})" for e, p in procedures)
        found = await self._read_latest(entities, f"(entity_id, procedure_id) IN ({pairs})")
        return {(t.entity_id, t.procedure_id): t for items in found.values() for t in items}

    async def latest(self, entities: Sequence[str] | None) -> dict[str, list[Tracked]]:
        """The latest status of every procedure of these entities (None: of all)."""
        return await self._read_latest(entities, "1")

    async def _read_latest(
        self, entities: Sequence[str] | None, condition: str
    ) -> dict[str, list[Tracked]]:
        where = f"entity_id IN ({literals(entities)})" if entities is not None else "1"
        columns = ", ".join(
            f"argMax({c}, version)"
            for c in (
                "service_id",
                "channel",
                "region",
                "received_on",
                "term_days",
                "paused_days",
                "waiting_on_citizen",
                "due_on",
                "resolved",
                "resolved_on",
            )
        )
        found = await self._store.query(
            "procedure statuses",
            f"SELECT entity_id, procedure_id, {columns} FROM {self._db}.{PROCEDURE_STATUS.name} "
            f"WHERE {where} AND {condition} GROUP BY entity_id, procedure_id",
        )
        result: dict[str, list[Tracked]] = defaultdict(list)
        for (
            entity,
            procedure,
            service,
            channel,
            region,
            received,
            term,
            paused,
            waiting,
            due,
            done,
            on,
        ) in found:
            status = ProcedureStatus(
                received_on=received,
                term_days=int(term),
                paused_days=int(paused),
                waiting_on_citizen=bool(waiting),
                due_on=due,
                resolved_on=on if done else None,
            )
            result[entity].append(Tracked(entity, procedure, service, channel, region, status))
        return result

    async def _entity_versions(self, entities: Sequence[str], computed_at: int) -> dict[str, int]:
        return await entity_versions(
            self._store, self._db, "procedure_stage_events", entities, computed_at
        )

    async def _closed_already(self) -> set[tuple[str, int]]:
        found = await self._store.query(
            "period closes",
            f"SELECT DISTINCT toString(grain), toUInt32(period_start) "
            f"FROM {self._db}.{PERIOD_CLOSES}",
        )
        return {(str(grain), int(start)) for grain, start in found}

    def _local(self, moment: Any) -> dt.date:
        seconds = int(moment.timestamp()) if isinstance(moment, dt.datetime) else int(moment)
        return self._clock.local_date(seconds)

    def _today(self) -> dt.date:
        return self._clock.local_date(int(time.time()))


async def entity_versions(
    store: Store, database: str, table: str, entities: Sequence[str], computed_at: int
) -> dict[str, int]:
    """Events stored per entity: snapshot versions grow with them, so the computation that saw
    more facts wins whatever the clocks of two processors."""
    found = await store.query(
        f"{table} per entity",
        f"SELECT entity_id, uniqExact(event_id) FROM {database}.{table} "
        f"WHERE entity_id IN ({literals(entities)}) GROUP BY entity_id",
    )
    return {
        entity: (int(count) << _VERSION_SHIFT) | (computed_at & _SECONDS_MASK)
        for entity, count in found
    }


def recent_closed(clock: BucketClock, grain: str, since: dt.date, today: dt.date) -> list[int]:
    """Starts of the closed periods from ``since`` (at most RECENT_CLOSES of them, newest
    first): the snapshots a late fact dated ``since`` may change."""
    periods: list[int] = []
    day = today - dt.timedelta(days=1)
    while day >= since and len(periods) < RECENT_CLOSES[grain]:
        start = clock.period_of(day, grain)
        last = clock.period_dates(start, grain)[1]
        if last < today and start not in periods:
            periods.append(start)
        day = clock.period_dates(start, grain)[0] - dt.timedelta(days=1)
    return periods


def closed_since(clock: BucketClock, grain: str, first: dt.date, today: dt.date) -> list[int]:
    """Period starts from the one holding ``first`` to the last closed before today (bounded
    by the oldest event the platform accepts: 400 days)."""
    day = max(first, today - dt.timedelta(days=400))
    starts: list[int] = []
    while True:
        start = clock.period_of(day, grain)
        last = clock.period_dates(start, grain)[1]
        if last >= today:
            return starts
        starts.append(start)
        day = last + dt.timedelta(days=1)


def _plan(catalogues: Catalogues, basis: str) -> tuple[Any, tuple[PlannedKpi, ...]]:
    chosen = [
        (kpi, tuple(g.value for g in kpi.grains if g.value in GRAINS), frozenset[str]())
        for kpi in catalogues.kpis
        if kpi.source == "procedure_stage" and kpi.basis == basis
    ]
    return plan_measures(chosen)


def _dates(status: ProcedureStatus) -> set[dt.date]:
    """The dates a status places a procedure on: due date and, for snapshots, receipt and
    decision."""
    dates = {status.due_on, status.received_on}
    if status.resolved_on is not None:
        dates.add(status.resolved_on)
    return dates


def _fields(
    tracked: Tracked,
    basis: str,
    first: dt.date,
    last: dt.date,
    today: dt.date,
    age: Any,
) -> dict[str, Any] | None:
    """What the KPI catalogue's fields mean for one procedure in one period, or None when the
    procedure has nothing to do with that period."""
    status = tracked.status
    base = {
        "procedure_id": tracked.procedure_id,
        "channel": tracked.channel,
        "service_id": tracked.service_id,
    }
    if basis == "due_date":
        if not first <= status.due_on <= last:
            return None
        return {
            **base,
            "fell_due": status.fell_due(today),
            "within_term": bool(status.within_term),
        }
    open_then = status.open_at_close(last)
    if not open_then:
        return None
    return {
        **base,
        "open_at_close": True,
        "overdue_at_close": status.overdue_at_close(last),
        "age_business_days": age(tracked, last),
    }


def no_values(planned: Sequence[PlannedKpi], key: SliceKey, present: set[str]) -> list[KpiRow]:
    """KPIs of a slice left with nothing to measure (its cases moved to another period): NaN,
    flagged, so that an earlier value does not stay as if it still held."""
    return [
        KpiRow(
            key.entity_id,
            item.kpi.code,
            key.grain,
            key.period_start,
            key.channel,
            key.service_id,
            math.nan,
            0.0,
            0.0,
            unit=item.kpi.unit.value,
            insufficient_sample=True,
        )
        for item in planned
        if key.grain in item.grains and item.kpi.code not in present
    ]


def slices_of(facts: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """All/all, per channel, per service and per both, for the values present."""
    slices = {(ALL, ALL)}
    for fact in facts:
        channel, service = fact["channel"], fact["service_id"]
        slices |= {(channel, ALL), (ALL, service), (channel, service)}
    return slices
