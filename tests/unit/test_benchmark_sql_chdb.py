"""The benchmark's ClickHouse SQL (writes, reads, the evidence read) on a current engine (chdb);
the integration tests run the same statements on the 18.16 server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pcm_benchmark import reads
from pcm_benchmark.assessment import Evidence
from pcm_benchmark.distributions import peer_distributions
from pcm_benchmark.evidence import month_kpis
from pcm_benchmark.national import OVERALL, benchmark
from pcm_benchmark.store import write_distributions, write_results
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.migrate import migrate
from pcm_testkit.kpis import kpi_value_row

from tests.chdb_client import ChdbClient
from tests.chdb_executor import ChdbExecutor

DB = "pcm_bench_sql"
OCTOBER = dt.date(2026, 10, 1)
START = dt.datetime(2026, 10, 1, tzinfo=ZoneInfo("America/Lima"))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    executor = ChdbExecutor(tmp_path_factory.mktemp("chdb"))
    migrate(executor, DB)
    yield ChdbClient(executor)
    executor.close()


def test_assessment_written_and_read_back(client: Any, catalogues: Catalogues) -> None:
    rows = [
        kpi_value_row("RENIEC", "SERVED_WITHIN_TARGET_PCT", START, 95),
        kpi_value_row("RENIEC", "ABANDONMENT_PCT", START, 4),
        kpi_value_row("SUNARP", "SERVED_WITHIN_TARGET_PCT", START, 70),
        kpi_value_row("SUNARP", "SERVED_WITHIN_TARGET_PCT", START, 75, version=2),
    ]
    client.execute(f"INSERT INTO {DB}.kpi_values VALUES", rows)
    kpis = month_kpis(client, DB, OCTOBER)
    assert kpis["SUNARP"]["SERVED_WITHIN_TARGET_PCT"].value == 75  # the newest version
    evidence = {entity: Evidence(values, {}) for entity, values in kpis.items()}
    results = benchmark(catalogues, evidence, dt.date(2026, 10, 31))
    now = dt.datetime(2026, 11, 1, 12, 0)
    write_results(client, DB, "MONTH", OCTOBER, results, now)
    version = catalogues.versions["standards"]
    found = peer_distributions(catalogues, results, kpis)
    write_distributions(client, DB, "MONTH", OCTOBER, version, found, now)

    assert reads.newest_version(client, DB, "MONTH", OCTOBER) == version
    assert len(reads.periods(client, DB)) == 1
    overall = reads.results(client, DB, "MONTH", OCTOBER, standard=OVERALL)
    assert len(overall) == len(catalogues.entities)
    punctual = reads.results(client, DB, "MONTH", OCTOBER, standard="PUNTUALIDAD")
    assert [r.entity_id for r in punctual[:2]] == ["RENIEC", "SUNARP"]
    # RENIEC 95 % within target, abandonment 4 %: INTERMEDIO (AVANZADO needs the survey).
    assert (punctual[0].level, punctual[1].level) == ("INTERMEDIO", "BASICO")
    assert punctual[1].gaps[0] == "E07-I1: SERVED_WITHIN_TARGET_PCT >= 80 (now 75)"
    evidence_rows = reads.criteria(client, DB, "MONTH", OCTOBER, version, "SUNARP")
    assert {c.criterion_id for c in evidence_rows} >= {"E07-B1", "E07-I1"}
    counts = reads.level_counts(
        client, DB, "MONTH", OCTOBER, peer_group="ORGANISMO_NACIONAL_ALTA_DEMANDA"
    )
    assert sum(counts["PUNTUALIDAD"].values()) == sum(
        e.peer_group == "ORGANISMO_NACIONAL_ALTA_DEMANDA" for e in catalogues.entities
    )
    assert reads.level_counts(client, DB, "MONTH", OCTOBER, entity_ids=["RENIEC"])[OVERALL]
    national = {
        d.measure: d
        for d in reads.distributions(client, DB, "MONTH", OCTOBER, version, peer_group="")
    }
    assert national["SERVED_WITHIN_TARGET_PCT"].count == 2
    (trend,) = [
        t for t in reads.trends(client, DB, "MONTH", OCTOBER, "RENIEC") if t.standard == OVERALL
    ]
    assert trend.previous is None and trend.year_before is None
