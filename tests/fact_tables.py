"""Checks of the ClickHouse migrations shared by the chdb (current engine) and 18.16 tests."""

from __future__ import annotations

from pcm_common.clickhouse.client import SqlExecutor
from pcm_common.clickhouse.migrate import Regranulate, discover, migrate
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


def assert_regranulation_keeps_every_row(executor: SqlExecutor, database: str) -> None:
    """``Regranulate`` changes a table's granularity and keeps its rows, also when an earlier
    run stopped half-way (a copy not finished, between the two renames, after the swap)."""
    table = f"{database}.regranulated"
    regranulate = Regranulate("regranulated", 256)

    def fresh(rows: int) -> None:
        for name in ("regranulated", "regranulated__regranulated"):
            executor.execute(f"DROP TABLE IF EXISTS {database}.{name}")
        executor.execute(f"DROP TABLE IF EXISTS {database}.regranulated__before_regranulation")
        executor.execute(
            f"CREATE TABLE {table} (entity_id String, n UInt64) ENGINE = MergeTree "
            "ORDER BY (entity_id, n) SETTINGS index_granularity = 8192"
        )
        executor.execute(
            f"INSERT INTO {table} SELECT toString(modulo(number, 7)), number "
            f"FROM system.numbers LIMIT {rows}"
        )

    def assert_done(rows: int) -> None:
        create = executor.execute(f"SHOW CREATE TABLE {table}")[0][0]
        assert "index_granularity = 256" in create
        assert executor.execute(f"SELECT uniqExact(n), count() >= {rows} FROM {table}") == [
            (rows, 1)
        ]
        names = executor.execute(
            f"SELECT name FROM system.tables WHERE database = '{database}' "
            "AND name LIKE 'regranulated%'"
        )
        assert [row[0] for row in names] == ["regranulated"]

    fresh(1000)
    regranulate.apply(executor, database)
    assert_done(1000)
    regranulate.apply(executor, database)  # nothing left to do
    assert_done(1000)

    fresh(500)  # a copy that did not finish: started again
    executor.execute(f"CREATE TABLE {database}.regranulated__regranulated AS {table}")
    executor.execute(
        f"INSERT INTO {database}.regranulated__regranulated SELECT * FROM {table} LIMIT 7"
    )
    regranulate.apply(executor, database)
    assert_done(500)

    fresh(300)  # stopped between the renames: the copy is complete, the old table kept aside
    executor.execute(
        f"CREATE TABLE {database}.regranulated__regranulated (entity_id String, n UInt64) "
        "ENGINE = MergeTree ORDER BY (entity_id, n) SETTINGS index_granularity = 256"
    )
    executor.execute(f"RENAME TABLE {table} TO {database}.regranulated__before_regranulation")
    regranulate.apply(executor, database)
    assert_done(300)
