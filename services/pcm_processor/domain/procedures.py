"""Where a procedure stands against its legal term (pure: the calendar and rules come in).

An oversight analyst asks of every procedure (*expediente*): when was it received, which term
applied, how long did it wait on the citizen, when was it due, and was it decided by then. The
rules, all catalogue data:

- **Deemed receipt**: a filing on a non-business day is received the next business day
  (``procedure_rules.filing_on_non_business_day``); the term counts business days after it.
- **The term in force at filing**: TUPA versions with their ``valid_from`` (tupa_terms.csv).
- **The clock stops while the file waits on the citizen**: from an observation until the
  resubmission (``procedure_rules.clock_stops``), those business days do not count; while an
  observation is unanswered the procedure is not overdue.
- **Due date** = receipt + term + paused business days; **within term** = decided on or before it.

A procedure's stage facts may arrive in any order and more than once: the status depends only
on the set of stages, so recomputing it after a replay gives the same result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pcm_common.catalogues import BusinessCalendar
from pcm_common.catalogues.models import ProcedureRules

RESOLVED = "RESOLVED"


@dataclass(frozen=True)
class StageFact:
    """One stored stage of a procedure, in local dates."""

    stage: str
    filed_on: dt.date
    occurred_on: dt.date


@dataclass(frozen=True)
class ProcedureStatus:
    received_on: dt.date
    term_days: int
    paused_days: int
    waiting_on_citizen: bool
    """An observation without its resubmission: the clock is stopped now."""
    due_on: dt.date
    resolved_on: dt.date | None

    @property
    def within_term(self) -> bool | None:
        """Decided on or before the due date; None while open."""
        return None if self.resolved_on is None else self.resolved_on <= self.due_on

    def open_at_close(self, day: dt.date) -> bool:
        """Received by the end of ``day`` and not decided by then."""
        return self.received_on <= day and (self.resolved_on is None or self.resolved_on > day)

    def overdue_at_close(self, day: dt.date) -> bool:
        """Open at the end of ``day`` although its due date ended without a decision (the
        entity has the whole due day), with the clock running (not waiting on the citizen)."""
        return self.open_at_close(day) and not self.waiting_on_citizen and self.due_on <= day

    def fell_due(self, as_of: dt.date) -> bool:
        """Its due date has passed by ``as_of``, or it was decided: it counts for the within-term
        rate of the period its due date falls in (an open overdue case counts against)."""
        if self.waiting_on_citizen:
            return False
        return self.resolved_on is not None or self.due_on < as_of


TermAt = Callable[[dt.date], int]
"""The legal term (business days) of the procedure's service in force on a filing date."""


def received_on(
    filed_on: dt.date, rules: ProcedureRules, calendar: BusinessCalendar, region: str
) -> dt.date:
    if rules.filing_on_non_business_day != "next_business_day":
        return filed_on
    if calendar.is_business_day(filed_on, region):
        return filed_on
    return calendar.add_business_days(filed_on, 1, region)


def paused_days(
    stages: Iterable[StageFact],
    rules: ProcedureRules,
    calendar: BusinessCalendar,
    region: str,
) -> tuple[int, bool]:
    """Business days the file waited on the citizen, and whether it waits now.

    Each observation pauses the clock until the first resubmission on or after it; an
    observation answered by no resubmission leaves the clock stopped.
    """
    ordered = sorted(stages, key=lambda s: (s.occurred_on, s.stage != rules.pause_from))
    paused, since = 0, None
    for fact in ordered:
        if fact.stage == rules.pause_from and since is None:
            since = fact.occurred_on
        elif fact.stage == rules.pause_until and since is not None:
            paused += calendar.business_days_between(since, fact.occurred_on, region)
            since = None
    return paused, since is not None


def procedure_status(
    stages: Iterable[StageFact],
    rules: ProcedureRules,
    calendar: BusinessCalendar,
    region: str,
    term_at: TermAt,
) -> ProcedureStatus:
    """The status of one procedure from every stage stored for it (at least one)."""
    facts = list(stages)
    if not facts:
        raise ValueError("a procedure status needs at least one stage")
    filed_on = min(fact.filed_on for fact in facts)
    received = received_on(filed_on, rules, calendar, region)
    term = term_at(filed_on)
    paused, waiting = paused_days(facts, rules, calendar, region)
    resolutions = [fact.occurred_on for fact in facts if fact.stage == RESOLVED]
    return ProcedureStatus(
        received_on=received,
        term_days=term,
        paused_days=paused,
        waiting_on_citizen=waiting and not resolutions,
        due_on=calendar.add_business_days(received, term + paused, region),
        resolved_on=min(resolutions) if resolutions else None,
    )
