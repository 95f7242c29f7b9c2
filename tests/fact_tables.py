"""The fact tables of the domain registry and what a ClickHouse server says their columns are."""

from __future__ import annotations

from pcm_common.clickhouse.client import SqlExecutor
from pcm_common.domains import EVENT_DOMAINS, FactTable


def fact_tables() -> list[FactTable]:
    return [domain.facts for domain in EVENT_DOMAINS if domain.facts is not None]


def described(executor: SqlExecutor, database: str, table: str) -> list[tuple[str, str]]:
    """(name, type) of every column, in table order."""
    rows = executor.execute(
        "SELECT name, type FROM system.columns "
        f"WHERE database = '{database}' AND table = '{table}' ORDER BY position"
    )
    return [(str(name), str(type_)) for name, type_ in rows]
