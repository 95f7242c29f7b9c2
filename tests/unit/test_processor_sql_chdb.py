"""The compiled KPI SQL on a current ClickHouse engine (chdb) equals the Python reference.

The same SQL runs on the 18.16 server in the integration tests; together they keep the KPI
queries portable across both ends of the supported versions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.migrate import migrate
from pcm_processor.adapters.kpi_sql import SqlCompiler, literal
from pcm_processor.domain.buckets import BUCKET_COLUMNS, BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position, Row
from pcm_processor.domain.kpis import KpiPlan, SliceKey, build_plan
from pcm_processor.domain.reference import reference_kpis
from pcm_processor.domain.registry import (
    ACTIVITY,
    ATTENTION,
    COMPLAINT,
    PROCEDURE_STAGE,
    SURVEY_COLLECTION,
    SURVEY_RESPONSE,
)
from pcm_testkit.events import local_time
from pcm_testkit.generator import Generator

from tests.chdb_executor import ChdbExecutor
from tests.unit.crafted import ABANDONMENT_HOUR, abandonment_cases, assert_same

DB = "pcm_sql"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbExecutor]:
    executor = ChdbExecutor(tmp_path_factory.mktemp("chdb"))
    migrate(executor, DB)
    yield executor
    executor.close()


def insert(engine: ChdbExecutor, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)
    engine.execute(f"INSERT INTO {DB}.{table} ({', '.join(columns)}) VALUES {values}")


def sql_kpis(engine: ChdbExecutor, plan: KpiPlan, rows: Sequence[Row]) -> dict[Any, Any]:
    compiler = SqlCompiler(plan, DB)
    domain = plan.domain
    entity, month = domain.index("entity_id"), domain.index("month_start")
    result = {}
    for grain in plan.grains:
        bucket = domain.index(BUCKET_COLUMNS[grain])
        keys = sorted({(row[entity], row[bucket]) for row in rows})
        months = {row[month] for row in rows}
        for record in engine.execute(compiler.recompute(grain, keys, months)):
            ent, period, channel, service, _events, *values = record
            for kpi in plan.finalize(SliceKey(ent, grain, period, channel, service), values):
                result[kpi.key] = kpi
    return result


@pytest.mark.parametrize(
    "domain",
    [ATTENTION, PROCEDURE_STAGE, COMPLAINT, SURVEY_COLLECTION, SURVEY_RESPONSE],
    ids=lambda d: d.name,
)
def test_sql_equals_reference_on_a_synthetic_stream(
    engine: ChdbExecutor, catalogues: Catalogues, domain: Any
) -> None:
    generator = Generator(catalogues, seed=11, entities=4, run_id=domain.name)
    start = local_time(2025, 1, 31, 18)  # crosses midnight and a month end in Lima
    subjects = 400 if domain is ATTENTION else 120  # tickets or procedures
    produced = generator.stream(domain.name, subjects, start, 12 * 3600)
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock("America/Lima"))
    rows = [
        row for i, p in enumerate(produced) for row in domain.rows(p.envelope, Position(0, i), ctx)
    ]
    # Replayed duplicates are in the table too: they must not change anything.
    insert(engine, domain.table, domain.columns, rows + rows[: len(rows) // 3])
    plan = build_plan(domain, catalogues)
    expected = reference_kpis(plan, rows)
    got = sql_kpis(engine, plan, rows)
    assert len({k[3] for k in expected}) >= 3  # several periods, so buckets matter
    assert_same(expected, got)


def test_sql_equals_reference_on_the_abandonment_boundaries(
    engine: ChdbExecutor, catalogues: Catalogues
) -> None:
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock("America/Lima"))
    rows = [
        ATTENTION.map(envelope, Position(0, 10_000 + i), ctx)
        for i, envelope in enumerate(abandonment_cases())
    ]
    insert(engine, ATTENTION.table, ATTENTION.columns, rows)
    plan = build_plan(ATTENTION, catalogues)
    got = sql_kpis(engine, plan, rows)
    hour = got[("RENIEC", "ABANDONMENT_PCT", "HOUR", ABANDONMENT_HOUR, "", "")]
    assert (hour.numerator, hour.denominator) == (3.0, 5.0)
    assert got == reference_kpis(plan, rows)


def test_sql_equals_reference_across_domains(engine: ChdbExecutor, catalogues: Catalogues) -> None:
    """The activity source: the union of the attention, procedure, complaint and survey facts,
    in one query (after the other tests' periods: complaints run for months)."""
    generator = Generator(catalogues, seed=12, entities=3, run_id="activity")
    start = local_time(2025, 8, 27, 18)
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock("America/Lima"))
    stored: dict[str, list[Row]] = {}
    for domain in (ATTENTION, PROCEDURE_STAGE, COMPLAINT, SURVEY_RESPONSE):
        produced = generator.stream(domain.name, 150, start, 6 * 3600)
        rows = [
            row
            for i, p in enumerate(produced)
            for row in domain.rows(p.envelope, Position(0, 20_000 + i), ctx)
        ]
        insert(engine, domain.table, domain.columns, rows)
        stored[domain.table] = rows
    plan = build_plan(ACTIVITY, catalogues)
    derived = [_derived(part, row) for part in ACTIVITY.parts for row in stored[part.facts.name]]
    expected = reference_kpis(plan, derived)
    codes = {
        "DIGITAL_TAKEUP_PCT",
        "ACTIVE_CHANNELS",
        "CHANNEL_LEVEL",
        "COMPLAINTS_PER_10K_ATTENTIONS",
        "RESPONSES_PER_1000_ATTENTIONS",
    }
    assert {key[1] for key in expected} == codes
    assert sql_kpis(engine, plan, derived) == expected


def _derived(part: Any, row: Row) -> Row:
    values = part.row(dict(zip(part.facts.column_names, row, strict=True)))
    return tuple(values[column] for column in ACTIVITY.columns)
