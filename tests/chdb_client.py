"""A clickhouse-driver-shaped client over chdb, for code that takes a ``Client`` (the benchmark's
reads and writes): parameters are substituted with the driver's own escaping and an INSERT's rows
become a VALUES list, so the very SQL the service sends to the 18.16 server runs on a current
ClickHouse engine too. Dates and times come back as Python objects, as from the driver."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver.util.escape import escape_param

from tests.chdb_executor import ChdbExecutor


def _typed(column_type: str, value: Any) -> Any:
    """A JSON value as the driver would give it: dates and times as Python objects."""
    inner = column_type.removeprefix("Nullable(").removesuffix(")")
    if value is None:
        return None
    if inner == "Date":
        return dt.date.fromisoformat(value)
    if inner.startswith("DateTime"):
        return dt.datetime.fromisoformat(value)
    return value


class ChdbClient:
    def __init__(self, executor: ChdbExecutor) -> None:
        self._executor = executor
        driver = Client("localhost")  # never connects: only its parameter escaping is used
        self._context = driver.connection.context
        self._context.server_info = SimpleNamespace(get_timezone=lambda: "UTC")
        self._driver = driver

    def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        if query.rstrip().upper().endswith("VALUES"):
            return self._insert(query, params or [])
        if isinstance(params, Mapping):
            query = self._driver.substitute_params(query, params, self._context)
        types, rows = self._executor.query(query)
        return [tuple(_typed(t, v) for t, v in zip(types, row, strict=True)) for row in rows]

    def _insert(self, query: str, rows: Iterable[Any]) -> list[tuple[Any, ...]]:
        values = []
        for row in rows:
            items = row.values() if isinstance(row, Mapping) else row
            values.append("(" + ", ".join(self._literal(v) for v in items) + ")")
        if values:
            self._executor.execute(f"{query} {', '.join(values)}")
        return []

    def _literal(self, value: Any) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(escape_param(value, self._context))

    def disconnect(self) -> None:
        pass
