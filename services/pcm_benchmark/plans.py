"""Improvement plans (PDCA): the rules, pure (no I/O, no clock: today comes from the caller).

A plan moves one KPI of an entity, on one quality standard, from its **baseline** (the KPI's
newest MONTH value when the plan is registered) to a **target** by a **deadline**, through dated
actions, and follows the PDCA cycle::

    PLAN -> DO -> CHECK -> ACT -> CLOSED
      ^                     |
      +---------------------+      (ACT -> PLAN: another cycle)

The entity moves its plan one stage forward at a time (and from ACT back to PLAN for another
cycle); only the oversight body closes it, from ACT; a closed plan never moves again. Every other
move is refused with the reason.

Progress (0-100) is the share of the way from the baseline to the target the latest KPI value
covers: ``100 x (latest - baseline) / (target - baseline)``, clamped to 0..100 (a value that went
the wrong way is 0; one at or beyond the target is 100, *target reached*). The expected progress
is a straight line from the registration day (0) to the deadline (100). Flags, for an open plan
whose target is not reached:

- ``OFF_TRACK``: progress is behind the expected progress by more than the tolerance
  (``TOLERANCE_POINTS``, 10 percentage points; exactly 10 behind is still on track);
- ``OVERDUE``: today is after the deadline (the deadline day itself is still in time).

A closed plan, or one whose target is reached, raises no flag (its progress is still reported).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import UNIT_RANGES, Direction, add_months

TOLERANCE_POINTS = 10.0
"""How far (percentage points) progress may lag the linear path before OFF_TRACK."""
MAX_DEADLINE_MONTHS = 36
"""The furthest deadline a plan may set, in months after its registration."""
MAX_ACTIONS = 50
MAX_TEXT = 200
"""Title and owner role."""
MAX_DESCRIPTION = 500
MAX_NOTE = 1000
"""A note, comment or closing reason."""


class Stage(StrEnum):
    PLAN = "PLAN"
    DO = "DO"
    CHECK = "CHECK"
    ACT = "ACT"
    CLOSED = "CLOSED"


NEXT: dict[Stage, Stage] = {
    Stage.PLAN: Stage.DO,
    Stage.DO: Stage.CHECK,
    Stage.CHECK: Stage.ACT,
    Stage.ACT: Stage.PLAN,
}
"""The one stage the entity may move a plan to from each (ACT -> PLAN: another cycle)."""
CLOSABLE = Stage.ACT
"""The stage from which the oversight body closes a plan."""


class Change(StrEnum):
    """What a row of a plan's history records."""

    REGISTERED = "REGISTERED"
    ADVANCED = "ADVANCED"
    COMMENTED = "COMMENTED"
    CLOSED = "CLOSED"


def advance_refusal(current: Stage, wanted: Stage) -> str | None:
    """Why the entity may not move a plan from ``current`` to ``wanted`` (None: it may)."""
    if current is Stage.CLOSED:
        return "stage: the plan is closed; a closed plan does not move"
    if wanted is Stage.CLOSED:
        return "stage: only the oversight body closes a plan (ClosePlan)"
    if wanted is current:
        return f"stage: the plan is already in {current.value}"
    following = NEXT[current]
    if wanted is not following:
        return (
            f"stage: {current.value} -> {wanted.value} is not a PDCA step; "
            f"from {current.value} the plan moves to {following.value}"
        )
    return None


def close_refusal(current: Stage) -> str | None:
    """Why the oversight body may not close a plan in ``current`` (None: it may)."""
    if current is Stage.CLOSED:
        return "the plan is already closed"
    if current is not CLOSABLE:
        return f"a plan is closed from {CLOSABLE.value}; this one is in {current.value}"
    return None


@dataclass(frozen=True)
class Action:
    description: str
    start: dt.date
    due: dt.date


@dataclass(frozen=True)
class Progress:
    has_value: bool
    latest: float | None
    progress_pct: float
    expected_pct: float
    target_reached: bool
    off_track: bool
    overdue: bool
    tolerance_points: float


def progress_pct(baseline: float, target: float, latest: float) -> float:
    """0..100: the share of the way from ``baseline`` to ``target`` ``latest`` covers."""
    if target == baseline:  # refused at registration; a plan already there is complete
        return 100.0
    share = 100.0 * (latest - baseline) / (target - baseline)
    return min(100.0, max(0.0, share))


def expected_pct(registered_on: dt.date, deadline: dt.date, today: dt.date) -> float:
    """0..100: where the straight line from registration (0) to the deadline (100) is today."""
    span = (deadline - registered_on).days
    if span <= 0:
        return 100.0
    return min(100.0, max(0.0, 100.0 * (today - registered_on).days / span))


def progress(
    *,
    baseline: float,
    target: float,
    registered_on: dt.date,
    deadline: dt.date,
    stage: Stage,
    latest: float | None,
    today: dt.date,
    tolerance_points: float = TOLERANCE_POINTS,
) -> Progress:
    """A plan's progress and flags today, given the latest KPI value (None: no value)."""
    expected = expected_pct(registered_on, deadline, today)
    if latest is None:
        return Progress(False, None, 0.0, expected, False, False, False, tolerance_points)
    done = progress_pct(baseline, target, latest)
    reached = done >= 100.0
    open_ = stage is not Stage.CLOSED and not reached
    off_track = open_ and expected - done > tolerance_points
    overdue = open_ and today > deadline
    return Progress(True, latest, done, expected, reached, off_track, overdue, tolerance_points)


# --- registration --------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """What an entity asks to register (dates still as sent: ISO strings)."""

    plan_id: str
    entity_id: str
    standard_code: str
    criterion_id: str
    kpi_code: str
    target: float | None
    deadline: str
    owner_role: str
    title: str
    actions: Sequence[tuple[str, str, str]]
    """(description, start_date, due_date) per action."""


