"""Level determination on crafted KPI and indicator sets: every outcome kept apart."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from pcm_benchmark.assessment import (
    NONE,
    Evidence,
    KpiEvidence,
    Outcome,
    ReportedEvidence,
    Review,
    assess,
)
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import ServiceKind

PERIOD_END = dt.date(2026, 10, 31)


def kpi(value: float | None, sample: float = 1_000, insufficient: bool = False) -> KpiEvidence:
    return KpiEvidence(value, (value or 0) * sample / 100, sample, insufficient)


def reported(
    value: float,
    review: Review = Review.VERIFIED,
    valid_until: dt.date = dt.date(2027, 12, 31),
    period_start: dt.date = dt.date(2026, 1, 1),  # this year, still going on: it counts
) -> ReportedEvidence:
    return ReportedEvidence(value, review, period_start, valid_until)


def punctuality(catalogues: Catalogues, **kpis: KpiEvidence) -> tuple[str, float, list[str]]:
    result = assess(
        "RENIEC", catalogues.standard("PUNTUALIDAD"), Evidence(kpis, {}), PERIOD_END, catalogues
    )
    return result.level, result.score, [gap.criterion_id for gap in result.gaps]


@pytest.mark.parametrize(
    ("within", "abandoned", "level"),
    [
        (59.99, 3, NONE),
        (60, 3, "BASICO"),  # a threshold is reached at equality
        (80, 10.01, "BASICO"),
        (80, 10, "INTERMEDIO"),
        (90, 5, "INTERMEDIO"),  # AVANZADO also needs satisfaction with time
    ],
)
def test_each_boundary_of_the_punctuality_standard(
    catalogues: Catalogues, within: float, abandoned: float, level: str
) -> None:
    got, _, _ = punctuality(
        catalogues,
        SERVED_WITHIN_TARGET_PCT=kpi(within),
        ABANDONMENT_PCT=kpi(abandoned),
        SATISFACTION_PCT_TIEMPO=kpi(74.9),
    )
    assert got == level


def test_the_top_level_and_the_score_counts_every_criterion(catalogues: Catalogues) -> None:
    level, score, gaps = punctuality(
        catalogues,
        SERVED_WITHIN_TARGET_PCT=kpi(95),
        ABANDONMENT_PCT=kpi(4),
        SATISFACTION_PCT_TIEMPO=kpi(75),
    )
    assert (level, score, gaps) == ("AVANZADO", 100.0, [])
    # Same level, further along towards the next one: the score tells them apart.
    level, score, gaps = punctuality(
        catalogues,
        SERVED_WITHIN_TARGET_PCT=kpi(85),
        ABANDONMENT_PCT=kpi(4),
        SATISFACTION_PCT_TIEMPO=kpi(50),
    )
    assert (level, round(score, 1), gaps) == ("INTERMEDIO", 66.7, ["E07-A1", "E07-A3"])


def test_no_evidence_insufficient_sample_and_not_met_are_three_things(
    catalogues: Catalogues,
) -> None:
    result = assess(
        "RENIEC",
        catalogues.standard("PUNTUALIDAD"),
        Evidence(
            {
                "SERVED_WITHIN_TARGET_PCT": kpi(92),
                "ABANDONMENT_PCT": kpi(12),  # not met
                "SATISFACTION_PCT_TIEMPO": kpi(90, sample=12, insufficient=True),
            },
            {},
        ),
        PERIOD_END,
        catalogues,
    )
    outcomes = {r.criterion.id: r.outcome for r in result.criteria}
    assert outcomes["E07-I2"] is Outcome.NOT_MET
    assert outcomes["E07-A3"] is Outcome.INSUFFICIENT_SAMPLE
    assert result.level == "BASICO"
    gaps = {gap.criterion_id: gap for gap in result.gaps}
    assert set(gaps) == {"E07-I2"}  # the next level only needs the abandonment
    assert gaps["E07-I2"].needed == "ABANDONMENT_PCT <= 10 (now 12)"
    missing = assess(
        "RENIEC", catalogues.standard("PUNTUALIDAD"), Evidence({}, {}), PERIOD_END, catalogues
    )
    assert {r.outcome for r in missing.criteria} == {Outcome.NO_EVIDENCE}
    assert missing.level == NONE and missing.score == 0
    assert missing.gaps[0].needed.startswith("SERVED_WITHIN_TARGET_PCT >= 60: KPI data for")


def test_a_criterion_about_services_the_entity_lacks_is_not_applicable(
    catalogues: Catalogues,
) -> None:
    without_procedures = copy.copy(catalogues)
    object.__setattr__(
        without_procedures,
        "services",
        tuple(s for s in catalogues.services if s.kind is not ServiceKind.TRAMITE),
    )
    result = assess(
        "RENIEC",
        catalogues.standard("PROCESOS_TRAMITE"),
        Evidence({}, {}),
        PERIOD_END,
        without_procedures,
    )
    assert {r.outcome for r in result.criteria} == {Outcome.NOT_APPLICABLE}
    assert not result.applicable and result.level == NONE and result.gaps == ()
    # With procedures, the same empty evidence is no evidence.
    offered = assess(
        "RENIEC", catalogues.standard("PROCESOS_TRAMITE"), Evidence({}, {}), PERIOD_END, catalogues
    )
    assert offered.applicable and {r.outcome for r in offered.criteria} == {Outcome.NO_EVIDENCE}


@pytest.mark.parametrize(
    ("value", "outcome", "verified"),
    [
        (reported(1), Outcome.MET, True),
        (reported(1, Review.REPORTED), Outcome.MET, False),  # pending review: counts, unverified
        (reported(0), Outcome.NOT_MET, True),
        (reported(1, Review.REJECTED), Outcome.NO_EVIDENCE, False),
        (reported(1, valid_until=dt.date(2026, 10, 30)), Outcome.NO_EVIDENCE, False),  # expired
        (reported(1, period_start=dt.date(2026, 11, 1)), Outcome.NO_EVIDENCE, False),  # later
        (None, Outcome.NO_EVIDENCE, False),
    ],
)
def test_reported_values_count_by_review_and_validity(
    catalogues: Catalogues, value: ReportedEvidence | None, outcome: Outcome, verified: bool
) -> None:
    values = {} if value is None else {"RESPONSIBLE_UNIT_DESIGNATED": value}
    result = assess(
        "RENIEC",
        catalogues.standard("ORGANIZACION_INTERNA"),
        Evidence({}, values),
        PERIOD_END,
        catalogues,
    )
    (first, *_) = result.criteria
    assert (first.outcome, first.verified) == (outcome, verified)
    assert result.level == ("BASICO" if outcome is Outcome.MET else NONE)


def test_a_new_catalogue_version_assesses_the_same_evidence_anew(catalogues: Catalogues) -> None:
    evidence = Evidence({"SERVED_WITHIN_TARGET_PCT": kpi(65), "ABANDONMENT_PCT": kpi(3)}, {})
    standard = catalogues.standard("PUNTUALIDAD")
    before = assess("RENIEC", standard, evidence, PERIOD_END, catalogues)
    stricter = standard.model_copy(
        update={
            "levels": {
                level: tuple(
                    c.model_copy(update={"threshold": 70}) if c.id == "E07-B1" else c
                    for c in criteria
                )
                for level, criteria in standard.levels.items()
            }
        }
    )
    revised = copy.copy(catalogues)
    object.__setattr__(revised, "versions", {**catalogues.versions, "standards": "2027.1"})
    after = assess("RENIEC", stricter, evidence, PERIOD_END, revised)
    assert (before.level, before.catalogue_version) == ("BASICO", catalogues.versions["standards"])
    assert (after.level, after.catalogue_version) == (NONE, "2027.1")
