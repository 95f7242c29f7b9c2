"""A quarter's and a year's KPI evidence from the months, by each KPI's catalogue rule."""

from __future__ import annotations

import datetime as dt

import pytest
from pcm_benchmark.assessment import KpiEvidence
from pcm_benchmark.rollup import months_of, period_evidence, rolled_up
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import Kpi, Rollup
from pcm_common.catalogues.sources import FieldError

JUL, AUG, SEP = dt.date(2026, 7, 1), dt.date(2026, 8, 1), dt.date(2026, 9, 1)


def test_the_rule_of_each_kind_of_kpi(catalogues: Catalogues) -> None:
    rules = {
        code: catalogues.kpi(code).period_rollup
        for code in (
            "SERVED_WITHIN_TARGET_PCT",  # ratio of counts
            "ABANDONMENT_PCT",  # ratio of distinct tickets
            "WAIT_MEAN_S",  # a mean: sum / n
            "SURVEY_RESPONSES",  # a sum
            "SATISFACTION_PCT_TIEMPO",  # a per-driver KPI the catalogue derives
            "COMPLAINTS_OPEN_OVERDUE_PER_1000",  # a snapshot at the period's close
            "CHANNEL_LEVEL",  # declared: the highest month
            "WAIT_P90_S",  # a percentile: not derivable
        )
    }
    assert rules == {
        "SERVED_WITHIN_TARGET_PCT": Rollup.SUM,
        "ABANDONMENT_PCT": Rollup.SUM,
        "WAIT_MEAN_S": Rollup.SUM,
        "SURVEY_RESPONSES": Rollup.SUM,
        "SATISFACTION_PCT_TIEMPO": Rollup.SUM,
        "COMPLAINTS_OPEN_OVERDUE_PER_1000": Rollup.LAST,
        "CHANNEL_LEVEL": Rollup.MAX,
        "WAIT_P90_S": Rollup.NONE,
    }


def test_a_ratio_adds_numerators_and_denominators_and_its_sample(catalogues: Catalogues) -> None:
    kpi = catalogues.kpi("SERVED_WITHIN_TARGET_PCT")  # min_sample 30
    months = {
        JUL: KpiEvidence(50.0, 5, 10, True),
        AUG: KpiEvidence(100.0, 10, 10, True),
        SEP: KpiEvidence(0.0, 0, 10, True),
    }
    quarter = rolled_up(kpi, months, SEP)
    # 15 of 30, not the mean of the monthly percentages (50.0 by chance here: check another).
    assert quarter == KpiEvidence(50.0, 15, 30, False)
    two = rolled_up(kpi, {JUL: months[JUL], AUG: KpiEvidence(90.0, 27, 30, False)}, AUG)
    assert two == KpiEvidence(32 / 40 * 100, 32, 40, False)  # 80.0, not (50 + 90) / 2 = 70
    assert rolled_up(kpi, {JUL: months[JUL]}, SEP) == KpiEvidence(50.0, 5, 10, True)


def test_a_mean_is_the_sum_over_the_count(catalogues: Catalogues) -> None:
    kpi = catalogues.kpi("WAIT_MEAN_S")
    months = {JUL: KpiEvidence(100.0, 1_000, 10, True), AUG: KpiEvidence(400.0, 12_000, 30, False)}
    assert rolled_up(kpi, months, AUG) == KpiEvidence(325.0, 13_000, 40, False)


def test_a_count_adds_up(catalogues: Catalogues) -> None:
    kpi = catalogues.kpi("SURVEY_RESPONSES")
    months = {JUL: KpiEvidence(7.0, 7, 1, False), AUG: KpiEvidence(5.0, 5, 1, False)}
    assert rolled_up(kpi, months, AUG) == KpiEvidence(12.0, 12, 1.0, False)


def test_a_snapshot_is_the_last_months_and_nothing_without_it(catalogues: Catalogues) -> None:
    kpi = catalogues.kpi("COMPLAINTS_OPEN_OVERDUE_PER_1000")
    months = {JUL: KpiEvidence(9.0, 9, 1_000, False), SEP: KpiEvidence(2.0, 2, 1_000, False)}
    assert rolled_up(kpi, months, SEP) == months[SEP]
    # A closed quarter whose last month has no snapshot has no evidence (not July's).
    assert rolled_up(kpi, {JUL: months[JUL]}, SEP) is None


def test_the_channel_level_is_the_highest_month_and_a_percentile_none(
    catalogues: Catalogues,
) -> None:
    levels = {JUL: KpiEvidence(1.0, 2, 1, False), AUG: KpiEvidence(3.0, 4, 1, False)}
    assert rolled_up(catalogues.kpi("CHANNEL_LEVEL"), levels, AUG) == levels[AUG]
    p90 = {JUL: KpiEvidence(600.0, 600, 40, False)}
    assert rolled_up(catalogues.kpi("WAIT_P90_S"), p90, JUL) is None


def test_period_evidence_per_entity_leaves_out_what_cannot_be_derived(
    catalogues: Catalogues,
) -> None:
    by_month = {
        "RENIEC": {
            "SURVEY_RESPONSES": {JUL: KpiEvidence(3.0, 3, 1, False)},
            "WAIT_P90_S": {JUL: KpiEvidence(600.0, 600, 40, False)},
            "NO_SUCH_KPI": {JUL: KpiEvidence(1.0, 1, 1, False)},
        }
    }
    assert period_evidence(catalogues, by_month, SEP) == {
        "RENIEC": {"SURVEY_RESPONSES": KpiEvidence(3.0, 3, 1.0, False)}
    }


def test_the_months_of_a_period_so_far() -> None:
    assert months_of("QUARTER", JUL, dt.date(2026, 12, 15)) == [JUL, AUG, SEP]
    assert months_of("QUARTER", JUL, dt.date(2026, 8, 3)) == [JUL, AUG]
    year = months_of("YEAR", dt.date(2026, 1, 1), dt.date(2026, 11, 30))
    assert year[0] == dt.date(2026, 1, 1) and year[-1] == dt.date(2026, 11, 1)
    assert len(year) == 11
    assert months_of("MONTH", AUG, AUG) == [AUG]


def test_a_declared_rollup_needs_its_source_and_sum_needs_additive_measures(
    catalogues: Catalogues,
) -> None:
    level = catalogues.kpi("CHANNEL_LEVEL").model_dump()
    with pytest.raises((FieldError, ValueError), match="say why it holds"):
        Kpi.model_validate({**level, "rollup_source": None})
    p90 = catalogues.kpi("WAIT_P90_S").model_dump()
    with pytest.raises((FieldError, ValueError), match="sum needs counts"):
        Kpi.model_validate({**p90, "rollup": "sum", "rollup_source": "because"})
