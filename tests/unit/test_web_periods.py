"""The dashboard's periods: the ``periodo`` parameter parsed and spelled back, Spanish labels,
the period before, the month standing for a quarter or a year, the selector's groups."""

from __future__ import annotations

import datetime as dt

import pytest
from pcm_benchmark.job import period_label
from pcm_benchmark.web.pages import period_groups
from pcm_benchmark.web.periods import MalformedPeriod, Period, ordered, previous_assessed

OCTOBER = Period("MONTH", dt.date(2026, 10, 1))
SEPTEMBER = Period("MONTH", dt.date(2026, 9, 1))
FOURTH = Period("QUARTER", dt.date(2026, 10, 1))
THIRD = Period("QUARTER", dt.date(2026, 7, 1))
YEAR = Period("YEAR", dt.date(2026, 1, 1))


@pytest.mark.parametrize(
    ("spelled", "period", "label"),
    [
        ("2026-10", OCTOBER, "octubre de 2026"),
        ("2026-01", Period("MONTH", dt.date(2026, 1, 1)), "enero de 2026"),
        ("2026-T4", FOURTH, "4.º trimestre de 2026"),
        ("2026-T3", THIRD, "3.er trimestre de 2026"),
        ("2026-T1", Period("QUARTER", dt.date(2026, 1, 1)), "1.er trimestre de 2026"),
        ("2026-T2", Period("QUARTER", dt.date(2026, 4, 1)), "2.º trimestre de 2026"),
        ("2026", YEAR, "año 2026"),
    ],
)
def test_each_grain_is_parsed_spelled_back_as_the_job_labels_it_and_named(
    spelled: str, period: Period, label: str
) -> None:
    assert Period.parse(spelled) == period
    assert period.value == spelled == period_label(period.grain, period.start)
    assert period.label == label


FULLWIDTH_2026 = "\uff12\uff10\uff12\uff16"
"""Digits int() reads, but no URL of ours spells."""


@pytest.mark.parametrize(
    "spelled",
    [
        "",
        "2026-13",
        "2026-00",
        "2026-T5",
        "2026-T0",
        "2026-t4",
        "2026-1",
        "0000",
        "26",
        "2026-10-01",
        " 2026",
        "2026\n",
        "2026-Q4",
        FULLWIDTH_2026,
    ],
)
def test_anything_else_is_malformed(spelled: str) -> None:
    with pytest.raises(MalformedPeriod):
        Period.parse(spelled)


def test_the_period_before_and_a_year_before_keep_the_grain() -> None:
    assert OCTOBER.previous() == SEPTEMBER
    assert Period("MONTH", dt.date(2026, 1, 1)).previous() == Period("MONTH", dt.date(2025, 12, 1))
    assert FOURTH.previous() == THIRD
    assert Period("QUARTER", dt.date(2026, 1, 1)).previous().value == "2025-T4"
    assert YEAR.previous() == YEAR.year_before() == Period("YEAR", dt.date(2025, 1, 1))
    assert FOURTH.year_before().label == "4.º trimestre de 2025"


def test_a_quarter_or_year_stands_for_its_newest_assessed_month_where_only_months_exist() -> None:
    assessed = [OCTOBER, SEPTEMBER, FOURTH, THIRD, YEAR]
    assert FOURTH.closing_month(assessed) == dt.date(2026, 10, 1)
    assert THIRD.closing_month(assessed) == dt.date(2026, 9, 1)
    assert YEAR.closing_month(assessed) == dt.date(2026, 10, 1)
    assert OCTOBER.closing_month(assessed) == dt.date(2026, 10, 1)
    # None of its months assessed on its own: its last month.
    assert Period("QUARTER", dt.date(2026, 4, 1)).closing_month(assessed) == dt.date(2026, 6, 1)
    assert Period("YEAR", dt.date(2025, 1, 1)).closing_month(assessed) == dt.date(2025, 12, 1)


def test_periods_are_ordered_by_grain_then_newest_first_and_compared_within_their_grain() -> None:
    mixed = [YEAR, THIRD, SEPTEMBER, FOURTH, OCTOBER]
    assert ordered(mixed) == [OCTOBER, SEPTEMBER, FOURTH, THIRD, YEAR]
    assert previous_assessed(FOURTH, mixed) == THIRD
    assert previous_assessed(OCTOBER, mixed) == SEPTEMBER
    assert previous_assessed(THIRD, mixed) is None
    assert previous_assessed(YEAR, mixed) is None


def test_the_selector_groups_the_periods_by_grain_with_the_chosen_one_selected() -> None:
    groups = period_groups(ordered([YEAR, THIRD, SEPTEMBER, FOURTH, OCTOBER]), FOURTH)
    assert [g.label for g in groups] == ["Meses", "Trimestres", "Años"]
    assert [[o.value for o in g.options] for g in groups] == [
        ["2026-10", "2026-09"],
        ["2026-T4", "2026-T3"],
        ["2026"],
    ]
    assert [o.label for g in groups for o in g.options if o.selected] == ["4.º trimestre de 2026"]
    assert [g.label for g in period_groups([OCTOBER], OCTOBER)] == ["Meses"]
