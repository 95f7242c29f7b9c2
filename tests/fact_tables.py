"""Checks of the ClickHouse migrations shared by the chdb (current engine) and 18.16 tests."""

from __future__ import annotations

from pcm_common.clickhouse.client import SqlExecutor
from pcm_common.clickhouse.migrate import discover, migrate
from pcm_common.domains import EVENT_DOMAINS, FactTable
from pcm_processor.terms import PROCEDURE_STATUS

PLATFORM_TABLES = {"schema_migrations", "attention_events", "procedure_stage_events", "kpi_values"}


def fact_tables() -> list[FactTable]:
    """Every table whose columns are declared in code: the domains' facts, procedure statuses."""
    facts = [domain.facts for domain in EVENT_DOMAINS if domain.facts is not None]
    return [*facts, PROCEDURE_STATUS]


def described(executor: SqlExecutor, database: str, table: str) -> list[tuple[str, str]]:
    """(name, type) of every column, in table order."""
    # DESCRIBE, not system.columns: 18.16 has no column position to order by.
    rows = executor.execute(f"DESCRIBE TABLE {database}.{table}")
    return [(str(row[0]), str(row[1])) for row in rows]


def assert_migrations_apply_once(executor: SqlExecutor, database: str) -> None:
    """Every migration applies on a fresh database, then a second run applies nothing."""
    every_id = [migration.id for migration in discover()]
    assert every_id, "no migrations discovered"
    assert migrate(executor, database) == every_id
    assert migrate(executor, database) == []
    tables = {
        str(name)
        for (name,) in executor.execute(
            f"SELECT name FROM system.tables WHERE database = '{database}'"
        )
    }
    assert tables >= PLATFORM_TABLES
    assert {table.name for table in fact_tables()} <= tables
    recorded = executor.execute(f"SELECT count() FROM {database}.schema_migrations")
    assert [tuple(row) for row in recorded] == [(len(every_id),)]


def assert_fact_tables_match_their_declaration(executor: SqlExecutor, database: str) -> None:
    """The DDL of the migrations and the one column list of each domain agree (name, type and
    order), so rows built by name land in the right columns."""
    migrate(executor, database)
    for table in fact_tables():
        assert described(executor, database, table.name) == [
            (column.name, column.type) for column in table.columns
        ]
