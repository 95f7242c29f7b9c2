"""Improvement plans' rules (pure): progress from baseline to target, the linear path and its
tolerance (OFF_TRACK), OVERDUE, the PDCA moves, and what a registration must hold."""

from __future__ import annotations

import datetime as dt

import pytest
from pcm_benchmark.plans import (
    TOLERANCE_POINTS,
    Progress,
    Proposal,
    Stage,
    advance_refusal,
    check_proposal,
    close_refusal,
    expected_pct,
    progress,
    progress_pct,
    target_problem,
)
from pcm_benchmark.service import ResultStore, StoreDown
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import Direction

REGISTERED = dt.date(2026, 1, 1)
DEADLINE = dt.date(2026, 4, 11)  # 100 days later


def judged(
    latest: float | None, today: dt.date, stage: Stage = Stage.DO, **terms: float
) -> Progress:
    return progress(
        baseline=terms.get("baseline", 60.0),
        target=terms.get("target", 80.0),
        registered_on=REGISTERED,
        deadline=DEADLINE,
        stage=stage,
        latest=latest,
        today=today,
    )


def day(n: int) -> dt.date:
    return REGISTERED + dt.timedelta(days=n)


def test_progress_is_the_share_of_the_way_from_baseline_to_target() -> None:
    assert progress_pct(60, 80, 70) == 50
    assert progress_pct(60, 80, 60) == 0
    assert progress_pct(60, 80, 50) == 0  # went the wrong way: clamped, never negative
    assert progress_pct(60, 80, 85) == 100  # beyond the target
    # Lower is better: from 12 % abandonment down to 4 %.
    assert progress_pct(12, 4, 10) == 25
    assert progress_pct(12, 4, 3) == 100


def test_expected_progress_is_a_straight_line_from_registration_to_deadline() -> None:
    assert expected_pct(REGISTERED, DEADLINE, REGISTERED) == 0
    assert expected_pct(REGISTERED, DEADLINE, day(25)) == 25
    assert expected_pct(REGISTERED, DEADLINE, DEADLINE) == 100
    assert expected_pct(REGISTERED, DEADLINE, day(150)) == 100


def test_off_track_when_behind_the_line_by_more_than_the_tolerance() -> None:
    assert TOLERANCE_POINTS == 10
    # Day 50: 50 % expected. 40 % done is exactly 10 points behind: still on track.
    on_the_boundary = judged(68.0, day(50))
    assert (on_the_boundary.progress_pct, on_the_boundary.expected_pct) == (40, 50)
    assert not on_the_boundary.off_track
    behind = judged(67.8, day(50))  # 39 %: 11 points behind
    assert behind.off_track and not behind.overdue
    ahead = judged(75.0, day(50))
    assert not ahead.off_track


def test_a_custom_tolerance_moves_the_boundary() -> None:
    strict = progress(
        baseline=60,
        target=80,
        registered_on=REGISTERED,
        deadline=DEADLINE,
        stage=Stage.DO,
        latest=69,
        today=day(50),
        tolerance_points=2,
    )
    assert strict.off_track and strict.tolerance_points == 2


def test_overdue_after_the_deadline_without_the_target() -> None:
    assert not judged(79.0, DEADLINE).overdue  # the day itself
    late = judged(79.0, DEADLINE + dt.timedelta(days=1))
    assert late.overdue and not late.off_track  # 95 %: within 10
    late_and_behind = judged(70.0, DEADLINE + dt.timedelta(days=1))
    assert late_and_behind.overdue and late_and_behind.off_track
    reached = judged(80.0, DEADLINE + dt.timedelta(days=30))
    assert reached.target_reached and not reached.overdue and not reached.off_track


def test_a_closed_plan_or_no_value_raises_no_flag() -> None:
    closed = judged(61.0, DEADLINE + dt.timedelta(days=1), Stage.CLOSED)
    assert closed.progress_pct == 5 and not closed.overdue and not closed.off_track
    unknown = judged(None, DEADLINE + dt.timedelta(days=1))
    assert not unknown.has_value and not unknown.overdue


def test_the_entity_moves_its_plan_one_pdca_step_at_a_time() -> None:
    for current, wanted in [
        (Stage.PLAN, Stage.DO),
        (Stage.DO, Stage.CHECK),
        (Stage.CHECK, Stage.ACT),
        (Stage.ACT, Stage.PLAN),  # another cycle
    ]:
        assert advance_refusal(current, wanted) is None


@pytest.mark.parametrize(
    ("current", "wanted", "reason"),
    [
        (Stage.PLAN, Stage.CHECK, "stage: PLAN -> CHECK is not a PDCA step; from PLAN the plan "
         "moves to DO"),
        (Stage.CHECK, Stage.DO, "stage: CHECK -> DO is not a PDCA step; from CHECK the plan "
         "moves to ACT"),
        (Stage.DO, Stage.DO, "stage: the plan is already in DO"),
        (Stage.ACT, Stage.CLOSED, "stage: only the oversight body closes a plan (ClosePlan)"),
        (Stage.CLOSED, Stage.PLAN, "stage: the plan is closed; a closed plan does not move"),
    ],
)  # fmt: skip
def test_illegal_moves_are_refused_with_the_reason(
    current: Stage, wanted: Stage, reason: str
) -> None:
    assert advance_refusal(current, wanted) == reason


def test_the_oversight_body_closes_from_act_only() -> None:
    assert close_refusal(Stage.ACT) is None
    assert close_refusal(Stage.DO) == "a plan is closed from ACT; this one is in DO"
    assert close_refusal(Stage.CLOSED) == "the plan is already closed"


