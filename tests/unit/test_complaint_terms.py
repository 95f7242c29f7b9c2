"""Complaint answer deadlines on the shipped catalogues: business days counted from the day after
filing (national holidays from the ``holidays`` package, decreed days from the calendar CSV), and
the per-category term override that may only shorten the term."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from pcm_common.catalogues import BusinessCalendar, CatalogueError, Catalogues, load_catalogues

D = dt.date
GENERAL = "DS 007-2020-PCM"  # the default row '*,*': 30 business days, no override
HEALTH = "DS 002-2019-SA"  # the SALUD rows: 30 business days, overridable down from 30


@pytest.mark.parametrize(
    ("filed_on", "due_on"),
    [
        # Holy Thursday 2 Apr, Good Friday 3 Apr and 1 May (a Friday) are skipped.
        (D(2026, 4, 1), D(2026, 5, 18)),
        # 23 Jul, 28-29 Jul (Fiestas Patrias) and 6 Aug are skipped.
        (D(2026, 7, 20), D(2026, 9, 4)),
        # 8-9 Dec, 25 Dec and 1 Jan are skipped; the term runs into the next year.
        (D(2026, 11, 30), D(2027, 1, 15)),
    ],
    ids=["wed-1-apr-2026", "mon-20-jul-2026", "mon-30-nov-2026"],
)
def test_thirty_business_days_on_known_dates(
    catalogues: Catalogues, filed_on: dt.date, due_on: dt.date
) -> None:
    due = catalogues.complaint_due("RENIEC", None, filed_on)
    assert due.due_on == due_on
    assert due.term_business_days == 30
    assert GENERAL in due.basis
    assert catalogues.calendar.business_days_between(filed_on, due_on, "LIMA") == 30


def test_filing_on_a_saturday(catalogues: Catalogues) -> None:
    # Filed Sat 10 Oct 2026. The term counts from the day after filing, and only business days
    # count: Sun 11 Oct is not one, so day 1 is Mon 12 Oct. Then 12-16, 19-23 and 26-30 Oct give
    # 15; Sun 1 Nov (Todos los Santos) falls on a weekend, so 2-6, 9-13 and 16-20 Nov give 30:
    # due Fri 20 Nov 2026, the same deadline as a filing on Fri 9 Oct or Sun 11 Oct.
    saturday = D(2026, 10, 10)
    assert saturday.weekday() == 5
    assert catalogues.complaint_due("RENIEC", None, saturday).due_on == D(2026, 11, 20)
    for neighbour in (D(2026, 10, 9), D(2026, 10, 11)):
        assert catalogues.complaint_due("RENIEC", None, neighbour).due_on == D(2026, 11, 20)


def test_decreed_non_working_days_are_skipped(catalogues: Catalogues) -> None:
    # non_working_days.csv: Fri 26 Dec 2025 and Fri 2 Jan 2026 are decreed non-working days
    # (DS 042-2025-PCM, scope NACIONAL), inside the term of a complaint filed Mon 1 Dec 2025.
    filed_on = D(2025, 12, 1)
    decreed = (D(2025, 12, 26), D(2026, 1, 2))
    bare = BusinessCalendar()  # the same holidays, no decreed days
    for day in decreed:
        assert not catalogues.calendar.is_business_day(day, "LIMA")
        assert "DS 042-2025-PCM" in str(catalogues.calendar.non_business_reason(day, "LIMA"))
        assert bare.is_business_day(day, "LIMA")
    # By hand: 2-5 Dec (4), 8-9 Dec holidays, 10-12 (7), 15-19 (12), 22-24 (15), 25 Dec holiday,
    # 26 Dec decreed, 29-31 (18), 1 Jan holiday, 2 Jan decreed, 5-9 Jan (23), 12-16 (28),
    # 19-20 Jan (30): Tue 20 Jan 2026. Counting the two decreed days would end on Fri 16 Jan.
    assert catalogues.complaint_due("RENIEC", None, filed_on).due_on == D(2026, 1, 20)
    assert bare.add_business_days(filed_on, 30, "LIMA") == D(2026, 1, 16)


# --- overrides -------------------------------------------------------------------------------


def test_catalogue_rows_say_who_may_shorten_the_term(catalogues: Catalogues) -> None:
    assert catalogues.complaint_term("RENIEC").max_override_business_days == 0
    for entity in ("ESSALUD", "SIS", "MINSA"):
        term = catalogues.complaint_term(entity, "SALUD")
        assert term.max_override_business_days == term.legal_term_business_days == 30
    for term in catalogues.complaint_terms:
        assert term.max_override_business_days <= term.legal_term_business_days


def test_override_refused_for_the_default_category(catalogues: Catalogues) -> None:
    expected = "category \\* of entity RENIEC does not allow a term override"
    with pytest.raises(ValueError, match=expected):
        catalogues.complaint_due("RENIEC", None, D(2026, 4, 1), override_days=10)
    # ESSALUD may shorten SALUD complaints only: another category falls back to '*,*'.
    with pytest.raises(ValueError, match="category OTRA of entity ESSALUD does not allow"):
        catalogues.complaint_due("ESSALUD", "OTRA", D(2026, 4, 1), override_days=10)


def test_override_shortens_a_health_complaint(catalogues: Catalogues) -> None:
    default = catalogues.complaint_due("ESSALUD", "SALUD", D(2026, 4, 1))
    assert (default.term_business_days, default.due_on) == (30, D(2026, 5, 18))
    assert HEALTH in default.basis
    # 15 business days after Wed 1 Apr 2026, Holy Thursday and Good Friday skipped.
    short = catalogues.complaint_due("ESSALUD", "SALUD", D(2026, 4, 1), override_days=15)
    assert (short.term_business_days, short.due_on) == (15, D(2026, 4, 24))
    assert short.basis == default.basis
    assert short.due_on < default.due_on
    # Up to the row's maximum itself.
    same = catalogues.complaint_due("ESSALUD", "SALUD", D(2026, 4, 1), override_days=30)
    assert same == default


def test_override_longer_than_allowed_is_refused(catalogues: Catalogues) -> None:
    expected = (
        "category SALUD of entity ESSALUD may shorten the term to at most 30 business days, not 31"
    )
    with pytest.raises(ValueError, match=expected):
        catalogues.complaint_due("ESSALUD", "SALUD", D(2026, 4, 1), override_days=31)
    with pytest.raises(ValueError, match="override_days must be >= 0"):
        catalogues.complaint_due("ESSALUD", "SALUD", D(2026, 4, 1), override_days=-1)


def test_unknown_entity_is_a_caller_bug(catalogues: Catalogues) -> None:
    with pytest.raises(KeyError, match="unknown entity 'NADIE'"):
        catalogues.complaint_due("NADIE", None, D(2026, 4, 1))


# --- the catalogue check ---------------------------------------------------------------------


@pytest.fixture
def root(catalogues: Catalogues, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped catalogues; errors print it as ``catalogues/...``."""
    copy = tmp_path / "catalogues"
    shutil.copytree(catalogues.directory, copy)
    monkeypatch.chdir(tmp_path)
    return copy


