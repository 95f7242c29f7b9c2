"""A broken catalogue fails with one line naming the file, the line and the field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pcm_common.catalogues import CatalogueError, load_catalogues
from pcm_common.catalogues.cli import main

REPO_CATALOGUES = Path(__file__).resolve().parents[2] / "catalogues"
CHANNELS = (
    "PRESENCIAL, TELEFONICO, MOVIL, VIRTUAL, WEB, GOB_PE, MESA_PARTES_DIGITAL, APP, CHAT, CORREO"
)
MIDIS = (
    "MIDIS,Ministerio de Desarrollo e Inclusión Social,DESARROLLO_SOCIAL,NACIONAL,LIMA,"
    "MINISTERIO,,PRESENCIAL|TELEFONICO|VIRTUAL|MOVIL"
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped catalogues; errors print it as ``catalogues/...``."""
    copy = tmp_path / "catalogues"
    shutil.copytree(REPO_CATALOGUES, copy)
    monkeypatch.chdir(tmp_path)
    return copy


def breaking(root: Path, file: str, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in ``file``; return the line where it started."""
    path = root / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {file}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def load_error(root: Path) -> CatalogueError:
    with pytest.raises(CatalogueError) as caught:
        load_catalogues(root)
    assert "\n" not in str(caught.value)
    return caught.value


# (file, old text, new text, lines from the start of old to the error, field, reason)
CASES = [
    (
        "entities.csv",
        MIDIS,
        MIDIS.replace("PRESENCIAL|TELEFONICO|VIRTUAL|MOVIL", "PRESENCIAL|FAX"),
        0,
        "channels",
        f"unknown channel 'FAX' (expected one of {CHANNELS})",
    ),
    (
        "entities.csv",
        "GR-PUNO,Gobierno Regional de Puno,GOBIERNO_REGIONAL,REGIONAL,",
        "GR-PUNO,Gobierno Regional de Puno,GOBIERNO_REGIONAL,LOCAL,",
        0,
        "government_level",
        "'LOCAL' does not match peer group 'GOBIERNO_REGIONAL' (REGIONAL)",
    ),
    (
        "entities.csv",
        "Lurigancho,GOBIERNO_LOCAL,LOCAL,LIMA,MUNICIPALIDAD_TIPO_B,B,",
        "Lurigancho,GOBIERNO_LOCAL,LOCAL,LIMA,MUNICIPALIDAD_VECINAL,B,",
        0,
        "peer_group",
        "unknown peer group 'MUNICIPALIDAD_VECINAL' (expected one of"
        " ORGANISMO_NACIONAL_ALTA_DEMANDA, ORGANISMO_REGULADOR, MINISTERIO, GOBIERNO_REGIONAL,"
        " MUNICIPALIDAD_METROPOLITANA_LIMA, MUNICIPALIDAD_TIPO_A, MUNICIPALIDAD_TIPO_B,"
        " MUNICIPALIDAD_TIPO_C, MUNICIPALIDAD_TIPO_D, MUNICIPALIDAD_TIPO_E,"
        " MUNICIPALIDAD_TIPO_F, MUNICIPALIDAD_TIPO_G)",
    ),
    (
        "entities.csv",
        "Lurigancho,GOBIERNO_LOCAL,LOCAL,LIMA,MUNICIPALIDAD_TIPO_B,B,",
        "Lurigancho,GOBIERNO_LOCAL,LOCAL,LIMA,MUNICIPALIDAD_TIPO_B,A,",
        0,
        "municipal_type",
        "A does not match peer group 'MUNICIPALIDAD_TIPO_B' (municipal type B)",
    ),
    (
        "services.csv",
        "SUNAT_CLAVE_SOL,SUNAT,Obtención o recuperación de Clave SOL,ATENCION,15,",
        "SUNAT_CLAVE_SOL,SUNAT,Obtención o recuperación de Clave SOL,ATENCION,quince,",
        0,
        "target_wait_minutes",
        "Input should be a valid integer, unable to parse string as an integer (got 'quince')",
    ),
    (
        "services.csv",
        "SIS_AFILIACION,SIS,",
        "SIS_AFILIACION,SISS,",
        0,
        "entity_id",
        "unknown entity 'SISS' (not in entities.csv)",
    ),
    (
        "services.csv",
        "impuesto a la renta,TRAMITE,15,15,45,",
        "impuesto a la renta,TRAMITE,15,15,,",
        0,
        "legal_term_business_days",
        "required for kind TRAMITE",
    ),
    (
        "channels.yaml",
        "    type: PRESENCIAL\n    digital: false",
        "    type: PRESENCIAL\n    digital: maybe",
        1,
        "digital",
        "Input should be a valid boolean, unable to interpret input (got 'maybe')",
    ),
    (
        "channels.yaml",
        "      any_of: [VIRTUAL, MOVIL]",
        "      any_of: [VIRTUAL, WEB]",  # levels are stated in channel types, WEB is a channel
        0,
        "any_of",
        "Input should be 'PRESENCIAL', 'TELEFONICO', 'VIRTUAL' or 'MOVIL' (got 'WEB')",
    ),
    (
        "drivers.yaml",
        "  satisfied_min: 4",
        "  satisfied_min: 7",
        0,
        "satisfied_min",
        "must be between 1 and 5",
    ),
    (
        "kpis.yaml",
        "    aggregate: {fn: p90, field: wait_s, where: {kind: TICKET_SERVED}}\n    unit: seconds",
        "    aggregate: {fn: p90, field: wait_s, where: {kind: TICKET_SERVED}}\n    unit: minutes",
        1,
        "unit",
        "Input should be 'count', 'seconds', 'percent', 'ratio', 'level', 'business_days',"
        " 'score' or 'boolean' (got 'minutes')",
    ),
    (
        "standards.yaml",
        '          kpi: PROCEDURES_REWORKED_PCT\n          op: "<="\n          threshold: 20',
        '          kpi: PROCEDURES_REDONE_PCT\n          op: "<="\n          threshold: 20',
        0,
        "kpi",
        "unknown KPI 'PROCEDURES_REDONE_PCT' (not in kpis.yaml)",
    ),
    (
        "standards.yaml",
        '          kpi: PROCEDURES_WITHIN_TERM_PCT\n          op: ">="\n          threshold: 95',
        '          kpi: PROCEDURES_WITHIN_TERM_PCT\n          op: ">="\n          threshold: 195',
        2,
        "threshold",
        "a percentage threshold must be between 0 and 100",
    ),
    (
        "standards.yaml",
        "    unit: percent\n    direction: higher_is_better\n    valid_months: 3\n",
        "    unit: percent\n    direction: higher_is_better\n    valid_months: 3\n    max: 120\n",
        3,
        "max",
        "120 is outside the range of unit percent (0..100)",
    ),
    (
        "standards.yaml",
        "  - code: STAFF_TRAINED_PCT\n",
        "  - code: STAFF_TRAINED_PCT\n    min: 50\n    max: 40\n",
        2,
        "max",
        "40 must be above min 50",
    ),
    (
        "standards.yaml",
        "  - code: EVACUATION_DRILLS\n",
        "  - code: EVACUATION_DRILLS\n    min: -1\n",
        1,
        "min",
        "-1 is outside the range of unit count (0 or more)",
    ),
    (
        "standards.yaml",
        "  - code: EVACUATION_DRILLS\n",
        "  - code: EVACUATION_DRILLS\n    max: 2.5\n",
        1,
        "max",
        "2.5: a count bound is a whole number",
    ),
    (
        "standards.yaml",
        "  - code: TUPA_PUBLISHED\n",
        "  - code: TUPA_PUBLISHED\n    max: null\n",
        1,
        "max",
        "no maximum is outside the range of unit boolean (0..1)",
    ),
    (
        "standards.yaml",
        "    valid_months: 24\n",
        "",
        -4,  # a missing field is reported at the start of its indicator
        "valid_months",
        "missing (required)",
    ),
    (
        "standards.yaml",
        "    valid_months: 24\n",
        "    valid_months: 0\n",
        0,
        "valid_months",
        "Input should be greater than or equal to 1 (got 0)",
    ),
    (
        "standards.yaml",
        "  - code: OPEN_DATA_PUBLISHED\n    name: Datos de atención publicados como datos"
        " abiertos\n    unit: boolean\n    direction: higher_is_better\n",
        "  - code: OPEN_DATA_PUBLISHED\n    name: Datos de atención publicados como datos"
        " abiertos\n    unit: boolean\n    direction: better\n",
        3,
        "direction",
        "Input should be 'higher_is_better', 'lower_is_better' or 'neutral' (got 'better')",
    ),
    (
        "calendar/non_working_days.csv",
        "2024-10-07,NACIONAL",
        "2024-02-30,NACIONAL",
        0,
        "date",
        "Input should be a valid date or datetime, day value is outside expected range"
        " (got '2024-02-30')",
    ),
    (
        "calendar/non_working_days.csv",
        "2025-05-02,NACIONAL",
        "2025-05-02,PERU",
        0,
        "scope",
        "unknown scope 'PERU' (expected NACIONAL or a region code of regions.csv)",
    ),
    (
        "regions.csv",
        "ICA,11,Ica",
        "ICA,1A,Ica",
        0,
        "ubigeo",
        "String should match pattern '^\\d{2}$' (got '1A')",
    ),
    (
        "peer_groups.csv",
        "MINISTERIO,NACIONAL,",
        "MINISTERIO,FEDERAL,",
        0,
        "government_level",
        "Input should be 'NACIONAL', 'REGIONAL' or 'LOCAL' (got 'FEDERAL')",
    ),
    (
        "kpis.yaml",
        "    formula: número de atenciones atendidas",
        "    formula: número de atenciones atendidas\n    min_sample: 30",
        1,
        "min_sample",
        "only ratios, means, percentiles and maxima have a sample size",
    ),
    (
        "kpis.yaml",
        '    min_sample_source: "Por defecto de la SGP, a validar: n ≥ 30 (con menos de 10 valores'
        ' el percentil 90 es el máximo)."\n',
        "",
        -10,  # a missing field is reported at the start of its KPI
        "min_sample_source",
        "required with min_sample: say where it comes from",
    ),
    (
        "complaint_terms.csv",
        "SIS,SALUD,30,",
        "SIS,SALUD,treinta,",
        0,
        "legal_term_business_days",
        "Input should be a valid integer, unable to parse string as an integer (got 'treinta')",
    ),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "offset", "field", "reason"),
    CASES,
    ids=[f"{case[0]}:{case[4]}" for case in CASES],
)
def test_one_line_error_names_file_line_and_field(
    root: Path, file: str, old: str, new: str, offset: int, field: str, reason: str
) -> None:
    line = breaking(root, file, old, new) + offset
    error = load_error(root)
    assert str(error) == f"catalogues/{file}:{line}: field '{field}': {reason}"
    assert (error.line, error.field) == (line, field)


def test_duplicate_id_names_both_lines(root: Path) -> None:
    first = breaking(root, "entities.csv", "MUNI-SJL,", "MUNI-SURCO,") - 1
    error = load_error(root)
    expected = f"field 'entity_id': duplicate 'MUNI-SURCO' (first defined at line {first})"
    assert str(error) == f"catalogues/entities.csv:{first + 1}: {expected}"


def test_duplicate_yaml_key_names_both_lines(root: Path) -> None:
    old = "    question: ¿Obtuvo el resultado que necesitaba?"
    line = breaking(root, "drivers.yaml", old, f"{old}\n    name: Otro nombre")
    error = load_error(root)
    reason = f"duplicate key (first defined at line {line - 2})"
    assert str(error) == f"catalogues/drivers.yaml:{line + 1}: field 'name': {reason}"


def test_service_channel_must_be_offered_by_its_entity(root: Path) -> None:
    old = "Obtención o recuperación de Clave SOL,ATENCION,15,10,,PRESENCIAL|VIRTUAL"
    line = breaking(root, "services.csv", old, old.replace("|VIRTUAL", "|MOVIL"))
    sunat = (root / "entities.csv").read_text(encoding="utf-8").split("\nSUNAT,")[0].count("\n") + 2
    reason = f"channel 'MOVIL' is not offered by entity 'SUNAT' (entities.csv:{sunat})"
    assert str(load_error(root)) == f"catalogues/services.csv:{line}: field 'channels': {reason}"


def test_missing_required_yaml_field(root: Path) -> None:
    line = breaking(root, "channels.yaml", "    rank: 2\n", "")
    assert (
        str(load_error(root))
        == f"catalogues/channels.yaml:{line - 2}: field 'rank': missing (required)"
    )


def test_unknown_yaml_field(root: Path) -> None:
    old = "    per_driver: true\n  - code: SATISFACTION_MEAN"
    line = breaking(root, "kpis.yaml", old, old.replace("per_driver:", "per_drivers:"))
    error = load_error(root)
    assert (
        str(error)
        == f"catalogues/kpis.yaml:{line}: field 'per_drivers': unknown field (not allowed here)"
    )


def test_yaml_syntax_error_is_one_line(root: Path) -> None:
    line = breaking(root, "drivers.yaml", "  max: 5\n", "  max: [5\n")
    error = load_error(root)
    assert str(error).startswith("catalogues/drivers.yaml:")
    assert "invalid YAML" in str(error) and error.line is not None and error.line >= line


@pytest.mark.parametrize("character", ["\x00", "\x1f", "\x7f"])
def test_a_control_character_in_yaml_is_one_line(root: Path, character: str) -> None:
    """PyYAML's ReaderError escaped the loader: the CatalogueService answered UNKNOWN and the
    CLI printed a traceback (found by tests/abuse)."""
    line = breaking(root, "drivers.yaml", "  max: 5\n", f"  max: 5{character}\n")
    error = load_error(root)
    expected = f"invalid YAML: character #x{ord(character):04x} is not allowed"
    assert str(error).startswith("catalogues/drivers.yaml:") and error.line == line
    assert error.reason == expected


def test_csv_unknown_column(root: Path) -> None:
    breaking(root, "entities.csv", "entity_id,name,sector", "entity_id,nombre,sector")
    expected = (
        "catalogues/entities.csv:1: field 'nombre': unknown column (expected entity_id, name,"
        " sector, government_level, region, peer_group, municipal_type, channels)"
    )
    assert str(load_error(root)) == expected


def test_csv_saved_with_a_bom_still_loads(root: Path) -> None:
    path = root / "entities.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_catalogues(root).entity("RENIEC").name.startswith("Registro Nacional")


def test_indicator_code_must_not_reuse_a_kpi_code(root: Path) -> None:
    line = breaking(root, "standards.yaml", "  - code: EXTENDED_HOURS", "  - code: ATTENTIONS")
    reason = "'ATTENTIONS' is already a KPI code in kpis.yaml"
    assert str(load_error(root)) == f"catalogues/standards.yaml:{line}: field 'code': {reason}"


def test_criterion_threshold_outside_the_indicator_range(root: Path) -> None:
    line = breaking(
        root,
        "standards.yaml",
        "  - code: INFORMATION_CAMPAIGNS\n",
        "  - code: INFORMATION_CAMPAIGNS\n    max: 1\n",
    )
    text = (root / "standards.yaml").read_text(encoding="utf-8")
    # E10-A3 asks for two campaigns: beyond the stated maximum, the criterion cannot hold.
    criterion = text[: text.index("threshold: 2", text.index("id: E10-A3"))].count("\n") + 1
    reason = f"2 is outside the range 0..1 of INFORMATION_CAMPAIGNS (standards.yaml:{line})"
    expected = f"catalogues/standards.yaml:{criterion}: field 'threshold': {reason}"
    assert str(load_error(root)) == expected


def test_criterion_op_against_the_indicator_direction(root: Path) -> None:
    old = "  - code: STAFF_TRAINED_PCT\n    name: Personal de atención capacitado en el año\n"
    old += "    unit: percent\n    direction: higher_is_better\n"
    line = breaking(root, "standards.yaml", old, old.replace("higher_is", "lower_is"))
    text = (root / "standards.yaml").read_text(encoding="utf-8")
    start = text.index("id: E06-B2")  # the first criterion on it: ">= 50"
    criterion = text[: text.index("op:", start)].count("\n") + 1
    reason = f"'>=' tests STAFF_TRAINED_PCT (standards.yaml:{line}), which is lower_is_better"
    expected = f"catalogues/standards.yaml:{criterion}: field 'op': {reason}"
    assert str(load_error(root)) == expected


def test_missing_file(root: Path) -> None:
    (root / "kpis.yaml").unlink()
    assert str(load_error(root)) == "catalogues/kpis.yaml: file not found"


def test_cli_check_fails_with_one_line_and_exit_2(root: Path) -> None:
    line = breaking(root, "entities.csv", MIDIS, MIDIS.replace("|MOVIL", "|FAX"))
    result = subprocess.run(
        [sys.executable, "-m", "pcm_common.catalogues.cli", "check", "--dir", "catalogues"],
        capture_output=True,
        text=True,
        check=False,
        cwd=root.parent,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    expected = (
        f"error: catalogues/entities.csv:{line}: field 'channels': "
        f"unknown channel 'FAX' (expected one of {CHANNELS})"
    )
    assert result.stderr.splitlines() == [expected]


def test_cli_main_returns_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    breaking(root, "drivers.yaml", "  satisfied_min: 4", "  satisfied_min: 0")
    assert main(["check", "--dir", str(root)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("error: catalogues/drivers.yaml:")
