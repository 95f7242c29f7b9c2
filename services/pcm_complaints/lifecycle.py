"""The lifecycle of a reclamo (DS 007-2020-PCM): which stage may follow which, and what each
stage changes in the complaint's record. Pure: no I/O, no clock (dates come from the caller).

    (none) ─ REGISTERED ─┬─ ANSWERED ─ NOTIFIED ─┬─ CLOSED ─ ARCHIVED
                         │                       └─ FOLLOW_UP (repeatable) ─ CLOSED
                         ├─ NOT_A_RECLAMO / TRANSFERRED / WITHDRAWN ─ ARCHIVED
                         └─ RESOLVED_AT_DESK ─ ARCHIVED
    (none) ─ RESOLVED_AT_DESK ─ ARCHIVED      (registered and settled on the spot)

The legal term runs while the complaint is REGISTERED. ANSWERED and RESOLVED_AT_DESK stop it as
an answer; NOT_A_RECLAMO, TRANSFERRED and WITHDRAWN stop it without one (no answer is due from
this entity). OVERDUE is never pushed: the platform's overdue job flags the record once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from pcm.monitoring.v1 import complaint_pb2

PREFIX = "COMPLAINT_STAGE_"
REGISTERED = "REGISTERED"
ANSWERED = "ANSWERED"
NOTIFIED = "NOTIFIED"
FOLLOW_UP = "FOLLOW_UP"
CLOSED = "CLOSED"
ARCHIVED = "ARCHIVED"
NOT_A_RECLAMO = "NOT_A_RECLAMO"
TRANSFERRED = "TRANSFERRED"
WITHDRAWN = "WITHDRAWN"
RESOLVED_AT_DESK = "RESOLVED_AT_DESK"
OVERDUE = "OVERDUE"

OPENING = frozenset({REGISTERED, RESOLVED_AT_DESK})
"""Stages that may start a complaint's record."""
ANSWERING = frozenset({ANSWERED, RESOLVED_AT_DESK})
"""Stages that answer the complaint (stop its term as answered)."""
TERM_RUNNING = REGISTERED
"""The only stage in which the legal term runs (an open complaint)."""

NEXT: dict[str, frozenset[str]] = {
    REGISTERED: frozenset({ANSWERED, NOT_A_RECLAMO, TRANSFERRED, WITHDRAWN, RESOLVED_AT_DESK}),
    ANSWERED: frozenset({NOTIFIED}),
    NOTIFIED: frozenset({FOLLOW_UP, CLOSED}),
    FOLLOW_UP: frozenset({FOLLOW_UP, CLOSED}),
    CLOSED: frozenset({ARCHIVED}),
    NOT_A_RECLAMO: frozenset({ARCHIVED}),
    TRANSFERRED: frozenset({ARCHIVED}),
    WITHDRAWN: frozenset({ARCHIVED}),
    RESOLVED_AT_DESK: frozenset({ARCHIVED}),
    ARCHIVED: frozenset(),
}
PUSHABLE = frozenset(NEXT)
"""Every stage an entity may push (all but OVERDUE)."""


def stage_name(number: int) -> str:
    """``COMPLAINT_STAGE_ANSWERED`` (proto number) -> ``ANSWERED``; '' for unknown numbers."""
    try:
        stage = complaint_pb2.ComplaintStage.ValueType(number)
        return str(complaint_pb2.ComplaintStage.Name(stage)).removeprefix(PREFIX)
    except ValueError:
        return ""


def stage_number(name: str) -> complaint_pb2.ComplaintStage.ValueType:
    return complaint_pb2.ComplaintStage.Value(PREFIX + name)


@dataclass(frozen=True)
class Term:
    """The answer term of a complaint, fixed at registration."""

    business_days: int
    due_on: dt.date
    basis: str


@dataclass(frozen=True)
class Complaint:
    """One complaint's record in the book (what the platform keeps: no personal data)."""

    entity_id: str
    complaint_id: str
    stage: str
    filed_on: dt.date
    term: Term
    channel: str = ""
    service_id: str = ""
    driver: str = ""
    category: str = ""
    answered_on: dt.date | None = None
    business_days_to_answer: int = 0
    overdue_on: dt.date | None = None
    transitions: int = 0

    @property
    def is_open(self) -> bool:
        return self.stage == TERM_RUNNING

    @property
    def overdue(self) -> bool:
        return self.overdue_on is not None

    def past_due(self, today: dt.date) -> bool:
        """Unanswered after its last business day to answer."""
        return self.is_open and today > self.term.due_on


@dataclass(frozen=True)
class Refused:
    """Why an event cannot follow the complaint's current state."""

    field: str
    reason: str


def refusal(current: Complaint | None, complaint_id: str, stage: str) -> Refused | None:
    """None when ``stage`` may follow ``current`` (None: no complaint with that id yet)."""
    if current is None:
        if stage in OPENING:
            return None
        return Refused(
            "complaint_id",
            f"no complaint {complaint_id!r} is registered at this entity: register it first "
            f"(stage {REGISTERED}) before {stage}",
        )
    if stage == REGISTERED:
        return Refused(
            "complaint_id",
            f"complaint {complaint_id!r} is already registered (now {current.stage})",
        )
    if stage in NEXT[current.stage]:
        return None
    if current.stage == ARCHIVED:
        reason = "the complaint is archived: nothing may follow (file a new complaint)"
    elif stage in ANSWERING and current.answered_on is not None:
        reason = f"the complaint is already answered (now {current.stage})"
    elif stage == NOTIFIED and current.answered_on is None:
        reason = f"{NOTIFIED} needs an answer first; the complaint is {current.stage}"
    else:
        allowed = ", ".join(sorted(NEXT[current.stage])) or "nothing"
        reason = f"{stage} cannot follow {current.stage} (allowed next: {allowed})"
    return Refused("stage", reason)


def opened(
    entity_id: str,
    complaint_id: str,
    filed_on: dt.date,
    term: Term,
    channel: str = "",
    service_id: str = "",
    driver: str = "",
    category: str = "",
) -> Complaint:
    """The record an opening event starts, before that event is applied (``advanced``)."""
    return Complaint(
        entity_id, complaint_id, REGISTERED, filed_on, term, channel, service_id, driver, category
    )


def advanced(
    current: Complaint, stage: str, occurred_on: dt.date, business_days_to_answer: int
) -> Complaint:
    """The record after an accepted ``stage`` (``refusal`` returned None)."""
    answered = stage in ANSWERING and current.answered_on is None
    return replace(
        current,
        stage=stage,
        answered_on=occurred_on if answered else current.answered_on,
        business_days_to_answer=(
            business_days_to_answer if answered else current.business_days_to_answer
        ),
        transitions=current.transitions + 1,
    )
