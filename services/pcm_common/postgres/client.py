"""Connections and pools to the platform's PostgreSQL database (psycopg 3)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from pcm_common.settings import Settings

CONNECT_TIMEOUT_S = 5
DEFAULT_APPLICATION_NAME = "pcm"


def connection_kwargs(
    settings: Settings, dbname: str | None = None, application_name: str = DEFAULT_APPLICATION_NAME
) -> dict[str, Any]:
    """libpq parameters for `settings`; `dbname` overrides the configured database."""
    kwargs: dict[str, Any] = {
        "host": settings.postgres_host,
        "port": settings.postgres_port,
        "user": settings.postgres_user,
        "dbname": dbname or settings.postgres_database,
        "connect_timeout": CONNECT_TIMEOUT_S,
        # Names the service in pg_stat_activity and in the server's log lines.
        "application_name": application_name,
    }
    password = settings.postgres_password_value().get_secret_value()
    if password:
        kwargs["password"] = password
    return kwargs


def connect(
    settings: Settings,
    dbname: str | None = None,
    autocommit: bool = False,
    *,
    application_name: str = DEFAULT_APPLICATION_NAME,
) -> psycopg.Connection[TupleRow]:
    """One connection; the caller closes it (``with connect(...) as conn:``)."""
    return psycopg.connect(
        autocommit=autocommit, **connection_kwargs(settings, dbname, application_name)
    )


def pool(
    settings: Settings,
    *,
    dbname: str | None = None,
    min_size: int = 1,
    max_size: int = 4,
    timeout_s: float = 30.0,
    application_name: str = DEFAULT_APPLICATION_NAME,
    check_on_checkout: bool = True,
    server_options: str | None = None,
) -> ConnectionPool[psycopg.Connection[TupleRow]]:
    """A connection pool, not opened yet: open it when the service starts.

    ``with pool(settings) as p:`` (or ``p.open(wait=True)``) opens it, so that building a service
    never blocks on the database. `timeout_s` bounds the wait for a free connection.
    ``check_on_checkout=False`` saves a round trip per use on hot paths that retry a failed
    statement themselves; ``server_options`` are session settings (libpq ``options``, e.g.
    ``-c synchronous_commit=off``).
    """
    kwargs = connection_kwargs(settings, dbname, application_name)
    if server_options:
        kwargs["options"] = server_options
    return ConnectionPool(
        kwargs=kwargs,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        # A pooled connection dies with a server restart: test it before handing it out, so
        # that an outage costs reconnects, not errors in requests after PostgreSQL is back.
        check=ConnectionPool.check_connection if check_on_checkout else None,
        name=application_name,
    )


def create_database(settings: Settings, replace: bool = False) -> None:
    """Create ``settings.postgres_database`` (dropped first with ``replace``): test runs and the
    demo get a database of their own. Needs a role with CREATEDB (the local stack's has it)."""
    if replace:
        drop_database(settings)
    with connect(settings, dbname="postgres", autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.postgres_database))
        )


# An autovacuum worker on the database is a backend our role may not terminate: FORCE then fails
# with InsufficientPrivilege until the worker is done (a second at most on a test database).
_DROP_RETRY = Retrying(
    retry=retry_if_exception_type(psycopg.errors.InsufficientPrivilege),
    wait=wait_fixed(0.2),
    stop=stop_after_delay(30),
    reraise=True,
)


def drop_database(settings: Settings) -> None:
    """Drop ``settings.postgres_database``, ending the sessions still connected to it."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(settings.postgres_database)
    )
    for attempt in _DROP_RETRY.copy():
        with attempt, connect(settings, dbname="postgres", autocommit=True) as admin:
            admin.execute(drop)


def open_pool(
    settings: Settings, max_size: int, application_name: str
) -> ConnectionPool[psycopg.Connection[TupleRow]]:
    """A pool opening in the background: a service starts (and answers UNAVAILABLE) while its
    database is still coming up."""
    opened = pool(settings, max_size=max_size, application_name=application_name)
    opened.open(wait=False)
    return opened
