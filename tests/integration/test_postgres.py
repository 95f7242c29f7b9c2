"""The PostgreSQL library on the local stack's server: connections, pools and migrations.

Each test migrates its own empty database (created by the pcm role, which has CREATEDB); the
module drops them all at the end. The migration groups are throwaway packages under
tests/pg_migrations_fixture/.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pcm_common.migrations import MigrationGroup
from pcm_common.postgres.client import connect, pool
from pcm_common.postgres.migrate import applied_ids, migrate
from pcm_common.settings import Settings
from psycopg import sql
from pydantic import SecretStr

pytestmark = pytest.mark.integration

# The `stack` fixture (tests/conftest.py) is a LocalStack; conftest modules are not importable.
LocalStack = Any
NewDatabase = Callable[[], str]

EXAMPLE = MigrationGroup("example", "tests.pg_migrations_fixture.example.migrations")
BROKEN = MigrationGroup("broken", "tests.pg_migrations_fixture.broken.migrations")
EXAMPLE_IDS = ["example/0001_example", "example/0002_seed"]


@pytest.fixture(scope="module")
def pg_settings(stack: LocalStack) -> Settings:
    return Settings(
        postgres_port=stack.postgres_port, postgres_password_file=stack.postgres_password_file
    )


@pytest.fixture(scope="module")
def new_database(pg_settings: Settings) -> Iterator[NewDatabase]:
    """Makes empty databases with unique names; drops every one of them at the end."""
    run = uuid.uuid4().hex[:8]
    made: list[str] = []

    def make() -> str:
        name = f"pcm_test_{run}_{len(made)}"
        with connect(pg_settings, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return name

    yield make
    with connect(pg_settings, autocommit=True) as admin:
        for name in made:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def seed_rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    with conn.transaction():
        return conn.execute("SELECT name FROM example_items").fetchall()


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    with conn.transaction():
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


# --- migrations ------------------------------------------------------------------------------


def test_migrations_apply_once_then_nothing(
    pg_settings: Settings, new_database: NewDatabase
) -> None:
    with connect(pg_settings, dbname=new_database()) as conn:
        assert applied_ids(conn) == set()
        assert migrate(conn, [EXAMPLE]) == EXAMPLE_IDS
        assert migrate(conn, [EXAMPLE]) == []
        assert applied_ids(conn) == set(EXAMPLE_IDS)
        assert seed_rows(conn) == [("seed",)]


def test_concurrent_runs_apply_each_migration_exactly_once(
    pg_settings: Settings, new_database: NewDatabase
) -> None:
    database = new_database()
    start = threading.Barrier(2)

    def run() -> list[str]:
        with connect(pg_settings, dbname=database) as conn:
            start.wait(timeout=10)  # both connected: the two runs really overlap
            return migrate(conn, [EXAMPLE])

    with ThreadPoolExecutor(2) as threads:
        first, second = (f.result(timeout=60) for f in [threads.submit(run) for _ in range(2)])
    # Between them, every migration once (0002 is not idempotent: twice would fail or double).
    assert sorted(first + second) == EXAMPLE_IDS
    with connect(pg_settings, dbname=database) as conn:
        assert applied_ids(conn) == set(EXAMPLE_IDS)
        assert seed_rows(conn) == [("seed",)]


def test_a_failing_statement_rolls_back_its_ddl_and_bookkeeping(
    pg_settings: Settings, new_database: NewDatabase
) -> None:
    with connect(pg_settings, dbname=new_database(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            migrate(conn, [EXAMPLE, BROKEN])
        # The migrations before it stay committed; the failed one left no table and no record.
        assert applied_ids(conn) == set(EXAMPLE_IDS)
        assert not table_exists(conn, "half_done")
        # It is still pending: the next run tries it again, and nothing else.
        with pytest.raises(psycopg.errors.UniqueViolation):
            migrate(conn, [EXAMPLE, BROKEN])
        assert applied_ids(conn) == set(EXAMPLE_IDS)
        assert seed_rows(conn) == [("seed",)]


def test_migrate_refuses_a_connection_inside_a_transaction(
    pg_settings: Settings, new_database: NewDatabase
) -> None:
    with connect(pg_settings, dbname=new_database()) as conn:
        conn.execute("SELECT 1")  # opens a transaction (autocommit is off)
        with pytest.raises(ValueError, match="outside any transaction"):
            migrate(conn, [EXAMPLE])
        conn.rollback()
        assert not table_exists(conn, "schema_migrations")


def test_bookkeeping_table_name_is_configurable(
    pg_settings: Settings, new_database: NewDatabase
) -> None:
    with connect(pg_settings, dbname=new_database()) as conn:
        assert migrate(conn, [EXAMPLE], schema_table="intake_migrations") == EXAMPLE_IDS
        assert applied_ids(conn, "intake_migrations") == set(EXAMPLE_IDS)
        assert applied_ids(conn) == set()


# --- connections and pools -------------------------------------------------------------------


def test_connect_logs_in_as_pcm_with_the_stack_password(pg_settings: Settings) -> None:
    with connect(pg_settings, application_name="pcm-test") as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), current_setting('application_name')"
        ).fetchone()
    assert row == ("pcm", "pcm", "pcm-test")


def test_a_wrong_password_is_refused(pg_settings: Settings) -> None:
    wrong = pg_settings.model_copy(update={"postgres_password": SecretStr("not-the-password")})
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(wrong)


def test_pool_opens_when_asked_and_survives_a_server_restart(
    stack: LocalStack, pg_settings: Settings
) -> None:
    connections = pool(pg_settings, min_size=1, max_size=2, timeout_s=10)
    assert connections.closed  # building it touched nothing
    with connections:
        with connections.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        stack.stop("postgres")
        try:
            assert stack.unreachable() == ["postgres"]
        finally:
            stack.start("postgres")
        # The pooled connection died with the server: the pool replaces it instead of failing.
        with connections.connection() as conn:
            assert conn.execute("SELECT 2").fetchone() == (2,)


# --- settings --------------------------------------------------------------------------------


def test_password_setting_wins_over_the_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "postgres_password"
    secret.write_text("from-file\n")  # a trailing newline is not part of the password
    # postgres_password="" explicitly: the test must not depend on PCM_POSTGRES_PASSWORD.
    from_file = Settings(postgres_password=SecretStr(""), postgres_password_file=secret)
    assert from_file.postgres_password_value().get_secret_value() == "from-file"
    explicit = Settings(postgres_password=SecretStr("from-env"), postgres_password_file=secret)
    assert explicit.postgres_password_value().get_secret_value() == "from-env"
    for absent in (tmp_path / "absent", None):
        missing = Settings(postgres_password=SecretStr(""), postgres_password_file=absent)
        assert missing.postgres_password_value().get_secret_value() == ""
