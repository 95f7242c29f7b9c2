"""The national benchmark on the real ClickHouse (18.16): KPIs as the processor stores them and
reported values as the indicators service lists them, assessed, ranked and written."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import common_pb2, indicator_pb2
from pcm_benchmark import reads
from pcm_benchmark.job import assess_month, assess_period
from pcm_benchmark.settings import BenchmarkSettings
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_testkit.isolation import isolated
from pcm_testkit.kpis import kpi_value_row

pytestmark = pytest.mark.integration

LIMA = ZoneInfo("America/Lima")
OCTOBER = dt.date(2026, 10, 1)


def kpi_row(entity: str, code: str, value: float, channel: str = "") -> dict[str, object]:
    start = dt.datetime.combine(OCTOBER, dt.time(), LIMA)
    return kpi_value_row(entity, code, start, value, channel=channel)


def report(code: str, value: float, status: int) -> indicator_pb2.IndicatorValue:
    start = int(dt.datetime.combine(dt.date(2026, 1, 1), dt.time(), LIMA).timestamp())
    return indicator_pb2.IndicatorValue(
        indicator_code=code,
        value=value,
        grain=common_pb2.GRAIN_YEAR,
        period_start=Timestamp(seconds=start),
        status=status,
    )


def test_a_month_assessed_ranked_and_written(catalogues: Catalogues) -> None:
    with isolated("bench") as shared:
        settings = BenchmarkSettings(**shared.model_dump())
        client = connect(settings, database="default")
        migrate(client, settings.clickhouse_database)
        rows = [
            kpi_row("RENIEC", "SERVED_WITHIN_TARGET_PCT", 95),
            kpi_row("RENIEC", "ABANDONMENT_PCT", 4),
            kpi_row("RENIEC", "SATISFACTION_PCT_TIEMPO", 80),
            kpi_row("SUNARP", "SERVED_WITHIN_TARGET_PCT", 85),
            kpi_row("SUNARP", "ABANDONMENT_PCT", 4),
            # A slice's value is no entity-level evidence.
            kpi_row("SUNAT", "SERVED_WITHIN_TARGET_PCT", 99, channel="VIRTUAL"),
        ]
        client.execute(f"INSERT INTO {settings.clickhouse_database}.kpi_values VALUES", rows)
        reports = {
            "RENIEC": [
                report("RESPONSIBLE_UNIT_DESIGNATED", 1, indicator_pb2.INDICATOR_STATUS_VERIFIED)
            ],
            "SUNARP": [
                report("RESPONSIBLE_UNIT_DESIGNATED", 1, indicator_pb2.INDICATOR_STATUS_REJECTED)
            ],
        }

        def listed(entity_id: str) -> Iterable[indicator_pb2.IndicatorValue]:
            return reports.get(entity_id, [])

        assess_month(settings, catalogues, OCTOBER, listed)
        stored = {
            (standard, entity): rest
            for standard, entity, *rest in client.execute(
                "SELECT standard, entity_id, level, peer_rank, peer_count, national_rank, "
                "no_evidence, gaps FROM "
                f"{settings.clickhouse_database}.benchmark_results FINAL "
                "WHERE grain = 'MONTH' AND period_start = %(month)s",
                {"month": OCTOBER},
            )
        }
        peers = sum(e.peer_group == "ORGANISMO_NACIONAL_ALTA_DEMANDA" for e in catalogues.entities)
        assert stored[("PUNTUALIDAD", "RENIEC")][:3] == ["AVANZADO", 1, peers]
        assert stored[("PUNTUALIDAD", "SUNARP")][:2] == ["INTERMEDIO", 2]
        sunat = stored[("PUNTUALIDAD", "SUNAT")]
        assert sunat[0] == "NONE" and sunat[4] == 6  # the slice counted for nothing
        assert sunat[5][0].startswith("E07-B1: SERVED_WITHIN_TARGET_PCT >= 60")
        # A verified report reaches BASICO; a rejected one is no evidence.
        assert stored[("ORGANIZACION_INTERNA", "RENIEC")][0] == "BASICO"
        assert stored[("ORGANIZACION_INTERNA", "SUNARP")][0] == "NONE"
        assert len(stored) == len(catalogues.entities) * (len(catalogues.standards) + 1)
        # Peer distributions: of the entity-level KPI values (the slice counts for nothing) and
        # of the scores, nationally ('') and per peer group; nobody's name in them.
        version = catalogues.versions["standards"]
        found = {
            (d.peer_group, d.measure): d
            for d in reads.distributions(
                client, settings.clickhouse_database, "MONTH", OCTOBER, version
            )
        }
        within = found[("", "SERVED_WITHIN_TARGET_PCT")]
        assert (within.count, within.p50, within.mean) == (2, 85.0, 90.0)
        assert found[("ORGANISMO_NACIONAL_ALTA_DEMANDA", "PUNTUALIDAD")].count == peers
        assert found[("", "OVERALL")].count == len(catalogues.entities)


def test_a_new_catalogue_version_is_assessed_beside_the_old(
    catalogues: Catalogues, tmp_path: Path
) -> None:
    """The same month under the shipped standards and under a stricter new version: both kept,
    each read by its version, the newest by default."""
    directory = tmp_path / "catalogues"
    shutil.copytree(catalogues.directory, directory)
    standards = directory / "standards.yaml"
    old = catalogues.versions["standards"]
    text = standards.read_text().replace(f'version: "{old}"', 'version: "2099.1"', 1)
    # E07-B1: SERVED_WITHIN_TARGET_PCT >= 60 becomes >= 90.
    rule = 'kpi: SERVED_WITHIN_TARGET_PCT\n          op: ">="\n          threshold: 60\n'
    assert rule in text
    standards.write_text(text.replace(rule, rule.replace("60", "90"), 1))
    stricter = load_catalogues(directory)
    with isolated("bench") as shared:
        settings = BenchmarkSettings(**shared.model_dump())
        client = connect(settings, database="default")
        migrate(client, settings.clickhouse_database)
        rows = [kpi_row("RENIEC", "SERVED_WITHIN_TARGET_PCT", 85)]
        client.execute(f"INSERT INTO {settings.clickhouse_database}.kpi_values VALUES", rows)
        assess_month(settings, catalogues, OCTOBER, lambda _: [])
        assess_month(settings, stricter, OCTOBER, lambda _: [])
        db = settings.clickhouse_database

        def level(version: str | None) -> str:
            (found,) = reads.results(
                client,
                db,
                "MONTH",
                OCTOBER,
                version=version,
                standard="PUNTUALIDAD",
                entity_id="RENIEC",
            )
            return found.level

        assert level(old) == "BASICO"
        assert level("2099.1") == "NONE"
        assert reads.newest_version(client, db, "MONTH", OCTOBER) == "2099.1"
        assert level(None) == "NONE"


def test_a_quarter_and_a_year_assessed_on_their_months(catalogues: Catalogues) -> None:
    """A quarter's ratio is Σ numerators / Σ denominators of its months (not the mean of the
    monthly percentages); its snapshot KPI is its last month's; results kept per grain."""
    with isolated("bench") as shared:
        settings = BenchmarkSettings(**shared.model_dump())
        client = connect(settings, database="default")
        db = settings.clickhouse_database
        migrate(client, db)

        def month_row(month: int, code: str, value: float, denominator: float) -> dict[str, object]:
            start = dt.datetime.combine(dt.date(2026, month, 1), dt.time(), LIMA)
            return kpi_value_row("RENIEC", code, start, value, denominator=denominator)

        rows = [
            month_row(7, "SERVED_WITHIN_TARGET_PCT", 40, 100),  # 40 of 100
            month_row(8, "SERVED_WITHIN_TARGET_PCT", 90, 300),  # 270 of 300
            month_row(10, "SERVED_WITHIN_TARGET_PCT", 100, 100),  # another quarter
        ]
        client.execute(f"INSERT INTO {db}.kpi_values VALUES", rows)
        july = dt.date(2026, 7, 1)
        assess_period(settings, catalogues, "QUARTER", july, lambda _: [])
        assess_period(settings, catalogues, "YEAR", dt.date(2026, 1, 1), lambda _: [])
        evidence = dict(
            client.execute(
                "SELECT toString(grain), (value, numerator, denominator, outcome) "
                f"FROM {db}.benchmark_criteria FINAL WHERE entity_id = 'RENIEC' "
                "AND criterion_id = 'E07-B1'"
            )
        )
        assert evidence["QUARTER"] == (77.5, 310.0, 400.0, "MET")  # (40 + 270) / 400
        assert evidence["YEAR"] == (82.0, 410.0, 500.0, "MET")  # October too
        (quarter,) = reads.results(
            client, db, "QUARTER", july, entity_id="RENIEC", standard="PUNTUALIDAD"
        )
        assert quarter.grain == "QUARTER" and quarter.period_start == july
        assert reads.periods(client, db, "QUARTER") == [july]
        assert reads.periods(client, db, "MONTH") == []
