"""Versioned schema migrations, applied in order, each at most once, safe to re-run.

A migration is a module `migrations/NNNN_name.py` with `STATEMENTS`, SQL templates using
`{db}`. Every statement is idempotent (IF NOT EXISTS), so a crash between a statement and the
bookkeeping insert is harmless: the next run repeats the statement and records it. All SQL must
run on ClickHouse 18.16 (Debian) and on current releases; tests run it on both.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

from pcm_common.clickhouse import migrations as migrations_package
from pcm_common.clickhouse.client import SqlExecutor
from pcm_common.logging import get_logger

log = get_logger(__name__)
_MIGRATION_NAME = re.compile(r"^(\d{4})_\w+$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    id: str
    statements: tuple[str, ...]


def discover() -> list[Migration]:
    """Every migration module of the package, ordered by number."""
    found = []
    for module in pkgutil.iter_modules(migrations_package.__path__):
        if _MIGRATION_NAME.match(module.name):
            loaded = importlib.import_module(f"{migrations_package.__name__}.{module.name}")
            found.append(Migration(module.name, tuple(loaded.STATEMENTS)))
    return sorted(found, key=lambda migration: migration.id)


def applied_ids(executor: SqlExecutor, db: str) -> set[str]:
    return {row[0] for row in executor.execute(f"SELECT DISTINCT id FROM {db}.schema_migrations")}


def migrate(executor: SqlExecutor, db: str) -> list[str]:
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
    for migration in discover():
        if migration.id in done:
            continue
        for statement in migration.statements:
            executor.execute(statement.format(db=db))
        executor.execute(
            # INSERT ... SELECT, not VALUES: the native driver waits for a data block after VALUES.
            f"INSERT INTO {db}.schema_migrations (id, applied_at) SELECT '{migration.id}', now()"
        )
        log.info("applied migration", database=db, migration=migration.id)
        applied.append(migration.id)
    return applied
