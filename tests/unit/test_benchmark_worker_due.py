"""Which months the benchmark worker reassesses: a KPI write it may have half read is read again."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.worker import KpisRead, Refresher
from pcm_common.catalogues import Catalogues

OCTOBER = dt.date(2026, 10, 1)
OCTOBER_START_UTC = dt.datetime(2026, 10, 1, 5, 0)  # midnight in Lima
WRITTEN = dt.datetime(2026, 10, 20, 12, 0, 0)  # kpi_values.computed_at, naive UTC


class KpiValuesStub:
    """Answers the worker's one query: each month's newest ``computed_at``."""

    def __init__(self) -> None:
        self.newest = WRITTEN

    def execute(self, _sql: str, _params: Any = None) -> list[tuple[dt.datetime, dt.datetime]]:
        return [(OCTOBER_START_UTC, self.newest)]


def refresher(catalogues: Catalogues, clock: list[float]) -> Refresher:
    return Refresher(
        BenchmarkSettings(benchmark_full_refresh_s=3600),
        catalogues,
        lambda _: [],
        producer=None,  # type: ignore[arg-type]  # due() publishes nothing
        today=lambda: dt.date(2026, 10, 20),
        monotonic=lambda: 0.0,
        wall=lambda: clock[0],
    )


def kpi_months(worker: Refresher, client: KpiValuesStub) -> tuple[set[dt.date], KpisRead]:
    """The months due because of their KPIs, and what was read of October's."""
    months, written = worker.due(client)  # type: ignore[arg-type]
    return {month for month, reason in months.items() if reason == "kpis"}, written[OCTOBER]


def test_a_write_read_in_its_own_second_is_read_again_once(catalogues: Catalogues) -> None:
    clock = [WRITTEN.replace(tzinfo=dt.UTC).timestamp() + 0.4]  # same second as the write
    worker, client = refresher(catalogues, clock), KpiValuesStub()
    due, read = kpi_months(worker, client)
    assert due == {OCTOBER}
    worker.assessed(OCTOBER, read)
    clock[0] += 1.0
    # Rows of that second may have landed after the read: once more, from a later second.
    due, read = kpi_months(worker, client)
    assert due == {OCTOBER}
    worker.assessed(OCTOBER, read)
    clock[0] += 1.0
    assert kpi_months(worker, client)[0] == set()


def test_a_write_read_seconds_later_is_not_read_again(catalogues: Catalogues) -> None:
    clock = [WRITTEN.replace(tzinfo=dt.UTC).timestamp() + 3]
    worker, client = refresher(catalogues, clock), KpiValuesStub()
    due, read = kpi_months(worker, client)
    assert due == {OCTOBER}
    worker.assessed(OCTOBER, read)
    clock[0] += 1.0
    assert kpi_months(worker, client)[0] == set()
    client.newest = WRITTEN + dt.timedelta(seconds=2)  # the processor writes again
    assert kpi_months(worker, client)[0] == {OCTOBER}