@dataclass(frozen=True)
class Terms:
    """A proposal checked against the catalogue: what the plan measures and by when."""

    kpi_code: str
    target: float
    deadline: dt.date
    actions: tuple[Action, ...]
    direction: Direction


def _date(value: str, field: str, problems: list[str]) -> dt.date | None:
    if not value:
        problems.append(f"{field}: required (YYYY-MM-DD)")
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        problems.append(f"{field}: {value[:40]!r} is not a date YYYY-MM-DD")
        return None


def _text(value: str, field: str, limit: int, problems: list[str]) -> None:
    if not value.strip():
        problems.append(f"{field}: required")
    elif len(value) > limit:
        problems.append(f"{field}: longer than {limit} characters")


def check_proposal(
    proposal: Proposal, catalogues: Catalogues, today: dt.date
) -> tuple[Terms | None, list[str]]:
    """The plan's terms, or every problem found (each ``"<field>: <reason>"``). The target's
    position against the baseline is checked once the baseline is known (``target_problem``)."""
    problems: list[str] = []
    kpi_code, target = _measure(proposal, catalogues, problems)
    deadline = _date(proposal.deadline, "deadline", problems)
    if deadline is not None:
        latest = add_months(today, MAX_DEADLINE_MONTHS)
        if deadline <= today:
            problems.append(f"deadline: {deadline} is not after today ({today})")
        elif deadline > latest:
            problems.append(f"deadline: {deadline} is more than {MAX_DEADLINE_MONTHS} months ahead")
    _text(proposal.owner_role, "owner_role", MAX_TEXT, problems)
    _text(proposal.title, "title", MAX_TEXT, problems)
    actions = _actions(proposal.actions, deadline, problems)
    if problems or kpi_code is None or target is None or deadline is None:
        return None, problems
    direction = catalogues.kpi(kpi_code).direction
    return Terms(kpi_code, target, deadline, actions, direction), problems


def _measure(
    proposal: Proposal, catalogues: Catalogues, problems: list[str]
) -> tuple[str | None, float | None]:
    """The KPI measured and the target (a criterion's threshold by default)."""
    try:
        standard = catalogues.standard(proposal.standard_code)
    except KeyError:
        known = "required" if not proposal.standard_code else "not a standard of the catalogue"
        problems.append(f"standard_code: {known}")
        return None, None
    kpi_code, target = proposal.kpi_code or None, proposal.target
    if proposal.criterion_id:
        criteria = {c.id: c for level in standard.levels.values() for c in level}
        criterion = criteria.get(proposal.criterion_id)
        if criterion is None:
            problems.append(f"criterion_id: not a criterion of {standard.code}")
            return None, None
        if criterion.kpi is None:
            problems.append(
                f"criterion_id: {criterion.id} tests the reported indicator "
                f"{criterion.indicator}; a plan measures a KPI"
            )
            return None, None
        if kpi_code is not None and kpi_code != criterion.kpi:
            problems.append(f"kpi_code: {criterion.id} tests {criterion.kpi}, not {kpi_code}")
            return None, None
        kpi_code = criterion.kpi
        target = criterion.threshold if target is None else target
    elif kpi_code is None:
        problems.append("kpi_code: required (or criterion_id)")
        return None, None
    try:
        kpi = catalogues.kpi(kpi_code)
    except KeyError:
        problems.append("kpi_code: not a KPI of the catalogue")
        return None, None
    if target is None:
        problems.append("target: required with a kpi_code")
        return kpi_code, None
    if not math.isfinite(target):  # NaN passes every comparison below
        problems.append(f"target: {target} is not a number")
        return kpi_code, None
    bounds = UNIT_RANGES.get(kpi.unit)
    if bounds is not None:
        low, high = bounds
        if target < low or (high is not None and target > high):
            span = f"{low:g}..{high:g}" if high is not None else f"{low:g} or more"
            problems.append(f"target: {target:g} is outside {span} ({kpi.unit.value})")
    return kpi_code, target


def _actions(
    given: Sequence[tuple[str, str, str]], deadline: dt.date | None, problems: list[str]
) -> tuple[Action, ...]:
    if not given:
        problems.append("actions: at least one action")
    if len(given) > MAX_ACTIONS:
        problems.append(f"actions: at most {MAX_ACTIONS}")
        return ()
    actions = []
    for index, (description, start_text, due_text) in enumerate(given):
        field = f"actions[{index}]"
        _text(description, f"{field}.description", MAX_DESCRIPTION, problems)
        start = _date(start_text, f"{field}.start_date", problems)
        due = _date(due_text, f"{field}.due_date", problems)
        if start is None or due is None:
            continue
        if due < start:
            problems.append(f"{field}.due_date: {due} is before start_date {start}")
        elif deadline is not None and due > deadline:
            problems.append(f"{field}.due_date: {due} is after the deadline {deadline}")
        else:
            actions.append(Action(description, start, due))
    return tuple(actions)


def target_problem(baseline: float, target: float, direction: Direction) -> str | None:
    """Why ``target`` is no improvement on ``baseline`` for a KPI of ``direction``."""
    if target == baseline:
        return f"target: {target:g} is the baseline already (nothing to improve)"
    if direction is Direction.HIGHER_IS_BETTER and target < baseline:
        return f"target: {target:g} is below the baseline {baseline:g} (higher is better)"
    if direction is Direction.LOWER_IS_BETTER and target > baseline:
        return f"target: {target:g} is above the baseline {baseline:g} (lower is better)"
    return None
