"""The term tracker on the real ClickHouse (18.16): statuses from stored stage facts, within-term
values by due date, and period-close snapshots that a second run leaves unchanged.

Driven in-process with the processor's own ClickHouse adapter (no Kafka: the pipeline's part is
covered in test_processor_kpis.py), on dates within the last 400 days so periods can close.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest
from clickhouse_driver import Client
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.settings import Settings
from pcm_processor.adapters.clickhouse import ClickHouseStore
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position
from pcm_processor.domain.registry import PROCEDURE_STAGE
from pcm_processor.terms import PERIOD_CLOSES, TermTracker
from pcm_testkit.events import procedure_stage_event

CLOCK = BucketClock("America/Lima")
SERVICE = "RENIEC_DNI_DUPLICADO"  # 7 business days


@pytest.fixture(scope="module")
def store(isolated_settings: Settings, clickhouse: Client) -> Iterator[ClickHouseStore]:
    migrate(clickhouse, isolated_settings.clickhouse_database)
    adapter = ClickHouseStore(
        lambda: connect(isolated_settings), isolated_settings.clickhouse_database, 1.0
    )
    yield adapter
    adapter.close()


def recent_monday(catalogues: Catalogues) -> dt.date:
    """A Monday about two months ago that is a business day in Lima."""
    day = CLOCK.local_date(int(dt.datetime.now(dt.UTC).timestamp())) - dt.timedelta(days=60)
    while day.weekday() != 0 or not catalogues.calendar.is_business_day(day, "LIMA"):
        day -= dt.timedelta(days=1)
    return day


def at(day: dt.date, hour: int = 10) -> int:
    return CLOCK.period_of(day, "DAY") + hour * 3600


def kpis(clickhouse: Client, database: str, code: str) -> dict[tuple[str, int], tuple]:
    rows = clickhouse.execute(
        "SELECT toString(grain), toUInt32(period_start), argMax(value, version), "
        f"argMax(denominator, version) FROM {database}.kpi_values WHERE entity_id = 'RENIEC' "
        "AND kpi_code = %(code)s AND channel = '' AND service_id = '' "
        "GROUP BY grain, period_start",
        {"code": code},
    )
    return {(grain, start): (value, denominator) for grain, start, value, denominator in rows}


def test_statuses_values_and_closes_on_the_real_server(
    catalogues: Catalogues,
    store: ClickHouseStore,
    clickhouse: Client,
    isolated_settings: Settings,
) -> None:
    db = isolated_settings.clickhouse_database
    filed = recent_monday(catalogues)
    due = catalogues.calendar.add_business_days(filed, 7, "LIMA")
    late = catalogues.calendar.add_business_days(due, 2, "LIMA")
    p = procedure_stage_event
    envelopes = [
        p("RENIEC", "ON-TIME", "FILED", SERVICE, "PRESENCIAL", at(filed), at(filed)),
        p("RENIEC", "ON-TIME", "RESOLVED", SERVICE, "PRESENCIAL", at(filed), at(due), 2),
        p("RENIEC", "LATE", "FILED", SERVICE, "VIRTUAL", at(filed), at(filed)),
        p("RENIEC", "LATE", "RESOLVED", SERVICE, "VIRTUAL", at(filed), at(late), 2),
        p("RENIEC", "OPEN", "FILED", SERVICE, "VIRTUAL", at(filed), at(filed)),
    ]
    ctx = MappingContext(CatalogueView.of(catalogues), CLOCK)
    rows = [PROCEDURE_STAGE.map(e, Position(0, i), ctx) for i, e in enumerate(envelopes)]
    tracker = TermTracker(catalogues, CLOCK, store, db)

    async def run() -> None:
        await store.insert_facts(PROCEDURE_STAGE.table, PROCEDURE_STAGE.columns, rows)
        tracker.touch(rows)
        flushed = await tracker.flush(computed_at=1_000)
        await store.insert_kpis([r for r, _ in flushed], [v for _, v in flushed], 1_000)

    asyncio.run(run())
    statuses = clickhouse.execute(
        f"SELECT procedure_id, argMax(due_on, version), argMax(resolved, version) "
        f"FROM {db}.procedure_status GROUP BY procedure_id ORDER BY procedure_id"
    )
    assert statuses == [("LATE", due, 1), ("ON-TIME", due, 1), ("OPEN", due, 0)]
    day = CLOCK.period_of(due, "DAY")
    # Due that day: one on time, one late, one open and overdue.
    value, denominator = kpis(clickhouse, db, "PROCEDURES_WITHIN_TERM_PCT")[("DAY", day)]
    assert (round(value, 6), denominator) == (round(100 / 3, 6), 3.0)

    def close() -> dict[tuple[str, int], tuple]:
        async def closing() -> None:
            taken = await tracker.close_periods(computed_at=2_000)
            await store.insert_kpis([r for r, _ in taken], [v for _, v in taken], 2_000)
            await tracker.record_closes()

        asyncio.run(closing())
        return kpis(clickhouse, db, "PROCEDURES_OPEN_OVERDUE")

    first = close()
    assert first[("DAY", day)] == (2.0, 1.0)  # LATE (until decided) and OPEN
    assert first[("DAY", CLOCK.period_of(late, "DAY"))] == (1.0, 1.0)  # LATE decided: OPEN
    marked = clickhouse.execute(f"SELECT count() FROM {db}.{PERIOD_CLOSES}")[0][0]
    assert marked > 0
    # Taken once: a second run finds nothing to take.
    assert asyncio.run(tracker.close_periods(computed_at=3_000)) == []
    # Forgetting the marks (as after a crash before recording them) retakes the same values.
    clickhouse.execute(f"TRUNCATE TABLE {db}.{PERIOD_CLOSES}")
    assert close() == first