def test_the_target_must_improve_on_the_baseline_in_the_kpis_direction() -> None:
    assert target_problem(60, 80, Direction.HIGHER_IS_BETTER) is None
    assert target_problem(12, 4, Direction.LOWER_IS_BETTER) is None
    assert target_problem(60, 50, Direction.HIGHER_IS_BETTER) == (
        "target: 50 is below the baseline 60 (higher is better)"
    )
    assert target_problem(4, 12, Direction.LOWER_IS_BETTER) == (
        "target: 12 is above the baseline 4 (lower is better)"
    )
    assert target_problem(7, 7, Direction.NEUTRAL) == (
        "target: 7 is the baseline already (nothing to improve)"
    )


def proposal(**changes: object) -> Proposal:
    fields: dict[str, object] = {
        "plan_id": "plan-1",
        "entity_id": "ONP",
        "standard_code": "PUNTUALIDAD",
        "criterion_id": "E07-I1",
        "kpi_code": "",
        "target": None,
        "deadline": "2026-12-31",
        "owner_role": "Jefe de Atención al Ciudadano",
        "title": "Atender a tiempo",
        "actions": [("Abrir dos ventanillas", "2026-02-01", "2026-03-31")],
    }
    fields.update(changes)
    return Proposal(**fields)  # type: ignore[arg-type]


def test_a_criterion_gives_the_kpi_and_its_threshold_as_the_default_target(
    catalogues: Catalogues,
) -> None:
    terms, problems = check_proposal(proposal(), catalogues, dt.date(2026, 1, 15))
    assert problems == [] and terms is not None
    assert (terms.kpi_code, terms.target, terms.deadline) == (
        "SERVED_WITHIN_TARGET_PCT",
        80,
        dt.date(2026, 12, 31),
    )
    assert terms.direction is Direction.HIGHER_IS_BETTER
    named, _ = check_proposal(
        proposal(criterion_id="", kpi_code="WAIT_MEAN_S", target=600.0),
        catalogues,
        dt.date(2026, 1, 15),
    )
    assert named is not None and named.direction is Direction.LOWER_IS_BETTER


def test_a_registration_is_refused_naming_every_field(catalogues: Catalogues) -> None:
    today = dt.date(2026, 1, 15)
    _, problems = check_proposal(
        proposal(
            deadline="2026-01-15",
            owner_role=" ",
            actions=[("", "2026-02-01", "2027-01-31"), ("Capacitar", "2026-03-01", "2026-02-01")],
        ),
        catalogues,
        today,
    )
    assert problems == [
        "deadline: 2026-01-15 is not after today (2026-01-15)",
        "owner_role: required",
        "actions[0].description: required",
        "actions[0].due_date: 2027-01-31 is after the deadline 2026-01-15",
        "actions[1].due_date: 2026-02-01 is before start_date 2026-03-01",
    ]
    for changes, expected in [
        ({"standard_code": "NOPE"}, "standard_code: not a standard of the catalogue"),
        ({"criterion_id": "E01-B1"}, "criterion_id: not a criterion of PUNTUALIDAD"),
        ({"criterion_id": "E07-B1", "kpi_code": "WAIT_MEAN_S"},
         "kpi_code: E07-B1 tests SERVED_WITHIN_TARGET_PCT, not WAIT_MEAN_S"),
        ({"criterion_id": "", "kpi_code": "WAIT_MEAN_S"}, "target: required with a kpi_code"),
        ({"criterion_id": "", "kpi_code": ""}, "kpi_code: required (or criterion_id)"),
        ({"target": 120.0}, "target: 120 is outside 0..100 (percent)"),
        ({"target": float("nan")}, "target: nan is not a number"),  # was stored (tests/abuse)
        ({"criterion_id": "", "kpi_code": "WAIT_MEAN_S", "target": float("inf")},
         "target: inf is not a number"),
        ({"deadline": "31/12/2026"}, "deadline: '31/12/2026' is not a date YYYY-MM-DD"),
        ({"deadline": "2029-12-31"}, "deadline: 2029-12-31 is more than 36 months ahead"),
        ({"actions": []}, "actions: at least one action"),
    ]:  # fmt: skip
        terms, found = check_proposal(proposal(**changes), catalogues, today)
        assert terms is None and found == [expected], changes


def test_a_criterion_on_a_reported_indicator_is_no_plan_kpi(catalogues: Catalogues) -> None:
    _, problems = check_proposal(
        proposal(standard_code="GESTION_RECLAMOS", criterion_id="E11-B1"),
        catalogues,
        dt.date(2026, 1, 15),
    )
    assert problems == [
        "criterion_id: E11-B1 tests the reported indicator COMPLAINTS_BOOK_AVAILABLE; "
        "a plan measures a KPI"
    ]


def test_a_results_store_that_does_not_answer_is_store_down() -> None:
    class Broken:
        def execute(self, *_: object) -> None:
            raise OSError("connection refused")

    connected: list[Broken] = []

    def connect() -> Broken:
        connected.append(Broken())
        return connected[-1]

    store = ResultStore(connect, "pcm")  # type: ignore[arg-type]

    def read(client: Broken, database: str) -> None:
        client.execute(f"SELECT 1 FROM {database}.benchmark_results")

    for _ in range(2):
        with pytest.raises(StoreDown) as down:
            store.run(read)
        assert down.value.store == "clickhouse"
    assert len(connected) == 2  # reconnected after the error
