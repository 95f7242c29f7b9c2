"""Schema migrations run on a current ClickHouse engine (chdb, in-process), twice.

The integration suite runs the same migrations on the Debian 18.16 server; together they keep
every DDL portable across both ends of the versions the platform supports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pcm_common.clickhouse.migrate import discover, migrate

from tests.chdb_executor import ChdbExecutor


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
    assert {"schema_migrations", "attention_events", "procedure_events", "kpi_values"} <= tables
    recorded = chdb_executor.execute("SELECT count() FROM pcm_test.schema_migrations")
    assert recorded == [(len(every_id),)]


def test_migration_ids_are_numbered_and_unique() -> None:
    ids = [migration.id for migration in discover()]
    numbers = [migration_id[:4] for migration_id in ids]
    assert len(set(numbers)) == len(numbers)
    assert numbers == sorted(numbers)
