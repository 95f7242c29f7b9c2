"""PostgreSQL schema migrations: applied group by group, in order, each exactly once.

The groups (one per owner of tables, see ``pcm_common.migrations``) are declared here as data.
Unlike ClickHouse, PostgreSQL DDL is transactional: each migration's statements and its
bookkeeping row commit together or not at all, so a migration needs no idempotent statements
(and may not use what cannot run in a transaction, such as CREATE INDEX CONCURRENTLY).

Every transaction first takes an advisory lock, so replicas that migrate at the same time (two
pods starting, the Helm hook and a pod) run one after the other and each migration once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from pcm_common.logging import get_logger
from pcm_common.migrations import Migration, MigrationGroup, discover_all

log = get_logger(__name__)

POSTGRES_GROUPS: tuple[MigrationGroup, ...] = (
    # Published catalogue versions (pcm_common.catalogues.registry).
    MigrationGroup("catalogues", "pcm_common.catalogues.migrations"),
    # The event-id ledger of every push service (pcm_common.push).
    MigrationGroup("push", "pcm_common.push.migrations"),
    # The complaint book: records, transitions, outbox (pcm_complaints).
    MigrationGroup("complaints", "pcm_complaints.migrations"),
    # The indicator book: reported values with their history, outbox (pcm_indicators).
    MigrationGroup("indicators", "pcm_indicators.migrations"),
    # The survey book: collections, responses (free text for the entity only), outboxes.
    MigrationGroup("surveys", "pcm_surveys.migrations"),
    # The improvement plans (PDCA) and their history (pcm_benchmark).
    MigrationGroup("benchmark", "pcm_benchmark.pg_migrations"),
)
DEFAULT_SCHEMA_TABLE = "public.schema_migrations"

Connection = psycopg.Connection[TupleRow]


def discover(groups: Sequence[MigrationGroup] = POSTGRES_GROUPS) -> list[Migration]:
    return discover_all(groups)


def _table(schema_table: str) -> sql.Identifier:
    """``schema.table`` (or ``table``) as a quoted identifier."""
    parts = schema_table.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"{schema_table!r} is not [schema.]table")
    return sql.Identifier(*parts)


def _lock_key(schema_table: str) -> int:
    """A fixed 64-bit advisory lock key per bookkeeping table (same in every process)."""
    digest = hashlib.sha256(f"pcm-migrate:{schema_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _locked_transaction(conn: Connection, schema_table: str) -> Iterator[None]:
    """A transaction holding the migration lock; the lock goes with the commit or rollback."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema_table),))
        yield


def _require_idle(conn: Connection) -> None:
    # Inside an open transaction, conn.transaction() would only make savepoints: nothing would
    # commit and the lock would outlive this call.
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError("migrate() needs a connection outside any transaction")


def applied_ids(conn: Connection, schema_table: str = DEFAULT_SCHEMA_TABLE) -> set[str]:
    """Ids recorded in the bookkeeping table; empty when it does not exist yet."""
    with conn.transaction():
        # The quoted name, exactly as migrate() creates the table.
        name = _table(schema_table).as_string(conn)
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        if row is None or not row[0]:
            return set()
        query = sql.SQL("SELECT id FROM {}").format(_table(schema_table))
        return {str(id_) for (id_,) in conn.execute(query)}


def _is_recorded(conn: Connection, schema_table: str, migration_id: str) -> bool:
    query = sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(_table(schema_table))
    return conn.execute(query, (migration_id,)).fetchone() is not None


def _apply(conn: Connection, schema_table: str, migration: Migration) -> bool:
    """Apply and record `migration` in one transaction; False if another run already had."""
    with _locked_transaction(conn, schema_table):
        if _is_recorded(conn, schema_table, migration.id):
            return False
        for statement in migration.statements:
            conn.execute(statement)
        record = sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(_table(schema_table))
        conn.execute(record, (migration.id,))
    return True


def migrate(
    conn: Connection,
    groups: Sequence[MigrationGroup] = POSTGRES_GROUPS,
    schema_table: str = DEFAULT_SCHEMA_TABLE,
) -> list[str]:
    """Apply the migrations the database lacks; return the ids applied by this call.

    A failing statement rolls back its migration (DDL and bookkeeping) and raises; migrations
    applied before it stay committed, and the next run resumes at the failed one.
    """
    _require_idle(conn)
    migrations = discover(groups)  # an import error fails before touching the database
    with _locked_transaction(conn, schema_table):
        # Under the lock: two concurrent CREATE TABLE IF NOT EXISTS can still collide.
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} "
                "(id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(_table(schema_table))
        )
    applied = []
    for migration in migrations:
        if _apply(conn, schema_table, migration):
            log.info("applied migration", database=conn.info.dbname, migration=migration.id)
            applied.append(migration.id)
    return applied
