"""Connections and pools to the platform's PostgreSQL database (psycopg 3)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

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
) -> ConnectionPool[psycopg.Connection[TupleRow]]:
    """A connection pool, not opened yet: open it when the service starts.

    ``with pool(settings) as p:`` (or ``p.open(wait=True)``) opens it, so that building a service
    never blocks on the database. `timeout_s` bounds the wait for a free connection.
    """
    return ConnectionPool(
        kwargs=connection_kwargs(settings, dbname, application_name),
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        # A pooled connection dies with a server restart: test it before handing it out, so
        # that an outage costs reconnects, not errors in requests after PostgreSQL is back.
        check=ConnectionPool.check_connection,
        name=application_name,
    )