def _replace(root: Path, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in complaint_terms.csv; return its line."""
    path = root / "complaint_terms.csv"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in complaint_terms.csv"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def test_max_override_above_the_term_is_refused(root: Path) -> None:
    line = _replace(root, "ESSALUD,SALUD,30,30,", "ESSALUD,SALUD,30,45,")
    with pytest.raises(CatalogueError) as caught:
        load_catalogues(root)
    error = caught.value
    assert (error.line, error.field) == (line, "max_override_business_days")
    assert str(error) == (
        f"catalogues/complaint_terms.csv:{line}: field 'max_override_business_days': "
        "45 exceeds legal_term_business_days 30 of row 'ESSALUD,SALUD' "
        "(an override may only shorten the term)"
    )


def test_negative_max_override_is_refused(root: Path) -> None:
    line = _replace(root, "SIS,SALUD,30,30,", "SIS,SALUD,30,-1,")
    with pytest.raises(CatalogueError) as caught:
        load_catalogues(root)
    assert (caught.value.line, caught.value.field) == (line, "max_override_business_days")


def test_without_the_column_no_term_can_be_overridden(root: Path) -> None:
    path = root / "complaint_terms.csv"
    rows = [line.split(",", 4) for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(f"{','.join(r[:3])},{r[4]}\n" for r in rows), encoding="utf-8")
    loaded = load_catalogues(root)
    assert all(t.max_override_business_days == 0 for t in loaded.complaint_terms)
    with pytest.raises(ValueError, match="does not allow a term override"):
        loaded.complaint_due("ESSALUD", "SALUD", D(2026, 4, 1), override_days=15)
