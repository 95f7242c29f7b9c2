"""Per-entity business figures for the business alert rules (deploy/prometheus/rules/business.yml),
exported by the benchmark refresh worker's leader once per pass.

Four families of gauges (``metrics.py``), each from one cheap read per pass:

- **waiting time**: ``WAIT_P90_S`` of every (entity, service) slice, all channels, in the hour in
  progress (``kpi_values`` HOUR rows of this hour and the one before, newest version), beside
  the service's waiting target. The hour before stands in while the hour in progress has fewer
  served tickets than the KPI's ``min_sample`` and the hour before has enough: at 10:02 the
  hour's p90 rests on a handful of tickets, and a series that vanished at every hour boundary
  would restart the alert's ``for`` each hour.
- **satisfaction**: ``SATISFACTION_PCT`` over the last 7 and 28 days (today in Lima and the days
  before) from the DAY rows, numerators and denominators summed (a day with 10 answers weighs
  less than one with 300: not the mean of the daily percentages), with the summed answers.
- **last activity**: the newest ``received_at`` of the entity's events in the fact tables (one
  ``UNION ALL`` over the tables of ``pcm_common.domains``). The complaints worker's OVERDUE
  events are the platform's own, not the entity's activity, and are left out.
- **improvement plans**: per entity, the open plans flagged OFF_TRACK and OVERDUE by
  ``plans.progress``, as the BenchmarkService computes them, on each plan KPI's newest MONTH value
  of this or the previous month.

The waiting-time target of an all-channels p90: the processor judges each ticket against its
channel's target (``Catalogues.target_wait_s``: wait_targets.csv most specific first, else the
service's ``target_wait_minutes``), and the slice mixes channels. The target exported is the
most lenient of those that apply on the channels the service declares (services.csv
``channels``): a p90 above it is over target whichever channels the waits came from, so a mix
with a stricter channel (the phone's 60 s) never fires on its own. With today's catalogue that
is the service's ``target_wait_minutes``.

Reads stay cheap at national scale: every query is bounded by the partitions of its window
(this hour and the last, the last 28 days, this month and the last) and returns at most one row
per entity, slice or day. Last activity looks back to the start of the previous month (by the
events' own month, the facts' partition key) and, once that first read is done, only at events
received in the last two days; the newest time seen per entity is kept in memory, so an entity
that fell silent weeks ago stays exported while this process runs. After a restart or failover,
entities silent since before the previous month are no longer exported (by then EntitySilent has
fired for weeks); events pushed in the last two days about months before the previous one are
not looked at.

Labels are catalogue codes only: rows of entities or services the worker's catalogue does not
know are left out, so nothing but an entity id and a service id ever becomes a label.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import psycopg
from clickhouse_driver import Client
from pcm_common.catalogues import Catalogues
from pcm_common.domains import EVENT_DOMAINS
from pcm_common.logging import get_logger
from prometheus_client import Gauge
from psycopg.rows import TupleRow

from pcm_benchmark.metrics import (
    ENTITY_LAST_ACTIVITY,
    ENTITY_SATISFACTION_ANSWERS,
    ENTITY_SATISFACTION_PCT,
    ENTITY_WAIT_P90,
    ENTITY_WAIT_TARGET,
    PLANS_OFF_TRACK,
    PLANS_OVERDUE,
)
from pcm_benchmark.plans import TOLERANCE_POINTS, Stage, progress
from pcm_benchmark.settings import BenchmarkSettings

log = get_logger(__name__)

WAIT_KPI = "WAIT_P90_S"
SATISFACTION_KPI = "SATISFACTION_PCT"
WINDOWS: tuple[tuple[str, int], ...] = (("7d", 7), ("28d", 28))
"""Satisfaction windows: label and number of local days, today included."""
ACTIVITY_LOOKBACK = dt.timedelta(days=2)
"""How far back (by ``received_at``) a read after the first looks: the day EntitySilent waits
for, plus room for a processor backlog."""
ACTIVITY_REREAD_AFTER = dt.timedelta(days=1)
"""A read this long after the previous one (a standby taking over, a worker stuck) looks back
to the start of the previous month again, so no event inserted in between is missed."""
PLATFORM_EVENTS: Mapping[str, str] = {"complaint_events": "stage != 'OVERDUE'"}
"""Fact rows the platform writes itself, not the entity: not activity."""

WaitKey = tuple[str, str]
"""(entity, service)"""
WindowKey = tuple[str, str]
"""(entity, window)"""

ENTITY_GAUGES: tuple[Gauge, ...] = (
    ENTITY_WAIT_P90,
    ENTITY_WAIT_TARGET,
    ENTITY_SATISFACTION_PCT,
    ENTITY_SATISFACTION_ANSWERS,
    ENTITY_LAST_ACTIVITY,
    PLANS_OFF_TRACK,
    PLANS_OVERDUE,
)


# --- the pure part ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """The windows of one pass, as the stored buckets have them (unix seconds of the local
    period's start) and the local date."""

    hour: int
    previous_hour: int
    today: dt.date
    first_day: int
    """Start of the oldest day of the longest satisfaction window."""
    today_start: int
    month: int
    previous_month: int


def clock(now: dt.datetime, time_zone: str) -> Clock:
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    hour = local.replace(minute=0, second=0, microsecond=0)
    before = (hour - dt.timedelta(seconds=1)).astimezone(zone)
    previous_hour = before.replace(minute=0, second=0, microsecond=0)
    today = local.date()
    month = today.replace(day=1)
    previous_month = (month - dt.timedelta(days=1)).replace(day=1)
    longest = max(days for _, days in WINDOWS)
    return Clock(
        hour=int(hour.timestamp()),
        previous_hour=int(previous_hour.timestamp()),
        today=today,
        first_day=_midnight(today - dt.timedelta(days=longest - 1), zone),
        today_start=_midnight(today, zone),
        month=_midnight(month, zone),
        previous_month=_midnight(previous_month, zone),
    )


def _midnight(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime.combine(day, dt.time(), zone).timestamp())


def service_wait_targets(catalogues: Catalogues) -> dict[str, float]:
    """Service id -> the target (seconds) an all-channels p90 of the service is held to: the
    most lenient of the processor's per-channel targets over the channels the service declares.
    Services without any target (a TRAMITE without a waiting target) are left out."""
    targets: dict[str, float] = {}
    for service in catalogues.services:
        per_channel = [catalogues.target_wait_s(service, code) for code in service.channels]
        known = [target for target in per_channel if target is not None]
        if known:
            targets[service.service_id] = float(max(known))
    return targets


@dataclass(frozen=True)
class WaitRow:
    entity_id: str
    service_id: str
    hour_start: int
    p90_s: float
    served: float
    """The p90's sample: tickets served in the hour (the row's denominator)."""


def wait_figures(
    rows: Iterable[WaitRow],
    at: Clock,
    targets: Mapping[str, float],
    min_sample: int,
    entities: Collection[str],
) -> tuple[dict[WaitKey, float], dict[WaitKey, float]]:
    """(p90, target) per (entity, service): of the hour in progress and the one before, the
    hour with a sufficient sample, the newer when both or neither have one."""
    chosen: dict[WaitKey, WaitRow] = {}

    def rank(row: WaitRow) -> tuple[bool, int]:
        return row.served >= min_sample, row.hour_start

    for row in rows:
        if row.entity_id not in entities or row.service_id not in targets:
            continue
        if row.hour_start not in (at.hour, at.previous_hour) or math.isnan(row.p90_s):
            continue
        key = (row.entity_id, row.service_id)
        best = chosen.get(key)
        if best is None or rank(row) > rank(best):
            chosen[key] = row
    p90 = {key: row.p90_s for key, row in chosen.items()}
    return p90, {key: targets[key[1]] for key in chosen}


@dataclass(frozen=True)
class DayRow:
    entity_id: str
    day: dt.date
    satisfied: float
    """Answers 4 or 5 to the overall question (the DAY row's numerator)."""
    answers: float
    """Valid answers (its denominator)."""


def satisfaction_figures(
    rows: Iterable[DayRow], today: dt.date, entities: Collection[str]
) -> tuple[dict[WindowKey, float], dict[WindowKey, float]]:
    """(percentage, answers) per (entity, window): sums of the days in the window, today
    included. An entity with answers in 28 days but none in 7 gets 0 answers and no 7d
    percentage (nothing to divide)."""
    sums: dict[WindowKey, list[float]] = {}
    for row in rows:
        if row.entity_id not in entities or math.isnan(row.satisfied + row.answers):
            continue
        age = (today - row.day).days
        if age < 0:
            continue
        for window, days in WINDOWS:
            total = sums.setdefault((row.entity_id, window), [0.0, 0.0])
            if age < days:
                total[0] += row.satisfied
                total[1] += row.answers
    pct = {key: 100.0 * n / d for key, (n, d) in sums.items() if d > 0}
    return pct, {key: d for key, (_, d) in sums.items()}


def merge_activity(
    known: Mapping[str, float], rows: Iterable[tuple[str, float]]
) -> dict[str, float]:
    """The newest activity per entity: what was known, moved forward by what was read."""
    merged = dict(known)
    for entity_id, at in rows:
        if at > 0 and at > merged.get(entity_id, 0.0):
            merged[entity_id] = float(at)
    return merged


@dataclass(frozen=True)
class OpenPlan:
    """What flagging a plan needs (no title, owner or actions: nothing that could be personal)."""

    entity_id: str
    kpi_code: str
    baseline: float
    target: float
    registered_on: dt.date
    deadline: dt.date
    stage: Stage


def newest_values(rows: Iterable[tuple[str, str, dt.date, float]]) -> dict[tuple[str, str], float]:
    """(entity, KPI) -> the value of its newest month with a number (NaN: nothing to divide
    by, skipped for the month before), as ``plan_kpis.latest_kpis`` picks it."""
    newest: dict[tuple[str, str], tuple[dt.date, float]] = {}
    for entity_id, code, month, value in rows:
        if math.isnan(value):
            continue
        key = (entity_id, code)
        if key not in newest or month > newest[key][0]:
            newest[key] = (month, value)
    return {key: value for key, (_, value) in newest.items()}


def plan_counts(
    plans: Iterable[OpenPlan],
    latest: Mapping[tuple[str, str], float],
    today: dt.date,
    entities: Collection[str],
    tolerance_points: float = TOLERANCE_POINTS,
) -> tuple[dict[str, int], dict[str, int]]:
    """(off track, overdue) open plans per entity with open plans. A plan whose KPI has no
    value raises no flag (as in the service's answers)."""
    off_track: dict[str, int] = {}
    overdue: dict[str, int] = {}
    for plan in plans:
        if plan.entity_id not in entities or plan.stage is Stage.CLOSED:
            continue
        measured = progress(
            baseline=plan.baseline,
            target=plan.target,
            registered_on=plan.registered_on,
            deadline=plan.deadline,
            stage=plan.stage,
            latest=latest.get((plan.entity_id, plan.kpi_code)),
            today=today,
            tolerance_points=tolerance_points,
        )
        off_track[plan.entity_id] = off_track.get(plan.entity_id, 0) + measured.off_track
        overdue[plan.entity_id] = overdue.get(plan.entity_id, 0) + measured.overdue
    return off_track, overdue


# --- exporting ---------------------------------------------------------------------------------


def replace_series(
    gauge: Gauge, names: tuple[str, ...], values: Iterable[tuple[tuple[str, ...], float]]
) -> None:
    """Make ``values`` (label values in ``names`` order, value) the gauge's series: set them
    all, then remove the others. A scrape in between sees a series that stays with its old or
    its new value, never without it: a pass does not restart an alert's ``for``."""
    wanted = set()
    for labels, value in values:
        gauge.labels(*labels).set(value)
        wanted.add(labels)
    for metric in gauge.collect():
        for sample in metric.samples:
            current = tuple(sample.labels[name] for name in names)
            if current not in wanted:
                gauge.remove(*current)


def per_entity(values: Mapping[str, float]) -> list[tuple[tuple[str, ...], float]]:
    return [((entity,), value) for entity, value in values.items()]


def drop_entity_figures() -> None:
    """Remove every per-entity series: a standby exports none (the leader's figures alone, or
    a former leader's would go stale and keep alerts firing the new leader already cleared)."""
    for gauge in ENTITY_GAUGES:
        gauge.clear()


# --- the reads -----------------------------------------------------------------------------


class EntityWatch:
    """Reads the figures and exports them; ``run`` once per pass of the leader."""

    def __init__(
        self,
        settings: BenchmarkSettings,
        catalogues: Catalogues,
        postgres: Callable[[], psycopg.Connection[TupleRow]],
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._settings = settings
        self._db = settings.clickhouse_database
        self._postgres = postgres
        self._now = now
        self._entities = frozenset(e.entity_id for e in catalogues.entities)
        self._targets = service_wait_targets(catalogues)
        self._wait_min_sample = catalogues.kpi(WAIT_KPI).min_sample
        self._activity: dict[str, float] = {}
        self._activity_read: dt.datetime | None = None

    def run(self, client: Client) -> None:
        """Read and export every family. A family whose read fails keeps its last values, the
        others are still exported, and the first failure is raised at the end (the pass
        fails: BenchmarkRefreshFailing)."""
        now = self._now()
        at = clock(now, self._settings.benchmark_time_zone)
        failures: list[Exception] = []
        families = (
            ("wait", self._wait),
            ("satisfaction", self._satisfaction),
            ("last_activity", self._last_activity),
            ("plans", self._plans),
        )
        for name, family in families:
            try:
                family(client, at, now)
            except Exception as error:  # a store down: the other families still count
                log.warning("entity watch failed", family=name, error=str(error))
                failures.append(error)
        if failures:
            raise failures[0]

    def _wait(self, client: Client, at: Clock, now: dt.datetime) -> None:
        rows = client.execute(
            "SELECT entity_id, service_id, toUInt32(period_start) AS hour_s, "
            "argMax(value, version) AS p90, argMax(denominator, version) AS served "
            f"FROM {self._db}.kpi_values "
            "WHERE grain = 'HOUR' AND kpi_code = %(code)s AND channel = '' AND service_id != '' "
            "AND period_start >= toDateTime(%(previous)s) AND period_start <= toDateTime(%(hour)s) "
            "GROUP BY entity_id, service_id, period_start",
            {"code": WAIT_KPI, "previous": at.previous_hour, "hour": at.hour},
        )
        p90, target = wait_figures(
            (WaitRow(e, s, int(h), float(v), float(n)) for e, s, h, v, n in rows),
            at,
            self._targets,
            self._wait_min_sample,
            self._entities,
        )
        replace_series(ENTITY_WAIT_P90, ("entity", "service"), p90.items())
        replace_series(ENTITY_WAIT_TARGET, ("entity", "service"), target.items())

    def _satisfaction(self, client: Client, at: Clock, now: dt.datetime) -> None:
        rows = client.execute(
            "SELECT entity_id, toUInt32(period_start) AS day_s, "
            "argMax(numerator, version) AS satisfied, argMax(denominator, version) AS answered "
            f"FROM {self._db}.kpi_values "
            "WHERE grain = 'DAY' AND kpi_code = %(code)s AND channel = '' AND service_id = '' "
            "AND period_start >= toDateTime(%(first)s) AND period_start <= toDateTime(%(today)s) "
            "GROUP BY entity_id, period_start",
            {"code": SATISFACTION_KPI, "first": at.first_day, "today": at.today_start},
        )
        zone = ZoneInfo(self._settings.benchmark_time_zone)
        days = (
            DayRow(e, dt.datetime.fromtimestamp(s, zone).date(), float(n), float(d))
            for e, s, n, d in rows
        )
        pct, answers = satisfaction_figures(days, at.today, self._entities)
        replace_series(ENTITY_SATISFACTION_PCT, ("entity", "window"), pct.items())
        replace_series(ENTITY_SATISFACTION_ANSWERS, ("entity", "window"), answers.items())

    def _last_activity(self, client: Client, at: Clock, now: dt.datetime) -> None:
        first = self._activity_read is None or now - self._activity_read > ACTIVITY_REREAD_AFTER
        since = 1 if first else int((now - ACTIVITY_LOOKBACK).timestamp())
        parts = []
        for domain in EVENT_DOMAINS:
            if domain.facts is None:
                continue
            table = domain.facts.name
            own = f" AND {PLATFORM_EVENTS[table]}" if table in PLATFORM_EVENTS else ""
            parts.append(
                "SELECT entity_id, max(toUInt32(received_at)) AS last_s "
                f"FROM {self._db}.{table} "
                "WHERE month_start >= toDateTime(%(months)s) "
                f"AND received_at >= toDateTime(%(since)s){own} GROUP BY entity_id"
            )
        rows = client.execute(
            f"SELECT entity_id, max(last_s) FROM ({' UNION ALL '.join(parts)}) GROUP BY entity_id",
            {"months": at.previous_month, "since": since},
        )
        self._activity = merge_activity(self._activity, ((e, float(s)) for e, s in rows))
        self._activity_read = now
        exported = {e: s for e, s in self._activity.items() if e in self._entities}
        replace_series(ENTITY_LAST_ACTIVITY, ("entity",), per_entity(exported))

    def _plans(self, client: Client, at: Clock, now: dt.datetime) -> None:
        with self._postgres() as conn:
            stored = conn.execute(
                "SELECT entity_id, kpi_code, baseline, target, registered_on, deadline, stage "
                "FROM improvement_plans WHERE stage <> 'CLOSED'"
            ).fetchall()
        plans = [OpenPlan(e, k, b, t, r, d, Stage(s)) for e, k, b, t, r, d, s in stored]
        plans = [p for p in plans if p.entity_id in self._entities]
        latest: dict[tuple[str, str], float] = {}
        if plans:
            zone = ZoneInfo(self._settings.benchmark_time_zone)
            rows = client.execute(
                "SELECT entity_id, kpi_code, toUInt32(period_start) AS month_s, "
                "argMax(value, version) AS newest "
                f"FROM {self._db}.kpi_values "
                "WHERE grain = 'MONTH' AND channel = '' AND service_id = '' "
                "AND entity_id IN %(entities)s AND kpi_code IN %(codes)s "
                "AND period_start >= toDateTime(%(previous)s) "
                "GROUP BY entity_id, kpi_code, period_start",
                {
                    "entities": tuple(sorted({p.entity_id for p in plans})),
                    "codes": tuple(sorted({p.kpi_code for p in plans})),
                    "previous": at.previous_month,
                },
            )
            latest = newest_values(
                (e, k, dt.datetime.fromtimestamp(s, zone).date(), float(v)) for e, k, s, v in rows
            )
        off_track, overdue = plan_counts(
            plans,
            latest,
            at.today,
            self._entities,
            self._settings.benchmark_plan_tolerance_points,
        )
        replace_series(PLANS_OFF_TRACK, ("entity",), per_entity(off_track))
        replace_series(PLANS_OVERDUE, ("entity",), per_entity(overdue))
