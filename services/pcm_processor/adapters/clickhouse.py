"""ClickHouse adapter: columnar fact inserts, KPI aggregate queries, KPI row inserts.

clickhouse-driver is blocking, so each call runs in a worker thread: the event loop keeps
fetching the next batch from Kafka while ClickHouse works. One ``ClickHouseStore`` per domain
pipeline; its calls are sequential (the pipeline holds a lock), so one connection suffices.
Every call is retried until it succeeds (see ``retry.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from clickhouse_driver import Client
from pcm_common.domains import Row

from pcm_processor.adapters.kpi_sql import TOUCHED, TOUCHED_STRUCTURE, Touched
from pcm_processor.adapters.retry import retry_forever
from pcm_processor.domain.kpis import KpiRow
from pcm_processor.metrics import PROCESSOR_INSERT_SECONDS, PROCESSOR_QUERY_ROWS_READ

_T = TypeVar("_T")

KPI_COLUMNS = (
    "entity_id",
    "kpi_code",
    "grain",
    "period_start",
    "channel",
    "service_id",
    "value",
    "numerator",
    "denominator",
    "computed_at",
    "version",
    "insufficient_sample",
    "catalogue_version",
)


def columnar(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows to one list per column (lists: the driver converts some columns in place)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


class ClickHouseStore:
    def __init__(
        self,
        connect: Callable[[], Client],
        database: str,
        max_backoff_s: float,
        catalogue_version: str = "",
    ) -> None:
        self._connect = connect
        self.database = database
        self.catalogue_version = catalogue_version
        """Versions of the catalogue files the KPIs are computed under (stored with each)."""
        self._max_backoff_s = max_backoff_s
        self._client: Client | None = None

    def _execute(self, sql: str, data: Any = None, **options: Any) -> Any:
        """Runs in a worker thread; a failed connection is dropped so the retry reconnects."""
        if self._client is None:
            self._client = self._connect()
        try:
            if data is None:
                return self._client.execute(sql, **options)
            return self._client.execute(sql, data, **options)
        except Exception:
            client, self._client = self._client, None
            # The connection is broken already; the retry reports the original error.
            with contextlib.suppress(Exception):
                client.disconnect()
            raise

    async def _call(self, what: str, sql: str, data: Any = None, **options: Any) -> Any:
        return await self._retried(what, lambda: self._execute(sql, data, **options))

    async def _retried(self, what: str, work: Callable[[], _T]) -> _T:
        """``work`` in a worker thread, retried with backoff while ClickHouse is down."""
        return await retry_forever(what, lambda: asyncio.to_thread(work), self._max_backoff_s)

    async def insert_columns(
        self, table: str, columns: Sequence[str], data: list[list[Any]]
    ) -> None:
        sql = f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES"
        started = time.perf_counter()
        await self._call(f"insert {table}", sql, data, columnar=True, types_check=False)
        PROCESSOR_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)

    async def insert_facts(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        await self.insert_columns(table, columns, columnar(rows, len(columns)))

    async def query(self, what: str, sql: str, touched: Touched = ()) -> list[tuple[Any, ...]]:
        """Rows of a SELECT; ``touched``: the rows of its ``TOUCHED`` external table."""
        options: dict[str, Any] = {}
        if touched:
            table = {"name": TOUCHED, "structure": list(TOUCHED_STRUCTURE), "data": touched}
            options = {"external_tables": [table], "types_check": False}
        rows, rows_read = await self._retried(what, lambda: self._select(sql, **options))
        PROCESSOR_QUERY_ROWS_READ.labels(what.split()[0]).observe(rows_read)
        return rows

    def _select(self, sql: str, **options: Any) -> tuple[list[tuple[Any, ...]], int]:
        """The rows, and how many rows the server read for them (in this worker thread, the
        client's last query is this one)."""
        rows = self._execute(sql, **options)
        last = self._client.last_query if self._client is not None else None
        return rows, (last.progress.rows if last is not None else 0)

    async def insert_kpis(
        self, rows: Sequence[KpiRow], versions: Sequence[int], computed_at: int
    ) -> None:
        # A KpiRow's first nine fields are the first nine columns, in order: take them as
        # columns at once rather than building a tuple per row (tens of thousands a second).
        fields = columnar(rows, len(KpiRow._fields))
        count = len(rows)
        data = [
            *fields[:9],
            [computed_at] * count,
            list(versions),
            [int(flag) for flag in fields[KpiRow._fields.index("insufficient_sample")]],
            [self.catalogue_version] * count,
        ]
        await self.insert_columns("kpi_values", KPI_COLUMNS, data)

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None
