"""Schema migrations run on a current ClickHouse engine (chdb, in-process), twice.

The integration suite runs the same migrations on the Debian 18.16 server; together they keep
every DDL portable across both ends of the versions the platform supports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pcm_common.clickhouse.migrate import CLICKHOUSE_GROUPS, discover, migrate

from tests.chdb_executor import ChdbExecutor
from tests.fact_tables import described, fact_tables


@pytest.fixture
def chdb_executor(tmp_path: Path) -> Iterator[ChdbExecutor]:
    executor = ChdbExecutor(tmp_path / "chdb")
    yield executor
    executor.close()


def test_migrations_apply_once_then_nothing(chdb_executor: ChdbExecutor) -> None:
    every_id = [migration.id for migration in discover()]
    assert every_id, "no migrations discovered"
    assert migrate(chdb_executor, "pcm_test") == every_id
    assert migrate(chdb_executor, "pcm_test") == []
    tables = {
        row[0]
        for row in chdb_executor.execute(
            "SELECT name FROM system.tables WHERE database = 'pcm_test'"
        )
    }
    assert {
        "schema_migrations",
        "attention_events",
        "procedure_stage_events",
        "kpi_values",
    } <= tables
    assert {table.name for table in fact_tables()} <= tables
    recorded = chdb_executor.execute("SELECT count() FROM pcm_test.schema_migrations")
    assert recorded == [(len(every_id),)]


def test_migration_ids_are_numbered_and_unique_within_their_owner() -> None:
    for group in CLICKHOUSE_GROUPS:
        names = [migration.name for migration in group.discover()]
        numbers = [name[:4] for name in names]
        assert names, f"group {group.owner} has no migrations"
        assert len(set(numbers)) == len(numbers)
        assert numbers == sorted(numbers)
        assert all(m.id == f"{group.owner}/{m.name}" for m in group.discover())


def test_fact_tables_match_their_declaration(chdb_executor: ChdbExecutor) -> None:
    """The DDL of the migrations and the one column list of each domain agree (name, type and
    order), so rows built by name land in the right columns."""
    migrate(chdb_executor, "pcm_test")
    for table in fact_tables():
        assert described(chdb_executor, "pcm_test", table.name) == [
            (column.name, column.type) for column in table.columns
        ]
