"""Schema migrations run on a current ClickHouse engine (chdb, in-process), twice.

The integration suite runs the same migrations on the Debian 18.16 server; together they keep
every DDL portable across both ends of the versions the platform supports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pcm_common.clickhouse.migrate import CLICKHOUSE_GROUPS, AddColumn, migrate

from tests.chdb_executor import ChdbExecutor
from tests.fact_tables import (
    assert_fact_tables_match_their_declaration,
    assert_migrations_apply_once,
    assert_regranulation_keeps_every_row,
)


@pytest.fixture
def chdb_executor(tmp_path: Path) -> Iterator[ChdbExecutor]:
    executor = ChdbExecutor(tmp_path / "chdb")
    yield executor
    executor.close()


def test_migrations_apply_once_then_nothing(chdb_executor: ChdbExecutor) -> None:
    assert_migrations_apply_once(chdb_executor, "pcm_test")


def test_migration_ids_are_numbered_and_unique_within_their_owner() -> None:
    for group in CLICKHOUSE_GROUPS:
        names = [migration.name for migration in group.discover()]
        numbers = [name[:4] for name in names]
        assert names, f"group {group.owner} has no migrations"
        assert len(set(numbers)) == len(numbers)
        assert numbers == sorted(numbers)
        assert all(m.id == f"{group.owner}/{m.name}" for m in group.discover())


def test_fact_tables_match_their_declaration(chdb_executor: ChdbExecutor) -> None:
    assert_fact_tables_match_their_declaration(chdb_executor, "pcm_test")


def test_add_column_is_idempotent_where_alter_has_no_if_not_exists(
    chdb_executor: ChdbExecutor,
) -> None:
    """ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: a rerun after a crash must pass."""
    migrate(chdb_executor, "pcm_test")
    again = AddColumn("kpi_values", "insufficient_sample", "UInt8 DEFAULT 0")
    again.apply(chdb_executor, "pcm_test")
    again.apply(chdb_executor, "pcm_test")
    columns = [row[0] for row in chdb_executor.execute("DESCRIBE TABLE pcm_test.kpi_values")]
    assert columns.count("insufficient_sample") == 1
    assert columns[-2:] == ["insufficient_sample", "catalogue_version"]


def test_regranulation_keeps_every_row(chdb_executor: ChdbExecutor) -> None:
    migrate(chdb_executor, "pcm_test")
    assert_regranulation_keeps_every_row(chdb_executor, "pcm_test")
