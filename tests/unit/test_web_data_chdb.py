"""The dashboard's own reads on a current engine (chdb); the browser tests run them on the 18.16
server: the assessed periods of every grain, in the selector's order, at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from pcm_benchmark.assessment import Evidence
from pcm_benchmark.national import benchmark
from pcm_benchmark.store import write_results
from pcm_benchmark.web.data import Reader
from pcm_benchmark.web.periods import Period
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.migrate import migrate

from tests.chdb_client import ChdbClient
from tests.chdb_executor import ChdbExecutor

DB = "pcm_web_sql"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    executor = ChdbExecutor(tmp_path_factory.mktemp("chdb"))
    migrate(executor, DB)
    yield ChdbClient(executor)
    executor.close()


def test_every_grains_assessed_periods_months_first_newest_first(
    client: Any, catalogues: Catalogues
) -> None:
    results = benchmark(catalogues, {"RENIEC": Evidence({}, {})}, dt.date(2026, 10, 31))
    now = dt.datetime(2026, 11, 1, 12, 0)
    assessed = [
        Period("YEAR", dt.date(2026, 1, 1)),
        Period("QUARTER", dt.date(2026, 7, 1)),
        Period("MONTH", dt.date(2026, 9, 1)),
        Period("QUARTER", dt.date(2026, 10, 1)),
        Period("MONTH", dt.date(2026, 10, 1)),
    ]
    for period in assessed:
        write_results(client, DB, period.grain, period.start, results, now)
    reader = Reader(lambda: client, DB, "America/Lima")
    assert [p.value for p in reader.periods()] == [
        "2026-10",
        "2026-09",
        "2026-T4",
        "2026-T3",
        "2026",
    ]
