"""A procedure against its legal term, on crafted cases at every boundary (TUO de la Ley 27444
rules as catalogue data: deemed receipt, term in force at filing, clock stopped while the file
waits on the citizen)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_processor.domain.procedures import ProcedureStatus, StageFact, procedure_status

D = dt.date
FILED_MONDAY = D(2025, 3, 10)


def status(
    catalogues: Catalogues,
    stages: list[tuple[str, dt.date]],
    term: int = 7,
    filed: dt.date = FILED_MONDAY,
) -> ProcedureStatus:
    facts = [StageFact(stage, filed, day) for stage, day in stages]
    return procedure_status(
        facts, catalogues.procedure_rules, catalogues.calendar, "LIMA", lambda _: term
    )


def test_decided_exactly_on_the_due_date_is_within_term(catalogues: Catalogues) -> None:
    # Received Monday 10 March; 7 business days after it: Wednesday 19 March.
    on_time = status(catalogues, [("FILED", FILED_MONDAY), ("RESOLVED", D(2025, 3, 19))])
    assert on_time.due_on == D(2025, 3, 19)
    assert on_time.within_term is True
    late = status(catalogues, [("FILED", FILED_MONDAY), ("RESOLVED", D(2025, 3, 20))])
    assert late.within_term is False


def test_a_filing_on_a_non_business_day_is_received_the_next_business_day(
    catalogues: Catalogues,
) -> None:
    saturday = D(2025, 3, 8)
    filed = status(catalogues, [("FILED", saturday)], filed=saturday)
    assert filed.received_on == FILED_MONDAY
    assert filed.due_on == D(2025, 3, 19)  # as if filed on Monday


def test_the_clock_stops_while_the_file_waits_on_the_citizen_across_a_holiday(
    catalogues: Catalogues,
) -> None:
    """Observed Wednesday 16 April 2025; Holy Thursday and Good Friday are holidays; resubmitted
    Monday 21 April: only Monday was paused (the holidays never counted anyway)."""
    filed = D(2025, 4, 14)
    stages = [
        ("FILED", filed),
        ("OBSERVED", D(2025, 4, 16)),
        ("RESUBMITTED", D(2025, 4, 21)),
    ]
    paused = status(catalogues, stages, filed=filed)
    assert paused.paused_days == 1
    plain = status(catalogues, [("FILED", filed)], filed=filed)
    assert plain.due_on == D(2025, 4, 25)  # 7 business days: 15, 16, 21, 22, 23, 24, 25
    assert paused.due_on == D(2025, 4, 28)  # one more business day
    assert paused.within_term is None and not paused.waiting_on_citizen


def test_an_unanswered_observation_is_never_overdue(catalogues: Catalogues) -> None:
    waiting = status(catalogues, [("FILED", FILED_MONDAY), ("OBSERVED", D(2025, 3, 11))])
    assert waiting.waiting_on_citizen
    assert not waiting.overdue_at_close(D(2025, 6, 30))
    assert not waiting.fell_due(D(2025, 6, 30))
    open_case = status(catalogues, [("FILED", FILED_MONDAY)])
    assert not open_case.overdue_at_close(D(2025, 3, 18))
    assert open_case.overdue_at_close(D(2025, 3, 19))  # the due day ended without a decision
    assert not open_case.fell_due(D(2025, 3, 19)) and open_case.fell_due(D(2025, 3, 20))
    decided_late = status(catalogues, [("FILED", FILED_MONDAY), ("RESOLVED", D(2025, 3, 25))])
    assert decided_late.overdue_at_close(D(2025, 3, 24))  # overdue until decided
    assert not decided_late.overdue_at_close(D(2025, 3, 25))
    assert not decided_late.open_at_close(D(2025, 3, 9))  # not yet received


def test_stages_in_any_order_and_repeated_give_the_same_status(catalogues: Catalogues) -> None:
    stages = [
        ("FILED", FILED_MONDAY),
        ("OBSERVED", D(2025, 3, 11)),
        ("RESUBMITTED", D(2025, 3, 13)),
        ("RESOLVED", D(2025, 3, 21)),
    ]
    once = status(catalogues, stages)
    assert status(catalogues, [*stages[::-1], *stages]) == once
    assert (once.paused_days, once.due_on, once.within_term) == (2, D(2025, 3, 21), True)


def test_the_term_is_the_one_in_force_when_the_procedure_was_filed(tmp_path: Path) -> None:
    root = tmp_path / "catalogues"
    shutil.copytree(Path(__file__).resolve().parents[2] / "catalogues", root)
    (root / "tupa_terms.csv").write_text(
        "service_id,valid_from,legal_term_business_days,legal_basis\n"
        "RENIEC_DNI_DUPLICADO,2025-03-15,5,TUPA RENIEC modificado (ejemplo de prueba)\n"
    )
    catalogues = load_catalogues(root)
    service = catalogues.service("RENIEC_DNI_DUPLICADO")
    assert catalogues.legal_term(service, D(2025, 3, 14)) == 7  # services.csv
    assert catalogues.legal_term(service, D(2025, 3, 15)) == 5  # the new version


def test_the_handling_office_decides_whose_non_working_days_count(
    catalogues: Catalogues,
) -> None:
    """14 and 15 November 2024 were decreed non-working days in Lima only (APEC): a procedure
    handled at RENIEC's Cusco office is due two business days earlier than one handled in
    Lima."""
    filed = D(2024, 11, 11)
    due = {}
    for office in ("LIMA-CENTRO", "CUSCO-CENTRO"):
        region = catalogues.region_of("RENIEC", office)
        facts = [StageFact("FILED", filed, filed)]
        due[region] = procedure_status(
            facts, catalogues.procedure_rules, catalogues.calendar, region, lambda _: 7
        ).due_on
    assert due == {"LIMA": D(2024, 11, 22), "CUSCO": D(2024, 11, 20)}
    assert catalogues.region_of("RENIEC", "NOT-CATALOGUED") == "LIMA"  # the entity's


def test_tax_procedures_count_the_days_a_decree_keeps_for_tax_purposes(tmp_path: Path) -> None:
    root = tmp_path / "catalogues"
    shutil.copytree(Path(__file__).resolve().parents[2] / "catalogues", root)
    days = root / "calendar" / "non_working_days.csv"
    text = days.read_text()
    marked = (
        "2024-10-07,NACIONAL,NO_LABORABLE,DS 011-2024-PCM,"
        "Día no laborable compensable para el sector público,"
    )
    assert marked in text
    days.write_text(text.replace(marked, marked + "true"))
    catalogues = load_catalogues(root)
    tax = catalogues.calendar_for(catalogues.service("SUNAT_DEVOLUCION_IR"))
    general = catalogues.calendar_for(catalogues.service("RENIEC_DNI_DUPLICADO"))
    assert tax is catalogues.tax_calendar and general is catalogues.calendar
    assert tax.is_business_day(D(2024, 10, 7)) and not general.is_business_day(D(2024, 10, 7))
