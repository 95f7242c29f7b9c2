"""The per-entity business figures on the real ClickHouse (18.16) and PostgreSQL: one pass of the
leading benchmark worker exports them (waiting p90 and target, satisfaction windows, last
activity, plans off track and overdue), the next pass follows new data, a standby exports none."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from clickhouse_driver import Client
from pcm_benchmark.entity_watch import EntityWatch
from pcm_benchmark.plans import Action, Stage, Terms
from pcm_benchmark.plans_book import Actor, NewPlan, PlanBook
from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.worker import Refresher, refresh_as_leader
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import Direction
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.memory import InMemoryProducer
from pcm_common.postgres.client import connect as postgres
from pcm_common.postgres.client import pool
from pcm_common.postgres.leader import LeaderLock
from pcm_testkit.isolation import isolated
from pcm_testkit.kpis import kpi_value_row
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

LIMA = ZoneInfo("America/Lima")
NOW = dt.datetime(2026, 10, 20, 10, 20, tzinfo=LIMA)
TODAY = NOW.date()
HOUR = NOW.replace(minute=0)
OCTOBER = dt.datetime(2026, 10, 1, tzinfo=LIMA)
SEPTEMBER = dt.datetime(2026, 9, 1, tzinfo=LIMA)
TITLE = "Plan de mejora de Rosa Quispe Mamani"
"""Free text a plan carries: it must never reach a metric."""
NAMES = (
    "pcm_entity_service_wait_p90_seconds",
    "pcm_entity_service_wait_target_seconds",
    "pcm_entity_satisfaction_pct",
    "pcm_entity_satisfaction_answers",
    "pcm_entity_last_activity_timestamp_seconds",
    "pcm_benchmark_plans_off_track",
    "pcm_benchmark_plans_overdue",
)


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def exported() -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in REGISTRY.collect()
        if family.name in NAMES
        for sample in family.samples
    ]


def kpi(
    entity: str,
    code: str,
    grain: str,
    start: dt.datetime,
    value: float,
    denominator: float,
    *,
    service: str = "",
    channel: str = "",
    numerator: float | None = None,
    version: int = 1,
) -> dict[str, object]:
    row = kpi_value_row(entity, code, start, value, denominator, version=version, channel=channel)
    row.update(grain=grain, service_id=service)
    if numerator is not None:
        row["numerator"] = numerator
    return row


def days_ago(days: int) -> dt.datetime:
    return dt.datetime.combine(TODAY - dt.timedelta(days=days), dt.time(), LIMA)


def seed_kpis(client: Client, database: str) -> None:
    wait, sat, within = "WAIT_P90_S", "SATISFACTION_PCT", "SERVED_WITHIN_TARGET_PCT"
    dni, literal = "RENIEC_DNI_DUPLICADO", "SUNARP_CERTIFICADO_LITERAL"
    before, earlier = HOUR - dt.timedelta(hours=1), HOUR - dt.timedelta(hours=2)
    rows = [
        # RENIEC, DNI duplicates: this hour, corrected by a newer version (45 served, p90 26 min).
        kpi("RENIEC", wait, "HOUR", HOUR, 1500, 40, service=dni),
        kpi("RENIEC", wait, "HOUR", HOUR, 1560, 45, service=dni, version=2),
        # ... its in-person slice and the entity as a whole are other slices.
        kpi("RENIEC", wait, "HOUR", HOUR, 9999, 40, service=dni, channel="PRESENCIAL"),
        kpi("RENIEC", wait, "HOUR", HOUR, 8888, 400),
        # SUNARP: 4 tickets served so far this hour; the hour before had 60.
        kpi("SUNARP", wait, "HOUR", HOUR, 2000, 4, service=literal),
        kpi("SUNARP", wait, "HOUR", before, 600, 60, service=literal),
        # ONP: guidance this hour; a consultation two hours ago is not current.
        kpi("ONP", wait, "HOUR", HOUR, 300, 40, service="ORIENTACION"),
        kpi("ONP", wait, "HOUR", earlier, 5000, 50, service="ONP_CONSULTA_APORTES"),
        # RENIEC's overall satisfaction per day (numerator: answers 4 or 5).
        kpi("RENIEC", sat, "DAY", days_ago(0), 10, 10, numerator=1),
        kpi("RENIEC", sat, "DAY", days_ago(0), 90, 10, numerator=9, version=2),
        kpi("RENIEC", sat, "DAY", days_ago(6), 20, 30, numerator=6),
        kpi("RENIEC", sat, "DAY", days_ago(7), 80, 100, numerator=80),
        kpi("RENIEC", sat, "DAY", days_ago(27), 80, 25, numerator=20),
        kpi("RENIEC", sat, "DAY", days_ago(28), 0, 500, numerator=0),
        # Not the overall question, not the entity as a whole: other KPIs, other slices.
        kpi("RENIEC", f"{sat}_TRATO_PROFESIONAL", "DAY", days_ago(0), 0, 100, numerator=0),
        kpi("RENIEC", sat, "DAY", days_ago(1), 0, 100, numerator=0, channel="PRESENCIAL"),
        # The plans' KPI, MONTH, entity as a whole: RENIEC has no number yet this month.
        kpi("RENIEC", within, "MONTH", SEPTEMBER, 55, 200),
        kpi("RENIEC", within, "MONTH", OCTOBER, math.nan, 0),
        kpi("SUNARP", within, "MONTH", OCTOBER, 50, 200),
    ]
    client.execute(f"INSERT INTO {database}.kpi_values VALUES", rows)


def seed_fact(
    client: Client, database: str, table: str, entity: str, received: dt.datetime, **extra: Any
) -> None:
    month = received.astimezone(LIMA).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    row = {
        "entity_id": entity,
        "event_id": f"{entity}-{received.timestamp():.0f}",
        "month_start": month,
        "received_at": received,
        **extra,
    }
    client.execute(f"INSERT INTO {database}.{table} ({', '.join(row)}) VALUES", [row])


def register(
    book: PlanBook, entity: str, plan_id: str, registered: dt.date, deadline: dt.date
) -> None:
    terms = Terms(
        kpi_code="SERVED_WITHIN_TARGET_PCT",
        target=90.0,
        deadline=deadline,
        actions=(Action("Más ventanillas en hora punta", registered, deadline),),
        direction=Direction.HIGHER_IS_BETTER,
    )
    plan = NewPlan(
        entity_id=entity,
        plan_id=plan_id,
        title=TITLE,
        standard_code="PUNTUALIDAD",
        criterion_id="",
        owner_role="Jefa de la unidad de atención: Rosa Quispe",
        terms=terms,
        baseline=50.0,
        baseline_period=dt.date(2025, 12, 1),
        registered_on=registered,
    )
    book.register(plan, Actor(entity, "entity", "token-1"))


@pytest.fixture
def settings() -> Iterator[BenchmarkSettings]:
    with isolated("entitywatch") as shared:
        yield BenchmarkSettings(**shared.model_dump(), benchmark_full_refresh_s=3600)


def test_the_leader_exports_every_entity_figure_and_a_standby_none(
    settings: BenchmarkSettings, catalogues: Catalogues
) -> None:
    client = connect(settings, database="default")
    database = settings.clickhouse_database
    migrate(client, database)
    seed_kpis(client, database)
    # Events as received: RENIEC two hours ago; SUNARP 30 hours ago (the complaints worker's
    # OVERDUE event an hour ago is the platform's, not SUNARP's); ONP on 25 September;
    # MIGRACIONES in August, before the previous month: not looked at.
    seed_fact(client, database, "attention_events", "RENIEC", NOW - dt.timedelta(hours=2))
    seed_fact(client, database, "survey_response_events", "SUNARP", NOW - dt.timedelta(hours=30))
    overdue_job = NOW - dt.timedelta(hours=1)
    seed_fact(client, database, "complaint_events", "SUNARP", overdue_job, stage="OVERDUE")
    onp_seen = dt.datetime(2026, 9, 25, 12, tzinfo=LIMA)
    seed_fact(client, database, "procedure_stage_events", "ONP", onp_seen)
    august = dt.datetime(2026, 8, 20, tzinfo=LIMA)
    seed_fact(client, database, "survey_collection_events", "MIGRACIONES", august)
    with pool(settings) as connections:
        book = PlanBook(connections)
        # RENIEC: one plan behind its line (5 of 40 points done; ~80 % of the time gone), one
        # past its deadline; SUNARP: one registered this month; ONP: only a closed plan.
        register(book, "RENIEC", "P1", dt.date(2026, 1, 10), dt.date(2026, 12, 31))
        register(book, "RENIEC", "P2", dt.date(2026, 1, 10), dt.date(2026, 9, 30))
        register(book, "SUNARP", "P1", dt.date(2026, 10, 1), dt.date(2027, 10, 1))
        register(book, "ONP", "P1", dt.date(2026, 1, 10), dt.date(2026, 9, 30))
        actor = Actor("ONP", "entity", "token-2")
        for stage in (Stage.DO, Stage.CHECK, Stage.ACT):
            book.advance("ONP", "P1", stage, "", actor)
        book.close("ONP", "P1", "cerrado", Actor("PCM-SGP", "national", "token-3"))

    watch = EntityWatch(
        settings, catalogues, lambda: postgres(settings, autocommit=True), now=lambda: NOW
    )
    producer = InMemoryProducer()
    refresher = Refresher(settings, catalogues, lambda _: [], producer, lambda: TODAY, watch=watch)
    lock, other = LeaderLock(settings, "watch"), LeaderLock(settings, "watch")
    errors = value("pcm_benchmark_refresh_errors_total")
    try:
        refresh_as_leader(lock, refresher)  # one pass of the leader
        assert value("pcm_benchmark_worker_leader") == 1
        assert value("pcm_benchmark_refresh_errors_total") == errors  # the pass succeeded

        # Waiting time: this hour's newest version; SUNARP's hour before (4 tickets so far).
        p90 = "pcm_entity_service_wait_p90_seconds"
        target = "pcm_entity_service_wait_target_seconds"
        assert value(p90, entity="RENIEC", service="RENIEC_DNI_DUPLICADO") == 1560
        assert value(target, entity="RENIEC", service="RENIEC_DNI_DUPLICADO") == 1200
        assert value(p90, entity="SUNARP", service="SUNARP_CERTIFICADO_LITERAL") == 600
        assert value(target, entity="SUNARP", service="SUNARP_CERTIFICADO_LITERAL") == 900
        assert value(p90, entity="ONP", service="ORIENTACION") == 300
        assert value(target, entity="ONP", service="ORIENTACION") == 600  # not the phone's 60 s
        assert value(p90, entity="ONP", service="ONP_CONSULTA_APORTES") is None

        # Satisfaction: 15 of 40 this week (not the 55 % mean of 90 % and 20 %), 115 of 165.
        pct, answers = "pcm_entity_satisfaction_pct", "pcm_entity_satisfaction_answers"
        assert value(pct, entity="RENIEC", window="7d") == pytest.approx(37.5)
        assert value(pct, entity="RENIEC", window="28d") == pytest.approx(100 * 115 / 165)
        assert value(answers, entity="RENIEC", window="7d") == 40
        assert value(answers, entity="RENIEC", window="28d") == 165

        # Last activity, as received.
        last = "pcm_entity_last_activity_timestamp_seconds"
        assert value(last, entity="RENIEC") == (NOW - dt.timedelta(hours=2)).timestamp()
        assert value(last, entity="SUNARP") == (NOW - dt.timedelta(hours=30)).timestamp()
        assert value(last, entity="ONP") == onp_seen.timestamp()
        assert value(last, entity="MIGRACIONES") is None

        # Plans: RENIEC's two off track (P2 overdue too) on September's 55; SUNARP on track.
        off, overdue = "pcm_benchmark_plans_off_track", "pcm_benchmark_plans_overdue"
        assert (value(off, entity="RENIEC"), value(overdue, entity="RENIEC")) == (2, 1)
        assert (value(off, entity="SUNARP"), value(overdue, entity="SUNARP")) == (0, 0)
        assert value(off, entity="ONP") is None

        # Codes only: no plan title, owner or name in any label.
        for name, labels, _ in exported():
            assert set(labels) <= {"entity", "service", "window"}, name
            assert not any("Rosa" in v or "Plan" in v for v in labels.values()), labels

        # The next pass follows new data: more SUNARP tickets this hour, a new RENIEC event;
        # ONP's September event is out of the two-day look-back but stays known.
        literal = "SUNARP_CERTIFICADO_LITERAL"
        more = kpi("SUNARP", "WAIT_P90_S", "HOUR", HOUR, 1000, 35, service=literal, version=2)
        client.execute(f"INSERT INTO {database}.kpi_values VALUES", [more])
        seed_fact(client, database, "attention_events", "RENIEC", NOW - dt.timedelta(minutes=5))
        refresh_as_leader(lock, refresher)
        assert value(p90, entity="SUNARP", service="SUNARP_CERTIFICADO_LITERAL") == 1000
        assert value(last, entity="RENIEC") == (NOW - dt.timedelta(minutes=5)).timestamp()
        assert value(last, entity="ONP") == onp_seen.timestamp()
        assert value("pcm_benchmark_refresh_errors_total") == errors

        # A standby exports nothing: the leader's figures alone.
        refresh_as_leader(other, refresher)
        assert value("pcm_benchmark_worker_leader") == 0
        assert exported() == []
    finally:
        lock.release()
        other.release()
