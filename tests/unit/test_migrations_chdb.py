"""Schema migrations run on a current ClickHouse engine (chdb, in-process), twice.

The integration suite runs the same migrations on the Debian 18.16 server; together they keep
every DDL portable across both ends of the versions the platform supports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chdb import session as chdb_session
from pcm_common.clickhouse.migrate import discover, migrate


class ChdbExecutor:
    """SqlExecutor over an embedded chdb session (current ClickHouse engine)."""

    def __init__(self, path: Path) -> None:
        self._session = chdb_session.Session(str(path))

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        is_select = sql.lstrip().upper().startswith("SELECT")
        result = self._session.query(sql, "JSONCompact" if is_select else "CSV")
        if not is_select:
            return []
        return [tuple(row) for row in json.loads(result.data())["data"]]

    def close(self) -> None:
        self._session.close()


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
