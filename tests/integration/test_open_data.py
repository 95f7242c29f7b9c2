"""The open-data export on the real ClickHouse (18.16): a month assessed as in
test_benchmark.py, exported by `pcm-benchmark export`, and the package checked by frictionless."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import subprocess
import sys
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from frictionless import Package
from pcm.monitoring.v1 import indicator_pb2
from pcm_benchmark.cli import main
from pcm_benchmark.job import assess_month
from pcm_benchmark.open_data import CRITERION_COLUMNS, RESULT_COLUMNS
from pcm_benchmark.settings import BenchmarkSettings
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_testkit.isolation import isolated

from tests.integration.test_benchmark import OCTOBER, kpi_row, report

pytestmark = pytest.mark.integration

SEPTEMBER = dt.date(2026, 9, 1)
FRICTIONLESS = Path(sys.executable).parent / "frictionless"


def assessed(settings: BenchmarkSettings, catalogues: Catalogues) -> None:
    """September, then October (the newest): KPIs and reported values as in test_benchmark."""
    client = connect(settings, database="default")
    migrate(client, settings.clickhouse_database)
    rows = [
        kpi_row("RENIEC", "SERVED_WITHIN_TARGET_PCT", 95),
        kpi_row("RENIEC", "ABANDONMENT_PCT", 4),
        kpi_row("RENIEC", "SATISFACTION_PCT_TIEMPO", 80),
        kpi_row("SUNARP", "SERVED_WITHIN_TARGET_PCT", 85),
        kpi_row("SUNARP", "ABANDONMENT_PCT", 4),
    ]
    client.execute(f"INSERT INTO {settings.clickhouse_database}.kpi_values VALUES", rows)
    reports = {
        "RENIEC": [
            report("RESPONSIBLE_UNIT_DESIGNATED", 1, indicator_pb2.INDICATOR_STATUS_VERIFIED)
        ],
        "SUNARP": [
            report("RESPONSIBLE_UNIT_DESIGNATED", 1, indicator_pb2.INDICATOR_STATUS_REPORTED)
        ],
    }

    def listed(entity_id: str) -> Iterable[indicator_pb2.IndicatorValue]:
        return reports.get(entity_id, [])

    assess_month(settings, catalogues, SEPTEMBER, listed)
    assess_month(settings, catalogues, OCTOBER, listed)


def stored_count(settings: BenchmarkSettings, table: str) -> int:
    client = connect(settings)
    ((count,),) = client.execute(
        f"SELECT count() FROM {settings.clickhouse_database}.{table} FINAL "
        "WHERE grain = 'MONTH' AND period_start = %(month)s",
        {"month": OCTOBER},
    )
    return int(count)


def csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        header, *rows = csv.reader(handle)
    return header, rows


def typed(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows as read by frictionless, numbers as floats: it reads a CSV's as Decimal, and a
    Parquet null number as NaN (through pandas; the file holds a null, checked apart)."""
    return [{k: plain(v) for k, v in row.items()} for row in rows]


def plain(value: object) -> object:
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def test_the_newest_month_exported_as_a_valid_data_package(
    catalogues: Catalogues, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with isolated("opendata") as shared:
        settings = BenchmarkSettings(**shared.model_dump())
        assessed(settings, catalogues)
        monkeypatch.setenv("PCM_CLICKHOUSE_DATABASE", settings.clickhouse_database)
        monkeypatch.setenv("PCM_BENCHMARK_EXPORT_DIR", str(tmp_path))
        assert main(["export"]) == 0  # the command, settings from the environment

        folder = tmp_path / "2026-10"  # the newest month assessed
        assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-10"]
        assert sorted(p.name for p in folder.iterdir()) == [
            "criterios.csv",
            "criterios.parquet",
            "datapackage.json",
            "resultados.csv",
            "resultados.parquet",
        ]
        validated = subprocess.run(
            [str(FRICTIONLESS), "validate", "--json", "datapackage.json"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        assert validated.returncode == 0, validated.stdout + validated.stderr
        assert json.loads(validated.stdout)["valid"] is True

        described = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
        assert described["version"] == catalogues.versions["standards"]
        created = dt.datetime.strptime(described["created"], "%Y-%m-%dT%H:%M:%S%z")
        assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=5)  # UTC, no shift
        package = Package(str(folder / "datapackage.json"))
        expected = {
            "resultados": (RESULT_COLUMNS, stored_count(settings, "benchmark_results")),
            "criterios": (CRITERION_COLUMNS, stored_count(settings, "benchmark_criteria")),
        }
        assert expected["resultados"][1] == len(catalogues.entities) * (
            len(catalogues.standards) + 1
        )
        for table, (allowlist, count) in expected.items():
            header, rows = csv_rows(folder / f"{table}.csv")
            assert tuple(header) == allowlist  # no column outside the allowlist
            assert len(rows) == count
            parquet = pq.read_table(folder / f"{table}.parquet")
            assert tuple(parquet.column_names) == allowlist and parquet.num_rows == count
            # The CSV and the Parquet hold the same rows, read through the one schema.
            from_csv = typed(package.get_resource(table).read_rows())
            from_parquet = typed(package.get_resource(f"{table}-parquet").read_rows())
            assert from_csv == from_parquet == parquet.to_pylist()
            for column in parquet.column_names:  # a missing value is a null, never a NaN
                assert not any(
                    isinstance(v, float) and math.isnan(v) for v in parquet[column].to_pylist()
                )
            fields = {f.name: f for f in package.get_resource(table).schema.fields}
            for name in ("nivel", "resultado", "nivel_gobierno", "operador", "estandar_codigo"):
                if name in fields:
                    enum = fields[name].constraints["enum"]
                    assert {row[name] for row in from_csv} <= set(enum)

        results = {(r["estandar_codigo"], r["entidad_id"]): r for r in from_csv_results(package)}
        reniec = results[("PUNTUALIDAD", "RENIEC")]
        assert (reniec["nivel"], reniec["posicion_grupo"], reniec["periodo"]) == (
            "AVANZADO",
            1,
            OCTOBER,
        )
        assert reniec["entidad_nombre"].startswith("Registro Nacional")

        # A rerun over the same results leaves the published package as it is.
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        inode = folder.stat().st_ino
        monkeypatch.setenv("PCM_BENCHMARK_EXPORT_MONTH", "2026-09")
        assert main(["export"]) == 0
        monkeypatch.setenv("PCM_BENCHMARK_EXPORT_MONTH", "2026-10")
        assert main(["export"]) == 0
        assert folder.stat().st_ino == inode
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-09", "2026-10"]


def from_csv_results(package: Package) -> list[dict[str, Any]]:
    return typed(package.get_resource("resultados").read_rows())
