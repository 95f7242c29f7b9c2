"""The shipped catalogues load, and their lookups, channel levels and calendar behave."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import holidays
import pytest
from pcm_common.catalogues import (
    ENV_VAR,
    BusinessCalendar,
    Catalogues,
    Direction,
    Indicator,
    ServiceKind,
    Unit,
    default_directory,
    load_catalogues,
)
from pcm_common.catalogues.cli import kpi_table, main

REPO_CATALOGUES = Path(__file__).resolve().parents[2] / "catalogues"
DRIVERS = ("TRATO_PROFESIONAL", "INFORMACION", "TIEMPO", "ACCESIBILIDAD", "RESULTADO", "CONFIANZA")


@pytest.fixture(scope="module")
def cat() -> Catalogues:
    return load_catalogues(REPO_CATALOGUES)


@pytest.fixture(scope="module")
def cal(cat: Catalogues) -> BusinessCalendar:
    return cat.calendar


# --- shipped data -----------------------------------------------------------------------------


def test_default_directory_is_the_repository_catalogues(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_directory() == REPO_CATALOGUES


def test_env_var_selects_another_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(REPO_CATALOGUES, copy)
    monkeypatch.setenv(ENV_VAR, str(copy))
    assert load_catalogues().directory == copy


def test_channels_and_digital_flag(cat: Catalogues) -> None:
    assert [c.code for c in cat.channels][:4] == ["PRESENCIAL", "TELEFONICO", "MOVIL", "VIRTUAL"]
    # Phone is assisted and itinerant units are in person: neither is digital take-up.
    assert [c.code for c in cat.channels if not c.digital] == ["PRESENCIAL", "TELEFONICO", "MOVIL"]
    assert {c.type.value for c in cat.channels} == {"PRESENCIAL", "TELEFONICO", "VIRTUAL", "MOVIL"}
    assert cat.channel("MOVIL").name == "Móvil o itinerante"


def test_drivers_and_likert_scale(cat: Catalogues) -> None:
    assert tuple(d.code for d in cat.drivers) == DRIVERS
    assert cat.likert.satisfied_min == 4
    assert sorted(cat.likert.labels) == [1, 2, 3, 4, 5]
    assert [cat.likert.is_satisfied(s) for s in range(0, 7)] == [False] * 4 + [True] * 2 + [False]


def test_required_kpis_exist_once(cat: Catalogues) -> None:
    required = [
        "ATTENTIONS",
        "WAIT_MEAN_S",
        "WAIT_P90_S",
        "SERVED_WITHIN_TARGET_PCT",
        "SERVICE_MEAN_S",
        "ABANDONMENT_PCT",
        "PREFERENTIAL_SHARE_PCT",
        "DIGITAL_TAKEUP_PCT",
        "ACTIVE_CHANNELS",
        "CHANNEL_LEVEL",
        "PROCEDURES_FINISHED",
        "PROCEDURES_WITHIN_TERM_PCT",
        "PROCEDURES_REWORKED_PCT",
        "COMPLAINTS_PER_10K_ATTENTIONS",
        "COMPLAINTS_ANSWERED_WITHIN_TERM_PCT",
        "COMPLAINTS_OPEN_OVERDUE",
        "SATISFACTION_PCT",
        "SURVEY_RESPONSE_RATE_PCT",
        "RESPONSES_PER_1000_ATTENTIONS",
    ]
    codes = [k.code for k in cat.kpis]
    assert len(codes) == len(set(codes))
    for code in required:
        cat.kpi(code)


def test_satisfaction_is_derived_per_driver(cat: Catalogues) -> None:
    for driver in DRIVERS:
        kpi = cat.kpi(f"SATISFACTION_PCT_{driver}")
        assert kpi.driver == driver and kpi.parent == "SATISFACTION_PCT"
        assert kpi.numerator is not None and kpi.numerator.where["driver"] == driver
    assert cat.kpi("SATISFACTION_PCT").driver is None
    received = cat.kpi("COMPLAINTS_RECEIVED_TIEMPO")
    assert received.aggregate is not None and received.aggregate.where["driver"] == "TIEMPO"
    per_driver = sum(1 for k in cat.kpi_definitions if k.per_driver)
    assert len(cat.kpis) == len(cat.kpi_definitions) + per_driver * len(DRIVERS)


def test_ratio_and_aggregate_kpis(cat: Catalogues) -> None:
    complaints = cat.kpi("COMPLAINTS_PER_10K_ATTENTIONS")
    assert complaints.is_ratio and complaints.scale == 10_000
    # Across domains: computed on the activity source, each side filtered by its fact table.
    assert complaints.source == "activity" and complaints.denominator is not None
    assert complaints.denominator.where["source"] == "attention_events"
    assert not cat.kpi("WAIT_P90_S").is_ratio


def test_eleven_standards_with_cumulative_levels(cat: Catalogues) -> None:
    assert [s.number for s in cat.standards] == list(range(1, 12))
    assert cat.standard_levels == ("BASICO", "INTERMEDIO", "AVANZADO")
    for standard in cat.standards:
        assert tuple(standard.levels) == cat.standard_levels
        for criteria in standard.levels.values():
            for criterion in criteria:
                if criterion.kpi is not None:
                    cat.kpi(criterion.kpi)
                else:
                    assert criterion.reported
                    cat.indicator(criterion.measure)


def test_indicators_have_direction_range_and_validity(cat: Catalogues) -> None:
    months = {i.code: i.valid_months for i in cat.indicators}
    # Annual by default; the segmentation study counts "en los últimos dos años"; the plan's
    # progress is followed quarterly (an assumption the file states).
    assert months.pop("USER_SEGMENTATION_STUDY_DONE") == 24
    assert months.pop("IMPROVEMENT_PLAN_PROGRESS_PCT") == 3
    assert set(months.values()) == {12}
    for indicator in cat.indicators:
        assert indicator.direction is Direction.HIGHER_IS_BETTER
        assert indicator.validity_source
    ranges = {(i.unit, i.min, i.max) for i in cat.indicators}
    assert ranges == {
        (Unit.BOOLEAN, 0, 1),
        (Unit.PERCENT, 0, 100),
        (Unit.COUNT, 0, None),
    }


def test_indicator_range_defaults_from_the_unit_and_a_stated_one_narrows_it() -> None:
    base = {
        "code": "X",
        "name": "x",
        "direction": "higher_is_better",
        "valid_months": 12,
        "validity_source": "anual",
    }
    flag = Indicator.model_validate({**base, "unit": "boolean"})
    share = Indicator.model_validate({**base, "unit": "percent"})
    count = Indicator.model_validate({**base, "unit": "count"})
    assert [(i.min, i.max) for i in (flag, share, count)] == [(0, 1), (0, 100), (0, None)]
    assert [i.range_text for i in (flag, share, count)] == ["0 or 1", "0..100", "0 or more"]
    assert count.accepts(10**9) and not count.accepts(-1) and not share.accepts(100.5)
    drills = Indicator.model_validate({**base, "unit": "count", "min": 1, "max": 12})
    assert (drills.min, drills.max, drills.range_text) == (1, 12, "1..12")
    assert drills.accepts(12) and not drills.accepts(0) and not drills.accepts(13)


def test_standards_an_indicator_serves(cat: Catalogues) -> None:
    served = [s.code for s in cat.indicator_standards("ACCESSIBILITY_CHECKLIST_PCT")]
    assert served == ["INFRAESTRUCTURA_SEGURIDAD"]
    assert [s.number for s in cat.indicator_standards("STAFF_TRAINED_PCT")] == [6]
    assert cat.indicator_standards("ACCESSIBILITY_RAMPS") == ()  # a checklist item only
    referenced = {
        c.indicator for s in cat.standards for cs in s.levels.values() for c in cs if c.indicator
    }
    assert referenced == {i.code for i in cat.indicators if cat.indicator_standards(i.code)}
    with pytest.raises(KeyError, match="unknown indicator 'NOPE'"):
        cat.indicator_standards("NOPE")


@pytest.mark.parametrize(
    ("period_end", "months", "until"),
    [
        (dt.date(2025, 12, 31), 12, dt.date(2026, 12, 31)),  # a year: the same day next year
        (dt.date(2025, 4, 30), 1, dt.date(2025, 5, 31)),  # a month's end stays a month's end
        (dt.date(2025, 1, 31), 1, dt.date(2025, 2, 28)),
        (dt.date(2025, 11, 30), 3, dt.date(2026, 2, 28)),  # across the year end
        (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),  # leap day to a common year
        (dt.date(2023, 2, 28), 12, dt.date(2024, 2, 29)),  # February's end in a leap year
        (dt.date(2023, 11, 30), 3, dt.date(2024, 2, 29)),
        (dt.date(2024, 2, 29), 24, dt.date(2026, 2, 28)),
        (dt.date(2024, 2, 29), 48, dt.date(2028, 2, 29)),
        (dt.date(2025, 3, 31), 24, dt.date(2027, 3, 31)),
        (dt.date(2024, 1, 30), 1, dt.date(2024, 2, 29)),  # mid-month: the day, clipped
        (dt.date(2025, 1, 15), 1, dt.date(2025, 2, 15)),
    ],
)
def test_valid_until_counts_calendar_months(
    period_end: dt.date, months: int, until: dt.date
) -> None:
    indicator = Indicator(
        code="X",
        name="x",
        unit=Unit.BOOLEAN,
        direction=Direction.HIGHER_IS_BETTER,
        min=0,
        max=1,
        valid_months=months,
        validity_source="test",
    )
    assert indicator.valid_until(period_end) == until


def test_shipped_indicators_valid_until(cat: Catalogues) -> None:
    december = dt.date(2025, 12, 31)
    assert cat.indicator("STAFF_TRAINED_PCT").valid_until(december) == dt.date(2026, 12, 31)
    segmentation = cat.indicator("USER_SEGMENTATION_STUDY_DONE")
    assert segmentation.valid_until(december) == dt.date(2027, 12, 31)
    progress = cat.indicator("IMPROVEMENT_PLAN_PROGRESS_PCT")
    assert progress.valid_until(dt.date(2025, 11, 30)) == dt.date(2026, 2, 28)


def test_standard_level_is_the_highest_whose_chain_holds(cat: Catalogues) -> None:
    timeliness = cat.standard("PUNTUALIDAD")
    good = {"SERVED_WITHIN_TARGET_PCT": 95.0, "ABANDONMENT_PCT": 3.0, "SATISFACTION_PCT_TIEMPO": 80}
    assert timeliness.achieved_level(good) == "AVANZADO"
    assert timeliness.achieved_level({**good, "ABANDONMENT_PCT": 8.0}) == "INTERMEDIO"
    assert timeliness.achieved_level({**good, "ABANDONMENT_PCT": 12.0}) == "BASICO"
    assert timeliness.achieved_level({**good, "SERVED_WITHIN_TARGET_PCT": 50.0}) is None
    assert timeliness.achieved_level({}) is None  # unreported evidence earns nothing


def test_entities(cat: Catalogues) -> None:
    ids = {e.entity_id for e in cat.entities}
    expected = """RENIEC SUNARP ONP ESSALUD SUNAT MIGRACIONES MINSA MINEDU MTPE MIDIS GR-CUSCO
        GR-AREQUIPA GR-LORETO MUNI-LIMA MUNI-MIRAFLORES MUNI-CUSCO MUNI-AREQUIPA MUNI-IQUITOS"""
    assert set(expected.split()) <= ids
    assert 30 <= len(ids) <= 45
    assert {e.government_level.value for e in cat.entities} == {"NACIONAL", "REGIONAL", "LOCAL"}
    reniec = cat.entity("RENIEC")
    assert reniec.peer_group == "ORGANISMO_NACIONAL_ALTA_DEMANDA" and reniec.region == "LIMA"
    with pytest.raises(KeyError, match="unknown entity 'NOPE'"):
        cat.entity("NOPE")


def test_services_for_includes_generic_services(cat: Catalogues) -> None:
    own = {s.service_id for s in cat.services_for("RENIEC")}
    assert {"RENIEC_DNI_DUPLICADO", "ORIENTACION", "MESA_DE_PARTES", "ACCESO_INFORMACION"} <= own
    assert "SUNARP_CERTIFICADO_LITERAL" not in own
    access = cat.service("ACCESO_INFORMACION")
    assert access.is_generic and access.kind is ServiceKind.TRAMITE
    assert access.legal_term_business_days == 10
    with pytest.raises(KeyError):
        cat.services_for("NOPE")


def test_generic_service_channels_narrow_to_the_entity(cat: Catalogues) -> None:
    assert cat.service_channels("ORIENTACION", "MUNI-IQUITOS") == ("PRESENCIAL",)
    assert "MOVIL" in cat.service_channels("ORIENTACION", "RENIEC")
    assert cat.service_channels("SUNAT_CLAVE_SOL", "SUNAT") == ("PRESENCIAL", "VIRTUAL")
    with pytest.raises(KeyError, match="not offered"):
        cat.service_channels("SUNAT_CLAVE_SOL", "RENIEC")


def test_every_tramite_has_a_term_and_every_atencion_a_target(cat: Catalogues) -> None:
    for service in cat.services:
        if service.kind is ServiceKind.TRAMITE:
            assert service.legal_term_business_days is not None
        else:
            assert service.target_wait_minutes is not None


def test_complaint_terms_most_specific_wins(cat: Catalogues) -> None:
    assert cat.complaint_term("RENIEC").legal_term_business_days == 30
    assert "DS 002-2019-SA" in cat.complaint_term("ESSALUD", "SALUD").legal_basis
    assert "DS 007-2020-PCM" in cat.complaint_term("ESSALUD", "OTRA").legal_basis


# --- channel levels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "level"),
    [
        ({"PRESENCIAL"}, "BASICO"),
        ({"PRESENCIAL", "TELEFONICO"}, "BASICO"),  # telephone alone does not make intermedio
        ({"PRESENCIAL", "VIRTUAL"}, "INTERMEDIO"),
        ({"PRESENCIAL", "MOVIL"}, "INTERMEDIO"),
        ({"PRESENCIAL", "TELEFONICO", "VIRTUAL"}, "AVANZADO"),
        ({"PRESENCIAL", "TELEFONICO", "VIRTUAL", "MOVIL"}, "AVANZADO"),
        # Seed 000: avanzado is three or more channels *with in-person among them*; without
        # an in-person channel not even básico holds.
        ({"TELEFONICO", "VIRTUAL", "MOVIL"}, None),
        # Levels count channel types: web and app are both virtual.
        ({"PRESENCIAL", "WEB", "APP"}, "INTERMEDIO"),
        ({"PRESENCIAL", "GOB_PE", "TELEFONICO"}, "AVANZADO"),
        ({"VIRTUAL"}, None),
        (set(), None),
    ],
)
def test_channel_level(cat: Catalogues, active: set[str], level: str | None) -> None:
    found = cat.channel_level(active)
    assert (found.code if found is not None else None) == level


def test_only_the_channels_an_entity_declares_count(cat: Catalogues) -> None:
    declared = set(cat.entity("MUNI-CERRO-COLORADO").channels)
    assert "TELEFONICO" not in declared and "VIRTUAL" not in declared
    active = {"PRESENCIAL", "TELEFONICO", "WEB"}
    assert cat.channel_types(active) == {"PRESENCIAL", "TELEFONICO", "VIRTUAL"}
    assert cat.channel_types(active, "MUNI-CERRO-COLORADO") == declared & {"PRESENCIAL"}
    level = cat.channel_level(active, "MUNI-CERRO-COLORADO")
    assert level is not None and level.code == "BASICO"
    # A declared type covers every channel of that type (RENIEC declares VIRTUAL, sends WEB).
    assert "VIRTUAL" in cat.channel_types({"WEB"}, "RENIEC")


def test_digital_means_electronic_self_service(cat: Catalogues) -> None:
    digital = {c.code for c in cat.channels if c.digital}
    assert digital == {"VIRTUAL", "WEB", "GOB_PE", "MESA_PARTES_DIGITAL", "APP", "CHAT", "CORREO"}


def test_channel_level_rejects_unknown_codes(cat: Catalogues) -> None:
    with pytest.raises(KeyError, match="FAX"):
        cat.channel_level(["PRESENCIAL", "FAX"])


def test_channel_level_ranks(cat: Catalogues) -> None:
    assert [(lv.code, lv.rank) for lv in cat.channel_levels] == [
        ("BASICO", 1),
        ("INTERMEDIO", 2),
        ("AVANZADO", 3),
    ]


# --- calendar ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "sunday"),
    [(2024, dt.date(2024, 3, 31)), (2025, dt.date(2025, 4, 20)), (2026, dt.date(2026, 4, 5))],
)
def test_holidays_package_has_every_national_holiday(year: int, sunday: dt.date) -> None:
    """DOMAIN.md's list; if a package version lacks one, add it to the calendar data.

    ``sunday`` is Easter Sunday: Holy Thursday and Good Friday move with it.
    """
    peru = holidays.country_holidays("PE", years=year)
    fixed = [(1, 1), (5, 1), (6, 7), (6, 29), (7, 23), (7, 28), (7, 29), (8, 6), (8, 30)]
    fixed += [(10, 8), (11, 1), (12, 8), (12, 9), (12, 25)]
    expected = [dt.date(year, m, d) for m, d in fixed]
    expected += [sunday - dt.timedelta(days=3), sunday - dt.timedelta(days=2)]
    missing = [day for day in expected if day not in peru]
    assert missing == []


def test_weekends_holidays_and_decrees(cal: BusinessCalendar) -> None:
    assert cal.is_business_day(dt.date(2025, 4, 16))
    assert not cal.is_business_day(dt.date(2025, 4, 17))  # Jueves Santo
    assert not cal.is_business_day(dt.date(2025, 4, 18))  # Viernes Santo
    assert not cal.is_business_day(dt.date(2025, 4, 19))  # Saturday
    assert not cal.is_business_day(dt.date(2025, 5, 2))  # DS 042-2025-PCM
    assert cal.non_business_reason(dt.date(2025, 5, 2)) is not None
    assert cal.non_business_reason(dt.date(2025, 5, 5)) is None


def test_regional_decree_applies_only_in_its_region(cal: BusinessCalendar) -> None:
    apec = dt.date(2024, 11, 14)  # DS 110-2024-PCM: Lima and Callao only
    assert cal.is_business_day(apec)
    assert cal.is_business_day(apec, region="CUSCO")
    assert not cal.is_business_day(apec, region="LIMA")
    assert not cal.is_business_day(apec, region="CALLAO")
    with pytest.raises(ValueError, match="unknown region"):
        cal.is_business_day(apec, region="ATLANTIDA")


def test_thirty_business_days_across_semana_santa(cal: BusinessCalendar) -> None:
    # Filed Fri 11 Apr 2025; counting starts Mon 14 Apr. Not counted: 17-18 Apr (Semana
    # Santa), 1 May (holiday), 2 May (decreed). Hand count: 14-16 Apr = 3, 21-25 = 8,
    # 28-30 = 11, 5-9 May = 16, 12-16 = 21, 19-23 = 26, 26-29 May = 30.
    assert cal.add_business_days(dt.date(2025, 4, 11), 30) == dt.date(2025, 5, 29)
    assert cal.business_days_between(dt.date(2025, 4, 11), dt.date(2025, 5, 29)) == 30


def test_thirty_business_days_across_fiestas_patrias(cal: BusinessCalendar) -> None:
    # Filed Mon 15 Jul 2024. Not counted: 23 Jul, 26 Jul (decreed), 29 Jul, 6 Aug, 30 Aug.
    # Hand count: 16-19 Jul = 4, 22 = 5, 24-25 = 7, 30-31 = 9, 1-2 Aug = 11, 5 = 12,
    # 7-9 = 15, 12-16 = 20, 19-23 = 25, 26-29 = 29, Mon 2 Sep = 30.
    assert cal.add_business_days(dt.date(2024, 7, 15), 30) == dt.date(2024, 9, 2)


def test_year_end_decrees_and_year_boundary(cal: BusinessCalendar) -> None:
    # 23-24, 30-31 Dec 2024 decreed; 25 Dec and 1 Jan holidays: Fri 20 Dec + 5 = Mon 6 Jan.
    assert cal.add_business_days(dt.date(2024, 12, 20), 5) == dt.date(2025, 1, 6)
    assert cal.business_days_between(dt.date(2024, 12, 20), dt.date(2025, 1, 10)) == 9


def test_add_and_between_are_inverse(cal: BusinessCalendar) -> None:
    start = dt.date(2024, 1, 1)
    for offset in range(0, 1100, 7):
        day = start + dt.timedelta(days=offset)
        for days in (1, 10, 30, 300):
            deadline = cal.add_business_days(day, days)
            assert cal.is_business_day(deadline)
            assert cal.business_days_between(day, deadline) == days
            assert cal.business_days_between(deadline, day) == -days
            assert cal.business_days_between(day, deadline - dt.timedelta(days=1)) == days - 1


def test_add_business_days_edges(cal: BusinessCalendar) -> None:
    sunday = dt.date(2025, 6, 1)
    assert cal.add_business_days(sunday, 0) == sunday
    assert cal.add_business_days(sunday, 1) == dt.date(2025, 6, 2)
    with pytest.raises(ValueError):
        cal.add_business_days(sunday, -1)


def test_calendar_without_decrees_uses_only_holidays() -> None:
    plain = BusinessCalendar()
    assert plain.is_business_day(dt.date(2025, 5, 2))
    assert plain.add_business_days(dt.date(2025, 4, 11), 30) == dt.date(2025, 5, 28)
    assert plain.decreed_years is None


# --- CLI --------------------------------------------------------------------------------------


def test_cli_check_on_shipped_catalogues() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pcm_common.catalogues.cli", "check", "--dir", str(REPO_CATALOGUES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("catalogues OK: ")
    assert "11 standards" in lines[0] and "6 drivers" in lines[0]
    assert "2024\N{EN DASH}2026 calendar" in lines[0]


def test_cli_entities_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["entities", "--dir", str(REPO_CATALOGUES)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["ENTITY_ID", "LEVEL"]
    reniec = next(line for line in lines if line.startswith("RENIEC "))
    assert "AVANZADO" in reniec and "Registro Nacional" in reniec


def test_wait_target_most_specific_first(cat: Catalogues) -> None:
    orientation = cat.service("ORIENTACION")  # 10 minutes at a counter
    assert cat.target_wait_s(orientation, "PRESENCIAL") == 600
    assert cat.target_wait_s(orientation, "TELEFONICO") == 60  # every service, phone
    assert cat.target_wait_s(orientation, "CHAT") == 120  # every service, this channel
    assert cat.target_wait_s(orientation, "WEB") == 600  # no rule: the service's own
    for target in cat.wait_targets:
        assert target.source, target


def test_the_readme_kpi_table_is_the_catalogue(cat: Catalogues) -> None:
    """README's KPI table is generated by `pcm-catalogues kpis`; regenerate it after an edit."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start, end = "<!-- kpi-table:start -->\n", "\n<!-- kpi-table:end -->"
    shown = readme[readme.index(start) + len(start) : readme.index(end)]
    assert shown == kpi_table(cat)
