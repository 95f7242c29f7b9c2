"""The open-data package of a month (pure rows and descriptor, files written to a temp folder):
every published column described and typed, an explicit allowlist, a valid Data Package."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from frictionless import Package
from pcm_benchmark.assessment import Evidence, KpiEvidence, Outcome, ReportedEvidence, Review
from pcm_benchmark.national import OVERALL, Result, benchmark
from pcm_benchmark.open_data import (
    CRITERION_COLUMNS,
    LICENCE,
    RESULT_COLUMNS,
    ExportError,
    OpenData,
    build,
    check_allowlist,
    result_row,
)
from pcm_benchmark.open_data_export import ARROW_TYPES, DESCRIPTOR, write, write_files
from pcm_benchmark.reads import StoredCriterion, StoredResult
from pcm_benchmark.store import stored_of
from pcm_common.catalogues import Catalogues

OCTOBER = dt.date(2026, 10, 1)
COMPUTED = dt.datetime(2026, 11, 2, 3, 4, 5)
TYPES = {"string", "integer", "number", "boolean", "date"}


def evidence() -> dict[str, Evidence]:
    def kpi(value: float, small: bool = False) -> KpiEvidence:
        return KpiEvidence(value, value * 10, 1_000, small)

    verified = ReportedEvidence(1, Review.VERIFIED, dt.date(2026, 6, 30), dt.date(2027, 6, 30))
    return {
        "RENIEC": Evidence(
            {
                "SERVED_WITHIN_TARGET_PCT": kpi(95),
                "ABANDONMENT_PCT": kpi(4),
                "SATISFACTION_PCT_TIEMPO": kpi(80, small=True),
            },
            {"RESPONSIBLE_UNIT_DESIGNATED": verified},
        ),
        "SUNARP": Evidence({"SERVED_WITHIN_TARGET_PCT": kpi(85)}, {}),
    }


def stored_criteria(results: list[Result]) -> list[StoredCriterion]:
    """As store.write_results stores them (a free-text reason included)."""
    return [
        StoredCriterion(
            r.entity_id,
            r.standard,
            c.criterion.id,
            c.level,
            c.criterion.kpi or "",
            c.criterion.indicator or "",
            c.criterion.op.value,
            c.criterion.threshold,
            c.outcome.value,
            c.value,
            c.numerator or 0.0,
            c.denominator or 0.0,
            c.reason,
            c.verified,
        )
        for r in results
        if r.standard != OVERALL
        for c in r.assessments[0].criteria
    ]


@pytest.fixture(scope="module")
def stored(catalogues: Catalogues) -> tuple[list[StoredResult], list[StoredCriterion]]:
    results = benchmark(catalogues, evidence(), dt.date(2026, 10, 31))
    return (
        [stored_of(r, "MONTH", OCTOBER, COMPUTED) for r in results],
        stored_criteria(results),
    )


@pytest.fixture(scope="module")
def data(
    catalogues: Catalogues, stored: tuple[list[StoredResult], list[StoredCriterion]]
) -> OpenData:
    return build(catalogues, *stored)


@pytest.fixture(scope="module")
def package(data: OpenData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("open-data")
    write_files(data, folder)
    return folder


def descriptor_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / DESCRIPTOR).read_text(encoding="utf-8"))
    return loaded


def parse(value: str, type_: str) -> object:
    if value == "":
        return None
    if type_ == "integer":
        return int(value)
    if type_ == "number":
        return float(value)
    if type_ == "boolean":
        assert value in {"true", "false"}
        return value == "true"
    if type_ == "date":
        return dt.date.fromisoformat(value)
    return value


def test_every_csv_column_is_described_and_typed(package: Path) -> None:
    described = descriptor_of(package)
    csv_resources = [r for r in described["resources"] if r["format"] == "csv"]
    assert {r["path"] for r in csv_resources} == {"resultados.csv", "criterios.csv"}
    for resource in csv_resources:
        fields = resource["schema"]["fields"]
        with (package / resource["path"]).open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == [f["name"] for f in fields]
        for field in fields:
            assert field["type"] in TYPES
            assert field["title"] and field["description"]
            assert "required" in field["constraints"]
        for row in rows[1:]:
            for field, cell in zip(fields, row, strict=True):
                value = parse(cell, field["type"])
                constraints = field["constraints"]
                if value is None:
                    assert not constraints["required"], field["name"]
                    continue
                if "enum" in constraints:
                    assert value in constraints["enum"], (field["name"], value)
                if "minimum" in constraints:
                    assert isinstance(value, int | float)
                    assert constraints["minimum"] <= value <= constraints.get("maximum", value)


def test_the_schema_states_keys_enums_and_ranges(data: OpenData, package: Path) -> None:
    described = descriptor_of(package)
    assert described["licenses"] == [dict(LICENCE)]
    assert described["version"] == data.catalogue_version
    assert described["created"] == "2026-11-02T03:04:05Z"
    resources = {r["name"]: r for r in described["resources"]}
    assert set(resources) == {"resultados", "resultados-parquet", "criterios", "criterios-parquet"}
    for resource in resources.values():
        assert resource["encoding"] == "utf-8" and resource["mediatype"]
        assert resource["hash"].startswith("sha256:")
    results = {f["name"]: f for f in resources["resultados"]["schema"]["fields"]}
    assert results["nivel"]["constraints"]["enum"] == ["NONE", "BASICO", "INTERMEDIO", "AVANZADO"]
    assert OVERALL in results["estandar_codigo"]["constraints"]["enum"]
    for name in ("puntaje", "percentil_grupo", "percentil_nacional"):
        assert results[name]["type"] == "number"
        assert (
            results[name]["constraints"]["minimum"],
            results[name]["constraints"]["maximum"],
        ) == (
            0,
            100,
        )
    assert results["periodo"]["type"] == "date" and results["aplica"]["type"] == "boolean"
    assert results["posicion_nacional"]["type"] == "integer"
    criteria = {f["name"]: f for f in resources["criterios"]["schema"]["fields"]}
    assert criteria["resultado"]["constraints"]["enum"] == [o.value for o in Outcome]
    assert criteria["nivel"]["constraints"]["enum"] == ["BASICO", "INTERMEDIO", "AVANZADO"]
    (foreign,) = resources["criterios"]["schema"]["foreignKeys"]
    assert foreign["reference"]["resource"] == "resultados"
    assert foreign["fields"] == resources["resultados"]["schema"]["primaryKey"]
    assert resources["criterios-parquet"]["schema"]["foreignKeys"][0]["reference"]["resource"] == (
        "resultados-parquet"
    )


def test_parquet_columns_are_the_allowlist_with_the_described_types(package: Path) -> None:
    described = descriptor_of(package)
    for resource in described["resources"]:
        if resource["format"] != "parquet":
            continue
        schema = pq.read_schema(package / resource["path"])
        fields = resource["schema"]["fields"]
        assert schema.names == [f["name"] for f in fields]
        for field in fields:
            assert schema.field(field["name"]).type == ARROW_TYPES[field["type"]]


def test_the_package_is_a_valid_data_package(package: Path) -> None:
    report = Package(str(package / DESCRIPTOR)).validate()
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])


def test_only_the_allowlist_is_published(data: OpenData) -> None:
    assert not {"reason", "razon", "gaps", "brechas"} & {*RESULT_COLUMNS, *CRITERION_COLUMNS}
    assert all(tuple(row) == RESULT_COLUMNS for row in data.results)
    assert all(tuple(row) == CRITERION_COLUMNS for row in data.criteria)
    leaking = [{**data.criteria[0], "reason": "free text"}]
    with pytest.raises(ExportError, match="allowlist"):
        check_allowlist("criterios", data.criterion_columns, leaking)
    extra = dataclasses.replace(data.criterion_columns[0], name="reason")
    with pytest.raises(ExportError, match="allowlist"):
        check_allowlist("criterios", (*data.criterion_columns, extra), [])


def test_rows_carry_the_results(
    data: OpenData, stored: tuple[list[StoredResult], list[StoredCriterion]]
) -> None:
    results, criteria = stored
    assert len(data.results) == len(results) and len(data.criteria) == len(criteria)
    rows = {(r["estandar_codigo"], r["entidad_id"]): r for r in data.results}
    reniec = rows[("PUNTUALIDAD", "RENIEC")]
    assert reniec["entidad_nombre"].startswith("Registro Nacional")
    assert reniec["nivel_gobierno"] == "NACIONAL" and reniec["aplica"] is True
    assert reniec["posicion_grupo"] == 1 and reniec["criterios_muestra_insuficiente"] == 1
    by_criterion = {
        (c["entidad_id"], c["kpi_codigo"] or c["indicador_codigo"]): c for c in data.criteria
    }
    kpi = by_criterion[("RENIEC", "SERVED_WITHIN_TARGET_PCT")]
    assert (kpi["valor"], kpi["numerador"], kpi["denominador"], kpi["verificado"]) == (
        95,
        950,
        1_000,
        None,
    )
    reported = by_criterion[("RENIEC", "RESPONSIBLE_UNIT_DESIGNATED")]
    assert reported["verificado"] is True and reported["numerador"] is None
    missing = by_criterion[("ONP", "SERVED_WITHIN_TARGET_PCT")]
    assert missing["resultado"] == "NO_EVIDENCE" and missing["denominador"] is None


def test_a_standard_that_does_not_apply_has_no_score_nor_rank(
    catalogues: Catalogues, stored: tuple[list[StoredResult], list[StoredCriterion]]
) -> None:
    # Stored so (national.UNRANKED) when no criterion applies, e.g. a procedures-only standard
    # for an entity without TUPA procedures (none of the catalogue's standards is, today).
    results, _ = stored
    unranked = dataclasses.replace(
        results[0],
        level="NONE",
        score=0.0,
        peer_rank=0,
        peer_count=0,
        peer_percentile=0.0,
        national_rank=0,
        national_count=0,
        national_percentile=0.0,
    )
    row = result_row(catalogues, unranked)
    assert row["aplica"] is False and row["nivel"] == "NONE"
    assert {k: v for k, v in row.items() if v is None} == dict.fromkeys(
        (
            "puntaje",
            "posicion_grupo",
            "total_grupo",
            "percentil_grupo",
            "posicion_nacional",
            "total_nacional",
            "percentil_nacional",
        )
    )


def test_an_uncatalogued_entity_is_refused(
    catalogues: Catalogues, stored: tuple[list[StoredResult], list[StoredCriterion]]
) -> None:
    results, criteria = stored
    stray = dataclasses.replace(results[0], entity_id="GONE")
    with pytest.raises(ExportError, match="GONE"):
        build(catalogues, [*results, stray], criteria)


def test_written_whole_and_idempotently(data: OpenData, tmp_path: Path) -> None:
    folder = write(data, tmp_path)
    assert folder == tmp_path / "2026-10"
    assert oct(folder.stat().st_mode & 0o777) == oct(0o755)
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    inode = folder.stat().st_ino
    assert write(data, tmp_path) == folder
    assert folder.stat().st_ino == inode  # the same bytes: left in place
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first
    recomputed = dataclasses.replace(data, created=COMPUTED + dt.timedelta(hours=1))
    write(recomputed, tmp_path)
    assert descriptor_of(folder)["created"] == "2026-11-02T04:04:05Z"
    assert [p.name for p in tmp_path.iterdir()] == ["2026-10"]  # no staging or retired folder


def test_the_validation_catches_a_broken_package(data: OpenData, tmp_path: Path) -> None:
    """What the integration test relies on: frictionless checks keys, enums and hashes."""
    folder = write(data, tmp_path)
    path = folder / "criterios.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[1][2] = "NO-SUCH-ENTITY"
    rows[2][CRITERION_COLUMNS.index("resultado")] = "MAYBE"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)
    report = Package(str(folder / DESCRIPTOR)).validate()
    found = {error_type for (error_type,) in report.flatten(["type"])}
    assert found == {"foreign-key", "constraint-error", "hash-count"}
