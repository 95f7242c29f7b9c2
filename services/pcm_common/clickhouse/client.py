"""Connections to ClickHouse (native protocol) built from Settings."""

from __future__ import annotations

from typing import Any, Protocol

from clickhouse_driver import Client

from pcm_common.settings import Settings


class SqlExecutor(Protocol):
    """What migrations need from a ClickHouse connection; also met by the chdb test adapter."""

    def execute(self, sql: str) -> list[tuple[Any, ...]]: ...


def connect(settings: Settings, database: str | None = None) -> Client:
    """A client bound to the platform database (or `database`, e.g. "default" to create it)."""
    return Client(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database=database or settings.clickhouse_database,
        connect_timeout=5,
        send_receive_timeout=60,
        # The processor's queries list the tickets a batch touched: more than the 256 KiB of
        # SQL and the 50,000 syntax-tree nodes ClickHouse accepts by default.
        settings={
            "max_query_size": 16 * 1024 * 1024,
            "max_ast_elements": 4_000_000,
            "max_expanded_ast_elements": 4_000_000,
        },
    )
