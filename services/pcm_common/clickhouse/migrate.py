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


@dataclass(frozen=True)
class Regranulate:
    """Rebuild ``{db}.<table>`` with ``index_granularity`` rows per index mark (ClickHouse
    cannot alter it): copy into a new table, swap the names, copy the parts written to the old
    table meanwhile (a processor still running), drop the old table.

    Rows copied twice are harmless: every fact table is read first copy per event id, and
    merged by it. Each step looks at where an interrupted earlier run stopped."""

    table: str
    granularity: int

    def apply(self, executor: SqlExecutor, db: str) -> None:
        table, new, old = (f"{db}.{name}" for name in self._names())
        present = self._present(executor, db)
        if self.table not in present:
            if self._names()[1] in present:  # stopped between the two renames
                executor.execute(f"RENAME TABLE {new} TO {table}")
                self._finish(executor, db, parts=None)
            return
        create = executor.execute(f"SHOW CREATE TABLE {table}")[0][0]
        if _granularity(create) == self.granularity:
            if self._names()[2] in present:  # stopped after the swap
                self._finish(executor, db, parts=None)
            return
        executor.execute(f"DROP TABLE IF EXISTS {new}")  # a copy that did not finish
        parts = self._parts(executor, db, self.table)
        executor.execute(self._retargeted(create, table, new))
        executor.execute(f"INSERT INTO {new} SELECT * FROM {table}")
        executor.execute(f"RENAME TABLE {table} TO {old}, {new} TO {table}")
        self._finish(executor, db, parts)

    def _names(self) -> tuple[str, str, str]:
        return self.table, f"{self.table}__regranulated", f"{self.table}__before_regranulation"

    def _present(self, executor: SqlExecutor, db: str) -> set[str]:
        names = ", ".join(f"'{name}'" for name in self._names())
        found = executor.execute(
            f"SELECT name FROM system.tables WHERE database = '{db}' AND name IN ({names})"
        )
        return {row[0] for row in found}

    def _parts(self, executor: SqlExecutor, db: str, table: str) -> list[str]:
        found = executor.execute(
            f"SELECT name FROM system.parts WHERE database = '{db}' AND table = '{table}' "
            "AND active"
        )
        return sorted(row[0] for row in found)

    def _retargeted(self, create: str, table: str, new: str) -> str:
        # 18.16 writes "CREATE TABLE db.t (", current releases "CREATE TABLE db.t\n(".
        head = re.compile(rf"^CREATE TABLE {re.escape(table)}(?=[\s(])")
        statement, renamed = head.subn(f"CREATE TABLE {new}", create, count=1)
        if not renamed:
            raise ValueError(f"unexpected SHOW CREATE TABLE answer for {table}: {create[:80]!r}")
        setting = f"index_granularity = {self.granularity}"
        if _GRANULARITY.search(statement):
            return _GRANULARITY.sub(setting, statement)
        return f"{statement} SETTINGS {setting}"

    def _finish(self, executor: SqlExecutor, db: str, parts: list[str] | None) -> None:
        """Copy what the old table holds beyond ``parts`` (all of it when unknown); drop it."""
        table, _, old = (f"{db}.{name}" for name in self._names())
        where = ""
        if parts is not None:
            if not parts:
                parts = [""]
            where = " WHERE _part NOT IN (" + ", ".join(f"'{part}'" for part in parts) + ")"
        executor.execute(f"INSERT INTO {table} SELECT * FROM {old}{where}")
        executor.execute(f"DROP TABLE {old}")


_GRANULARITY = re.compile(r"index_granularity = (\d+)")


def _granularity(create: str) -> int:
    """The index granularity of a ``SHOW CREATE TABLE`` statement."""
    found = _GRANULARITY.search(create)
    return int(found.group(1)) if found else 8192  # ClickHouse's default


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
            if isinstance(statement, str):
                executor.execute(statement.format(db=db))
            else:
                statement.apply(executor, db)
        executor.execute(
            # INSERT ... SELECT, not VALUES: the native driver waits for a data block after VALUES.
            f"INSERT INTO {db}.schema_migrations (id, applied_at) SELECT '{migration.id}', now()"
        )
        log.info("applied migration", database=db, migration=migration.id)
        applied.append(migration.id)
    return applied
