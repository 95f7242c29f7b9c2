"""ClickHouse schema migrations: applied group by group, in order, each at most once.

The groups (one per owner of tables, see ``pcm_common.migrations``) are declared here as data.
Every statement is idempotent (IF NOT EXISTS; ``AddColumn`` where ClickHouse 18.16 has no
``ADD COLUMN IF NOT EXISTS``), so a crash between a statement and the bookkeeping insert is
harmless: the next run repeats the statement and records it. All SQL must
run on ClickHouse 18.16 (Debian) and on current releases; tests run it on both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pcm_common.clickhouse.client import SqlExecutor
from pcm_common.logging import get_logger
from pcm_common.migrations import Migration, MigrationGroup, discover_all

log = get_logger(__name__)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class AddColumn:
    """``ALTER TABLE {db}.<table> ADD COLUMN <column> <definition>``, only if it is missing."""

    table: str
    column: str
    definition: str

    def apply(self, executor: SqlExecutor, db: str) -> None:
        found = executor.execute(
            f"SELECT count() FROM system.columns WHERE database = '{db}' "
            f"AND table = '{self.table}' AND name = '{self.column}'"
        )
        if not found or not found[0][0]:
            executor.execute(
                f"ALTER TABLE {db}.{self.table} ADD COLUMN {self.column} {self.definition}"
            )


CLICKHOUSE_GROUPS: tuple[MigrationGroup, ...] = (
    # Fact tables and KPI values: written by the stream processors.
    MigrationGroup("processor", "pcm_processor.migrations"),
    # Assessments and ranks: written by the national benchmark.
    MigrationGroup("benchmark", "pcm_benchmark.migrations"),
)


def discover(groups: Sequence[MigrationGroup] = CLICKHOUSE_GROUPS) -> list[Migration]:
    return discover_all(groups)


def applied_ids(executor: SqlExecutor, db: str) -> set[str]:
    return {row[0] for row in executor.execute(f"SELECT DISTINCT id FROM {db}.schema_migrations")}


def migrate(
    executor: SqlExecutor, db: str, groups: Sequence[MigrationGroup] = CLICKHOUSE_GROUPS
) -> list[str]:
    """Apply the migrations `db` lacks; return the ids applied by this run."""
    if not _IDENTIFIER.match(db):
        raise ValueError(f"database name {db!r} is not a plain identifier")
    executor.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    executor.execute(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(id String, applied_at DateTime) ENGINE = MergeTree ORDER BY id"
    )
    done = applied_ids(executor, db)
    applied = []
    for migration in discover(groups):
        if migration.id in done:
            continue
        for statement in migration.statements:
            if isinstance(statement, AddColumn):
                statement.apply(executor, db)
            else:
                executor.execute(statement.format(db=db))
        executor.execute(
            # INSERT ... SELECT, not VALUES: the native driver waits for a data block after VALUES.
            f"INSERT INTO {db}.schema_migrations (id, applied_at) SELECT '{migration.id}', now()"
        )
        log.info("applied migration", database=db, migration=migration.id)
        applied.append(migration.id)
    return applied
