"""After the load: wait, each with a deadline, until everything accepted has gone all the way.

1. the complaints worker ran an overdue pass after the last push (its /metrics);
2. every outbox is drained (PostgreSQL: no row without ``published_at``);
3. the processor caught up: its committed offsets, read from the broker, are the end offsets
   of every topic it consumes, twice in a row (an offset is committed only once the facts and
   KPIs of its message are written);
4. the benchmark worker assessed each month after its KPIs were last written, and completed a
   pass after that.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from clickhouse_driver import Client
from pcm_benchmark.metrics import LAST_REFRESH
from pcm_common.postgres.client import connect as connect_postgres
from pcm_common.settings import Settings
from pcm_complaints.metrics import OVERDUE_JOB_SUCCESS
from pcm_demo.platform import Layout
from pcm_processor.settings import consumer_group
from pcm_testkit.kafka import domain_topics
from pcm_testkit.processor import wait_caught_up
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

LIMA = ZoneInfo("America/Lima")
OUTBOXES = (
    "complaint_outbox",
    "indicator_outbox",
    "survey_collection_outbox",
    "survey_response_outbox",
)

RELAYS = ("complaints-worker", "indicators-worker", "surveys-worker")
"""The processes that publish the outboxes."""


class NotSettled(RuntimeError):
    """A wait that ran out; ``processes`` are those whose logs tell why."""

    def __init__(self, message: str, processes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.processes = processes


@dataclass
class Settled:
    """How long each wait took (seconds); what did not settle in time."""

    took: dict[str, float] = field(default_factory=dict)
    late: list[str] = field(default_factory=list)


def _gauge_name(gauge: Gauge) -> str:
    (metric,) = gauge.describe()
    return str(metric.name)


def metric(url: str, name: str) -> float | None:
    """A sample's value on a /metrics page (None: the page or the sample is not there)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as page:
            text = page.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


def outbox_pending(settings: Settings) -> dict[str, int]:
    pending: dict[str, int] = {}
    try:
        with connect_postgres(settings) as conn:
            for table in OUTBOXES:
                sql = f"SELECT count(*) FROM {table} WHERE published_at IS NULL"
                (count,) = conn.execute(sql).fetchall()
                pending[table] = int(count[0])
    except Exception:  # PostgreSQL restarting: not drained as far as we know
        return {table: -1 for table in OUTBOXES}
    return pending


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def worker_months(today: dt.date) -> tuple[dt.date, dt.date]:
    """The months the benchmark worker keeps current: the previous one and this one."""
    current = month_start(today)
    return month_start(current - dt.timedelta(days=1)), current


def _assessed_after_kpis(client: Client, database: str, months: tuple[dt.date, ...]) -> bool:
    for month in months:
        start = dt.datetime.combine(month, dt.time(), LIMA)
        ((written,),) = client.execute(
            f"SELECT max(computed_at) FROM {database}.kpi_values "
            "WHERE grain = 'MONTH' AND period_start = %(start)s",
            {"start": start},
        )
        ((assessed,),) = client.execute(
            f"SELECT max(computed_at) FROM {database}.benchmark_results "
            "WHERE grain = 'MONTH' AND period_start = %(month)s",
            {"month": month},
        )
        if written.year > 1970 and not assessed > written:
            return False
    return True


def settle(
    settings: Settings,
    layout: Layout,
    client: Callable[[], Client],
    last_push: float,
    timeout_s: float,
    say: Callable[[str], None],
) -> Settled:
    """Every wait in turn, within ``timeout_s`` in all; raises ``NotSettled`` for the first
    three (without them the stores cannot be compared), records the benchmark's as late.
    Each wait is announced through ``say`` as it begins and ends, so a run stopped from outside
    shows which one it was in."""
    done = Settled()
    deadline = time.monotonic() + timeout_s

    def step(
        name: str,
        condition: Callable[[], bool],
        most_s: float,
        what: str,
        state: Callable[[], object],
        processes: tuple[str, ...],
    ) -> None:
        say(f"      waiting for {what}")
        started = time.monotonic()
        limit_s = min(most_s, max(1.0, deadline - started))
        while not condition():
            if time.monotonic() >= started + limit_s:
                message = f"{what}: not within {limit_s:.0f} s (last seen: {state()})"
                raise NotSettled(message, processes)
            time.sleep(0.5)
        done.took[name] = time.monotonic() - started
        say(f"      {name} after {done.took[name]:.0f} s")

    overdue = _gauge_name(OVERDUE_JOB_SUCCESS)
    worker = layout.metrics_url("complaints-worker")
    step(
        "overdue pass",
        lambda: (metric(worker, overdue) or 0.0) > last_push,
        timeout_s,
        "the complaints worker's overdue pass after the last push",
        lambda: f"last pass {metric(worker, overdue)}, last push {last_push:.0f}",
        ("complaints-worker",),
    )
    step(
        "outboxes drained",
        lambda: not any(outbox_pending(settings).values()),
        timeout_s,
        "the outboxes",
        lambda: f"unpublished rows {outbox_pending(settings)}",
        RELAYS,
    )
    say("      waiting for the processor to commit every topic's end offsets")
    try:
        done.took["processor caught up"] = wait_caught_up(
            settings.kafka_bootstrap,
            consumer_group(settings.topic_prefix),
            domain_topics(settings.topic_prefix),
            max(1.0, deadline - time.monotonic()),
        )
    except AssertionError as error:
        raise NotSettled(f"the processor: {error}", ("processor",)) from error
    say(f"      processor caught up after {done.took['processor caught up']:.0f} s")
    caught_up = time.time()
    months = worker_months(dt.datetime.now(LIMA).date())
    refreshed = _gauge_name(LAST_REFRESH)
    bench = layout.metrics_url("benchmark-worker")
    try:
        with_client = client()
        step(
            "benchmark current",
            lambda: (
                _assessed_after_kpis(with_client, settings.clickhouse_database, months)
                and (metric(bench, refreshed) or 0.0) > caught_up
            ),
            180.0,
            "the benchmark worker's assessment after the last KPI write",
            lambda: f"last pass {metric(bench, refreshed)}, caught up {caught_up:.0f}",
            ("benchmark-worker",),
        )
    except NotSettled as late:
        done.late.append(str(late))
    return done
